"""The admin command line, driven the way an operator would drive it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result
from ports import free_port

from xnode.accounts.service import AccountService
from xnode.accounts.sessions import SessionService
from xnode.cli import main
from xnode.clock import SystemClock
from xnode.settings import load_settings
from xnode.store.database import Database, open_database
from xnode.store.migrations import all_migrations

T = TypeVar("T")
PASSWORD = "correct horse battery"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in-process; a domain error must never surface as a traceback."""
    result = CliRunner().invoke(main, list(args), input=input, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def clean_env() -> dict[str, str]:
    """The environment without XNODE_ variables, for a CLI subprocess."""
    return {k: v for k, v in os.environ.items() if not k.startswith("XNODE_")}


def in_node(data: Path, action: Callable[[Database, AccountService], Awaitable[T]]) -> T:
    """Run ``action`` against the node's database, outside the CLI."""
    settings = load_settings(data, environ={})

    async def go() -> T:
        async with open_database(settings.database_path) as db:
            return await action(db, AccountService(db, settings, SystemClock()))

    return asyncio.run(go())


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """An initialised node's data directory."""
    data = tmp_path / "data"
    result = run("init", "--data", str(data), "--domain", "xnode.test", "--http")
    assert result.exit_code == 0, result.output
    return data


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """A file holding PASSWORD on its first line, as an editor would save it."""
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\nignored second line\n")
    return path


def create(node: Path, name: str, password_file: Path, *extra: str) -> Result:
    """Create a user through the CLI from a password file."""
    return run(
        "user", "create", name, "--data", str(node), "--password-file", str(password_file), *extra
    )


def usernames(node: Path) -> list[str]:
    """The usernames ``user list`` shows, in order."""
    result = run("user", "list", "--data", str(node))
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.output.splitlines()[1:]]


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert re.search(r"xnode, version \d+\.\d+", result.output)


# --- init ------------------------------------------------------------------


