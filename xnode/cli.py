"""The ``xnode`` admin command line: thin commands that parse, call a service, print.

Heavy modules (aiohttp, the web application) are imported inside ``serve``
only, so every other command starts quickly. The ``federation`` group lives in
:mod:`xnode.cli_federation`; helpers both use are in :mod:`xnode.cli_support`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import IO, Any

import click

import xnode
from xnode import faults
from xnode.accounts.models import Invite, User
from xnode.accounts.service import AccountService
from xnode.bootstrap import init_node
from xnode.calls.client_cli import register as register_call_commands
from xnode.cli_db import db
from xnode.cli_federation import federation
from xnode.cli_support import _data_option, _echo_table, _Node, _when, _with_node
from xnode.clock import SystemClock
from xnode.errors import XnodeError
from xnode.federation_admin import FederationAdmin, HelperState
from xnode.settings import (
    CONFIG_FILE,
    REGISTRATION_MODES,
    SECRET_FILE,
    Settings,
    SettingsError,
    load_settings,
    parse_listen,
)
from xnode.store.database import open_database
from xnode.store.migrations import SchemaTooNewError, all_migrations, schema_version


class _Cli(click.Group):
    """The root group: turns domain errors into ``Error: <message>`` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, reporting domain errors without a traceback."""
        try:
            return super().invoke(ctx)
        except XnodeError as exc:
            raise click.ClickException(exc.message) from None
        except (SettingsError, SchemaTooNewError) as exc:
            raise click.ClickException(str(exc)) from None


def _password_file_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--password-file",
        type=click.File("r", encoding="utf-8"),
        help="Read the password from the first line of this file ('-' for stdin) "
        "instead of prompting.",
    )(command)


def _read_password(password_file: IO[str] | None) -> str:
    """The new password: first line of the file, else asked twice with hidden input."""
    if password_file is not None:
        return password_file.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))




def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from a certificate chain and key, or a clear error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.ClickException(
            f"cannot load TLS certificate {cert} with key {key}: {exc}"
        ) from None
    return context


def _tls_paths(settings: Settings) -> tuple[Path, Path] | None:
    """The configured TLS files; relative paths in the config are inside the data directory."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    return settings.data_dir / settings.tls_cert, settings.data_dir / settings.tls_key


@click.group(cls=_Cli)
@click.version_option(xnode.__version__, prog_name="xnode")
def main() -> None:
    """Run and administer an xnode server."""


# --- init ------------------------------------------------------------------


@main.command()
@_data_option
@click.option("--domain", required=True, help="Public host name, e.g. example.org.")
@click.option(
    "--https/--http",
    default=True,
    show_default=True,
    help="Scheme of the public URLs (use --http only for local testing).",
)
@click.option("--port", type=int, help="Public port, if not the scheme's default.")
@click.option("--listen", metavar="IP:PORT", help="Address to serve on [default: 127.0.0.1:8080].")
@click.option(
    "--registration",
    type=click.Choice(REGISTRATION_MODES),
    default="approval",
    show_default=True,
    help="Who may sign up.",
)
@click.option(
    "--admin",
    metavar="NAME",
    help="Also create this admin user and print a one-time password for them.",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="An empty PostgreSQL database (postgresql://...) instead of the embedded SQLite file.",
)
def init(
    data_dir: Path,
    domain: str,
    https: bool,
    port: int | None,
    listen: str | None,
    registration: str,
    admin: str | None,
    database_url: str | None,
) -> None:
    """Create a new node in the data directory.

    Writes xnode.toml, secret.key and the database; refuses to touch an existing node.
    """
    result = asyncio.run(
        init_node(
            data_dir,
            domain=domain,
            https=https,
            port=port,
            listen=listen,
            registration=registration,
            admin=admin,
            database_url=database_url,
        )
    )
    settings = result.settings
    click.echo(f"Created node {settings.base_url} in {settings.data_dir}")
    if result.admin_password is not None:
        click.echo(f"Admin user:         {result.admin_username}")
        click.echo(f"One-time password:  {result.admin_password}")
        click.echo("This password is shown only once; you must change it at first login.")
    click.echo(f"Start it with: xnode serve --data {settings.data_dir}")


# --- serve -----------------------------------------------------------------