def test_init_creates_node_and_refuses_a_second_init(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run(
        "init", "--data", str(data), "--domain", "example.org", "--port", "8443",
        "--listen", "0.0.0.0:8443", "--registration", "invite",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = data / "secret.key"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(secret.read_text().strip())) >= 32
    settings = load_settings(data, environ={})
    assert settings.base_url == "https://example.org:8443"
    assert settings.listen == "0.0.0.0:8443"
    assert settings.registration == "invite"
    with sqlite3.connect(data / "xnode.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] >= 1

    config_before = (data / "xnode.toml").read_text()
    again = run("init", "--data", str(data), "--domain", "other.org")
    assert again.exit_code == 1
    assert "Error: a node already exists" in again.stderr
    assert (data / "xnode.toml").read_text() == config_before


@pytest.mark.parametrize(
    ("cores", "inbox", "senders"), [(1, False, 0), (2, True, 2), (64, True, 16)]
)
def test_init_gives_multi_core_machines_helper_processes(
    tmp_path: Path, cores: int, inbox: bool, senders: int
) -> None:
    from xnode.bootstrap import init_node

    data = tmp_path / "data"
    asyncio.run(init_node(data, domain="example.org", cores=cores))
    settings = load_settings(data, environ={})
    assert (settings.inbox_process, settings.delivery_processes) == (inbox, senders)
    written = (data / "xnode.toml").read_text()
    assert ("delivery_processes" in written) == bool(senders)


def test_init_admin_gets_a_one_time_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Exactly what `make run` does on first start.
    result = run(
        "init", "--data", str(data), "--domain", "localhost", "--http", "--port", "8080",
        "--listen", "127.0.0.1:8080", "--admin", "admin",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_settings(data, environ={}).base_url == "http://localhost:8080"
    password = re.search(r"One-time password:\s+(\S+)", result.output)
    assert password

    async def login(db: Database, accounts: AccountService) -> Any:
        return await accounts.authenticate("admin", password[1])

    admin = in_node(data, login)
    assert admin.is_admin
    assert admin.must_change_password


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--domain", "bad/domain"), "domain: expected a host name"),
        (("--domain", "xnode.test", "--listen", "nowhere"), "listen: expected IP:PORT"),
        (("--domain", "xnode.test", "--admin", "Not Valid!"), "Usernames are 1 to 30"),
    ],
)
def test_failed_init_leaves_nothing_behind(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    data = tmp_path / "data"
    result = run("init", "--data", str(data), *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (data / "xnode.toml").exists()
    assert not (data / "xnode.sqlite3").exists()
    assert run("init", "--data", str(data), "--domain", "xnode.test").exit_code == 0


# --- configuration -----------------------------------------------------------


def test_unknown_config_key_is_a_clear_error(node: Path) -> None:
    with (node / "xnode.toml").open("a") as handle:
        handle.write('colour = "blue"\n')
    result = run("check", "--data", str(node))
    assert result.exit_code == 1
    assert "Error: unknown setting(s): colour" in result.stderr


def test_environment_overrides_config_and_unknown_variable_errors(node: Path) -> None:
    result = run(
        "invite", "create", "--data", str(node), env={"XNODE_BASE_URL": "https://alt.example"}
    )
    assert result.exit_code == 0, result.output
    assert "https://alt.example/signup?invite=" in result.output

    result = run("user", "list", "--data", str(node), env={"XNODE_FOO": "1"})
    assert result.exit_code == 1
    assert "Error: unknown setting in environment: XNODE_FOO" in result.stderr


def test_data_directory_comes_from_xnode_data(node: Path, password_file: Path) -> None:
    assert create(node, "alice", password_file).exit_code == 0
    result = run("user", "list", env={"XNODE_DATA": str(node)})
    assert result.exit_code == 0
    assert "alice" in result.output


def test_missing_node_is_a_clear_error(tmp_path: Path) -> None:
    result = run("user", "list", "--data", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "run 'xnode init'" in result.stderr


# --- users -------------------------------------------------------------------


def test_user_create_from_file_and_from_prompt(node: Path, password_file: Path) -> None:
    result = create(node, "alice", password_file, "--admin")
    assert result.exit_code == 0, result.output
    assert "Created user alice (admin)" in result.output

    other = "another good secret"
    result = run("user", "create", "bob", "--data", str(node), input=f"{other}\n{other}\n")
    assert result.exit_code == 0, result.output
    assert other not in result.output  # hidden input is not echoed

    async def logins(db: Database, accounts: AccountService) -> tuple[Any, Any]:
        return (
            await accounts.authenticate("alice", PASSWORD),
            await accounts.authenticate("bob", other),
        )

    alice, bob = in_node(node, logins)
    assert alice.is_admin and not bob.is_admin
    listing = run("user", "list", "--data", str(node)).output
    assert re.search(r"^alice\s+active\s+yes\s+no\s+\d{4}-", listing, re.MULTILINE)
    assert re.search(r"^bob\s+active\s+no\s+no\s+\d{4}-", listing, re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("Not Valid!", PASSWORD, "Usernames are 1 to 30 characters"),
        ("carol", "short", "at least 10 characters"),
        ("alice", "a different password", "already taken"),
    ],
)
def test_user_create_rejections_write_nothing(
    node: Path, password_file: Path, tmp_path: Path, name: str, password: str, message: str
) -> None:
    assert create(node, "alice", password_file).exit_code == 0
    bad_password = tmp_path / "bad.txt"
    bad_password.write_text(password + "\n")
    result = create(node, name, bad_password)
    assert result.exit_code == 1
    assert message in result.stderr
    assert usernames(node) == ["alice"]


def test_set_password_ends_sessions(node: Path, password_file: Path, tmp_path: Path) -> None:
    assert create(node, "alice", password_file).exit_code == 0

    async def start_session(db: Database, accounts: AccountService) -> str:
        user = await accounts.require_user_by_name("alice")
        return await SessionService(db, SystemClock()).start(user.id)

    token = in_node(node, start_session)

    async def resolve(db: Database, accounts: AccountService) -> Any:
        return await SessionService(db, SystemClock()).resolve(token)

    assert in_node(node, resolve) is not None
    new_password = tmp_path / "new.txt"
    new_password.write_text("brand new passphrase\n")
    result = run(
        "user", "set-password", "alice", "--data", str(node), "--password-file", str(new_password)
    )
    assert result.exit_code == 0, result.output
    assert in_node(node, resolve) is None

    async def login(db: Database, accounts: AccountService) -> Any:
        return await accounts.authenticate("alice", "brand new passphrase")

    assert in_node(node, login).username == "alice"


def test_suspend_unsuspend_and_delete(node: Path, password_file: Path) -> None:
    assert create(node, "alice", password_file).exit_code == 0
    assert create(node, "bob", password_file).exit_code == 0
    data = ("--data", str(node))

    assert run("user", "suspend", "alice", *data).exit_code == 0
    listing = run("user", "list", *data).output
    assert re.search(r"^alice\s+active\s+no\s+\d{4}-", listing, re.MULTILINE)
    assert run("user", "unsuspend", "alice", *data).exit_code == 0
    assert re.search(
        r"^alice\s+active\s+no\s+no\s", run("user", "list", *data).output, re.MULTILINE
    )

    declined = run("user", "delete", "bob", *data, input="n\n")
    assert declined.exit_code == 1
    assert usernames(node) == ["alice", "bob"]
    assert run("user", "delete", "bob", *data, input="y\n").exit_code == 0
    assert run("user", "delete", "alice", *data, "--yes").exit_code == 0
    assert usernames(node) == []

    missing = run("user", "suspend", "nobody", *data)
    assert missing.exit_code == 1
    assert "Error: No user named 'nobody'" in missing.stderr


def test_approve_pending_user(node: Path) -> None:
    async def pending(db: Database, accounts: AccountService) -> None:
        await accounts.create_user("dave", PASSWORD, state="pending")

    in_node(node, pending)
    assert re.search(r"^dave\s+pending", run("user", "list", "--data", str(node)).output, re.M)
    assert run("user", "approve", "dave", "--data", str(node)).exit_code == 0
    assert re.search(r"^dave\s+active", run("user", "list", "--data", str(node)).output, re.M)
    again = run("user", "approve", "dave", "--data", str(node))
    assert again.exit_code == 1
    assert "not waiting for approval" in again.stderr


# --- invites -----------------------------------------------------------------


def test_invite_create_list_revoke(node: Path) -> None:
    data = ("--data", str(node))
    result = run("invite", "create", *data, "--expires-days", "7", "--max-uses", "3")
    assert result.exit_code == 0, result.output
    code = re.search(r"Invite code: (\S+)", result.output)
    assert code
    assert f"http://xnode.test/signup?invite={code[1]}" in result.output

    assert re.search(
        rf"^{re.escape(code[1])}\s+live\s+0/3\s+\d{{4}}-", run("invite", "list", *data).output, re.M
    )
    assert run("invite", "revoke", code[1], *data).exit_code == 0
    assert re.search(rf"^{re.escape(code[1])}\s+revoked", run("invite", "list", *data).output, re.M)

    again = run("invite", "revoke", code[1], *data)
    assert again.exit_code == 1
    assert "No live invite" in again.stderr
    bad = run("invite", "create", *data, "--max-uses", "0")
    assert bad.exit_code == 1
    assert "Maximum uses" in bad.stderr


# --- backup and check ----------------------------------------------------------


def test_backup_is_a_readable_copy_and_refuses_overwrite(
    node: Path, password_file: Path, tmp_path: Path
) -> None:
    assert create(node, "alice", password_file).exit_code == 0
    out = tmp_path / "backup.sqlite3"
    result = run("backup", "--data", str(node), str(out))
    assert result.exit_code == 0, result.output
    assert "media" in result.output
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = [row[0] for row in conn.execute("SELECT username FROM accounts")]
    assert names == ["alice"]

    assert create(node, "bob", password_file).exit_code == 0
    refused = run("backup", "--data", str(node), str(out))
    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    assert run("backup", "--data", str(node), str(out), "--force").exit_code == 0
    with sqlite3.connect(out) as conn:
        assert conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == 2


def test_check_passes_on_a_healthy_node(node: Path) -> None:
    result = run("check", "--data", str(node))
    assert result.exit_code == 0, result.output
    newest = all_migrations()[-1].version
    assert f"schema version {newest} (this xnode knows {newest}" in result.output
    assert "healthy" in result.output


def test_check_fails_on_a_schema_newer_than_the_code(node: Path) -> None:
    with sqlite3.connect(node / "xnode.sqlite3") as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
        )
    result = run("check", "--data", str(node))
    assert result.exit_code == 1
    assert "schema version 999 is newer" in result.output
    # As a real process: a failed open once left a connection thread that kept it alive.
    listed = subprocess.run(
        [sys.executable, "-m", "xnode", "user", "list", "--data", str(node)],
        capture_output=True,
        text=True,
        timeout=10,
        env=clean_env(),
    )
    assert listed.returncode == 1
    assert listed.stderr.startswith("Error: database schema version 999 is newer")


def test_check_fails_on_missing_tls_files(node: Path) -> None:
    with (node / "xnode.toml").open("a") as handle:
        handle.write('tls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    result = run("check", "--data", str(node))
    assert result.exit_code == 1
    assert "cannot load TLS certificate" in result.output


# --- serve -------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def serve_until_200_then_stop(args: list[str], url: str, context: ssl.SSLContext | None) -> str:
    """Start ``xnode serve``, wait for GET / to answer 200, SIGTERM it; return its stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xnode", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not answer in time"
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    return stdout


def test_serve_http_until_sigterm(node: Path) -> None:
    port = free_port()
    stdout = serve_until_200_then_stop(
        ["--data", str(node), "--listen", f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}/", None
    )
    assert f"xnode serving http://xnode.test on 127.0.0.1:{port}" in stdout


def test_serve_https_with_given_certificate(node: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    stdout = serve_until_200_then_stop(
        [
            "--data",
            str(node),
            "--listen",
            f"127.0.0.1:{port}",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        f"https://127.0.0.1:{port}/",
        ssl.create_default_context(cafile=str(cert)),
    )
    assert f"on 127.0.0.1:{port}" in stdout


def test_serve_refuses_bad_tls_files(node: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    result = run("serve", "--data", str(node), "--tls-cert", str(cert), "--tls-key", str(key))
    assert result.exit_code == 1
    assert "Error: cannot load TLS certificate" in result.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_serve_with_helper_processes_stops_cleanly_on_a_group_sigterm(
    node: Path, tmp_path: Path
) -> None:
    # A service manager signals the whole group; the inbox and delivery processes
    # must not die mid-batch on their own but exit when `xnode serve` closes
    # their sockets.
    port = free_port()
    log_path = tmp_path / "serve.log"
    helpers = {
        "XNODE_INBOX_PROCESS": "true", "XNODE_DELIVERY_PROCESSES": "2",
        "XNODE_HELPER_IDLE_STOP_S": "0",  # started with the node, not by load
    }
    names = ["inbox process", "delivery process 1/2", "delivery process 2/2"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xnode", "serve", "--data", str(node),
             "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=log, env={**clean_env(), **helpers},
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not all(f"{name} ready" in log_path.read_text() for name in names):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        children = _children(proc.pid)
        assert len(children) == len(names)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log_path.read_text()
    assert proc.returncode == 0, output
    # Each finished and exited when `xnode serve` let it go, not before.
    for name in names:
        assert f"{name} exited (status 0)" in output, output
    assert "restarting" not in output, output
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