@main.command()
@_data_option
@click.option("--listen", metavar="IP:PORT", help="Address to serve on (overrides the config).")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate chain; serve HTTPS directly (overrides the config).",
)
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM private key.")
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
def serve(
    data_dir: Path,
    listen: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    access_log: bool,
) -> None:
    """Serve the node until SIGINT or SIGTERM.

    Relative tls_cert/tls_key paths in xnode.toml are inside the data directory.
    """
    settings = load_settings(data_dir)
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key must be given together")
    overrides: dict[str, Any] = {}
    if listen:
        parse_listen(listen)
        overrides["listen"] = listen
    if tls_cert and tls_key:
        overrides["tls_cert"] = str(tls_cert.resolve())
        overrides["tls_key"] = str(tls_key.resolve())
    settings = dataclasses.replace(settings, **overrides)
    tls = _tls_paths(settings)
    ssl_context = _tls_context(*tls) if tls else None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(settings, ssl_context, access_log))


def _run_helper(label: str, serve: Callable[[int], Coroutine[Any, Any, None]], fd: int) -> None:
    """Run a helper process of `xnode serve` (inbox, delivery) on its socket ``fd``."""
    # Its life is bound to the socket: `xnode serve` stops it by closing it, after
    # its own requests are done. A Ctrl-C or a service manager's SIGTERM sent to
    # the whole process group must not cut its work short before that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faults.exit_point(f"helper-start:{label}")
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s {label} %(name)s: %(message)s"
    )
    asyncio.run(serve(fd))


@main.command("inbox-process", hidden=True)
@click.option("--fd", type=int, required=True, help="The socket shared with `xnode serve`.")
def inbox_process(fd: int) -> None:
    """The inbox process `xnode serve` starts when `inbox_process` is set (not run by hand)."""
    from xnode.activitypub.inbox_process import serve_inbox_process

    _run_helper("inbox", serve_inbox_process, fd)


@main.command("delivery-process", hidden=True)
@click.option("--fd", type=int, required=True, help="The socket shared with `xnode serve`.")
def delivery_process(fd: int) -> None:
    """A delivery process `xnode serve` starts when `delivery_processes` is set."""
    from xnode.activitypub.delivery_process import serve_delivery_process

    _run_helper("delivery", serve_delivery_process, fd)


async def _serve(settings: Settings, ssl_context: ssl.SSLContext | None, access_log: bool) -> None:
    """Run the web application until a stop signal; cleanup_ctx stops the workers."""
    from aiohttp import web

    from xnode.web.app import create_app

    host, port = settings.listen_host_port()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    from xnode.web.access_log import AccessLogger

    runner = web.AppRunner(
        create_app(settings),
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_class=AccessLogger,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
        # Everything loaded at start-up lives for the whole process: moving it out
        # of the collector's reach keeps full collections (and page p99) short.
        gc.freeze()
        # The node's own address, not the socket's: links, invites and feeds use it.
        click.echo(
            f"xnode serving {settings.base_url} on {settings.listen}; open {settings.base_url}/"
        )
        await stop.wait()
        click.echo("xnode stopping")
    finally:
        await runner.cleanup()


# --- users -----------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage local users."""


@user.command("create")
@click.argument("name")
@_data_option
@click.option("--admin", is_flag=True, help="Give the user admin rights.")
@_password_file_option
def user_create(data_dir: Path, name: str, admin: bool, password_file: IO[str] | None) -> None:
    """Create an active user NAME (the registration mode does not apply)."""
    password = _read_password(password_file)
    created = _with_node(
        data_dir,
        lambda node: node.accounts.create_user(name, password, is_admin=admin, allow_reserved=True),
    )
    click.echo(f"Created user {created.username}{' (admin)' if created.is_admin else ''}.")


@user.command("list")
@_data_option
def user_list(data_dir: Path) -> None:
    """List local users."""
    users: list[User] = _with_node(data_dir, lambda node: node.accounts.list_users())
    rows = [
        (
            u.username,
            u.state,
            "yes" if u.is_admin else "no",
            _when(u.account.suspended_at) if u.account.is_suspended else "no",
            _when(u.created_at),
        )
        for u in users
    ]
    _echo_table(("USERNAME", "STATE", "ADMIN", "SUSPENDED", "CREATED (UTC)"), rows)


def _by_name(
    name: str, change: Callable[[AccountService, User], Awaitable[Any]]
) -> Callable[[_Node], Awaitable[User]]:
    """A node action that looks NAME up, then applies ``change`` to that user."""

    async def action(node: _Node) -> User:
        found = await node.accounts.require_user_by_name(name)
        await change(node.accounts, found)
        return found

    return action


@user.command("set-password")
@click.argument("name")
@_data_option
@_password_file_option
def user_set_password(data_dir: Path, name: str, password_file: IO[str] | None) -> None:
    """Set NAME's password and log them out everywhere."""
    password = _read_password(password_file)
    changed = _with_node(data_dir, _by_name(name, lambda s, u: s.set_password(u.id, password)))
    click.echo(f"Password changed for {changed.username}; their sessions were ended.")


@user.command("suspend")
@click.argument("name")
@_data_option
def user_suspend(data_dir: Path, name: str) -> None:
    """Suspend NAME: they cannot log in and their sessions end."""
    found = _with_node(data_dir, _by_name(name, lambda s, u: s.set_suspended(u.id, True)))
    click.echo(f"Suspended {found.username}.")


@user.command("unsuspend")
@click.argument("name")
@_data_option
def user_unsuspend(data_dir: Path, name: str) -> None:
    """Lift NAME's suspension."""
    found = _with_node(data_dir, _by_name(name, lambda s, u: s.set_suspended(u.id, False)))
    click.echo(f"Unsuspended {found.username}.")


@user.command("approve")
@click.argument("name")
@_data_option
def user_approve(data_dir: Path, name: str) -> None:
    """Approve NAME's pending sign-up."""
    found = _with_node(data_dir, _by_name(name, lambda s, u: s.approve(u.id)))
    click.echo(f"Approved {found.username}.")


@user.command("delete")
@click.argument("name")
@_data_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def user_delete(data_dir: Path, name: str, yes: bool) -> None:
    """Delete NAME's data and sessions (the username stays taken)."""
    if not yes:
        click.confirm(f"Delete user {name} and all their data?", abort=True)
    found = _with_node(data_dir, _by_name(name, lambda s, u: s.delete_user(u.id)))
    click.echo(f"Deleted {found.username}.")


# --- invites ---------------------------------------------------------------


@main.group()
def invite() -> None:
    """Manage invite codes (for registration mode 'invite')."""


def _invite_state(item: Invite, now: float) -> str:
    if item.revoked_at is not None:
        return "revoked"
    if item.expires_at is not None and now >= item.expires_at:
        return "expired"
    if item.max_uses is not None and item.uses >= item.max_uses:
        return "used up"
    return "live"


@invite.command("create")
@_data_option
@click.option("--expires-days", type=float, help="Expire after this many days [default: never].")
@click.option("--max-uses", type=int, help="Allow this many sign-ups [default: unlimited].")
def invite_create(data_dir: Path, expires_days: float | None, max_uses: int | None) -> None:
    """Create an invite code and print its sign-up URL."""

    async def action(node: _Node) -> tuple[Invite, str]:
        made = await node.accounts.create_invite(
            None,
            expires_in_s=None if expires_days is None else expires_days * 86400,
            max_uses=max_uses,
        )
        return made, node.settings.base_url

    made, base_url = _with_node(data_dir, action)
    click.echo(f"Invite code: {made.code}")
    click.echo(f"Sign-up URL: {base_url}/signup?invite={made.code}")


@invite.command("list")
@_data_option
def invite_list(data_dir: Path) -> None:
    """List invite codes, newest first."""
    invites: list[Invite] = _with_node(data_dir, lambda node: node.accounts.list_invites())
    now = SystemClock().now()
    rows = [
        (
            item.code,
            _invite_state(item, now),
            f"{item.uses}/{'-' if item.max_uses is None else item.max_uses}",
            _when(item.expires_at),
            _when(item.created_at),
        )
        for item in invites
    ]
    _echo_table(("CODE", "STATE", "USES", "EXPIRES (UTC)", "CREATED (UTC)"), rows)


@invite.command("revoke")
@click.argument("code")
@_data_option
def invite_revoke(data_dir: Path, code: str) -> None:
    """Revoke invite CODE so it can no longer be used."""
    _with_node(data_dir, lambda node: node.accounts.revoke_invite(code))
    click.echo("Invite revoked.")


# --- backup and check ------------------------------------------------------


@main.command()
@_data_option
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def backup(data_dir: Path, out: Path, force: bool) -> None:
    """Snapshot the database into the file OUT (safe while serving).

    OUT holds the database only. A full backup also needs DATA/media/,
    DATA/xnode.toml and DATA/secret.key: copy those as plain files (media files
    are never changed once written, so copying them while serving is safe).
    """
    out = out.resolve()
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; use --force to replace it")

    async def action(node: _Node) -> Path:
        if node.db.dialect != "sqlite":
            raise click.ClickException(
                "this node's database is PostgreSQL: back it up with pg_dump "
                "(docs/admin.md, \"Scaling out\")"
            )
        if out == node.settings.database_path:
            raise click.ClickException("OUT must not be the live database")
        # Back up to a temporary file and rename, so OUT is never a partial copy.
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            await node.db.backup_to(tmp)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        return node.settings.data_dir

    data = _with_node(data_dir, action)
    click.echo(f"Database backed up to {out}")
    click.echo(
        f"Also copy {data / 'media'}, {data / CONFIG_FILE} and {data / SECRET_FILE} "
        "for a full backup."
    )


@main.command()
@_data_option
def check(data_dir: Path) -> None:
    """Check config, database, media directory and TLS files.

    Exits with status 0 when everything is healthy, 1 otherwise.
    """
    settings = load_settings(data_dir)
    click.echo(f"ok      config: {settings.base_url}, listening on {settings.listen}")
    problems = asyncio.run(_database_problems(settings))
    problems += _media_problems(settings)
    tls = _tls_paths(settings)
    if tls:
        try:
            _tls_context(*tls)
            click.echo("ok      TLS certificate and key")
        except click.ClickException as exc:
            problems.append(exc.message)
    for problem in problems:
        click.echo(f"PROBLEM {problem}")
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")
    click.echo("healthy")


async def _database_problems(settings: Settings) -> list[str]:
    path = settings.database_path
    if settings.database_url is None and not path.is_file():
        return [f"no database at {path}"]
    try:
        async with open_database(settings.database) as db:
            version = await schema_version(db)
            known = len(all_migrations())
            click.echo(f"ok      database schema version {version} (this xnode knows {known})")
            problems = await db.integrity_problems()
            admin = FederationAdmin(db, SystemClock())
            helpers = await admin.helper_states()
            outbox = await admin.outbox_counts()
    except SchemaTooNewError as exc:
        return [str(exc)]
    if not problems:
        click.echo("ok      database integrity")
    found = [f"database: {problem}" for problem in problems]
    found += _helper_problems(helpers)
    if outbox.get("failed"):
        found.append(
            f"{outbox['failed']} outgoing change(s) could not be turned into deliveries"
            " (the admin federation page lists them; the log says why)"
        )
    return found


def _helper_problems(helpers: list[HelperState]) -> list[str]:
    """What each `xnode serve` last reported of its helper processes, as problems and ok
    lines (named with their serving process when several serve the node)."""
    problems = []
    now = time.time()
    several = len({helper.process for helper in helpers}) > 1
    for helper in helpers:
        # A pid says something on its own machine only; a serving process elsewhere is
        # alive while it keeps saying so (helper_processes.HEARTBEAT_S).
        serving = not helper.gone(now) and (
            not helper.on_this_machine or _process_alive(helper.serving_pid)
        )
        if serving:
            where = ""
        elif helper.on_this_machine:
            where = f" (reported by xnode serve pid {helper.serving_pid}, which is not running now)"
        else:
            where = (
                f" (reported by xnode serve on {helper.process}, not heard of for"
                f" {int((now - helper.seen_at) // 60)} minutes)"
            )
        name = f"{helper.name} of {helper.process or 'an unknown xnode serve'}" if several else (
            helper.name
        )
        if helper.state == "failed":
            problems.append(
                f"{name} crashed {helper.crashes} times in a row ({helper.last_exit})"
                f" and is no longer restarted; xnode serve does its work itself{where}."
                " See the log, fix the cause and restart xnode serve"
            )
        elif helper.in_trouble:
            problems.append(
                f"{name} keeps crashing: {helper.crashes} times in a row"
                f" ({helper.last_exit}){where}. See the log"
            )
        elif serving:
            pid = f" (pid {helper.pid})" if helper.pid else ""
            click.echo(f"ok      {name} {helper.state}{pid}")
    return problems


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _media_problems(settings: Settings) -> list[str]:
    try:
        settings.media_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.media_dir):
            pass
    except OSError as exc:
        return [f"media directory {settings.media_dir} is not writable: {exc}"]
    click.echo(f"ok      media directory {settings.media_dir} is writable")
    return []


# --- federation: xnode/cli_federation.py ----------------------------------

main.add_command(federation)
main.add_command(db)  # xnode/cli_db.py
register_call_commands(main)
