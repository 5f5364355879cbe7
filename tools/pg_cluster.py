"""A throwaway PostgreSQL cluster for tests and benchmarks (issue 18).

Uses Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``, from
``make postgres``) directly: ``initdb`` into a fresh temporary directory, ``pg_ctl``
to start the server listening on a Unix socket in that directory (or on a free
loopback port), databases made on request, and on exit the server stopped and the
directory removed. No system service, no ``/etc/postgresql`` cluster, nothing left
behind; two clusters (two test runs, a test run and a benchmark) never meet, as each
has its own directory and socket.

As a module::

    with PgCluster() as cluster:
        cluster.create_database("xnode_gw0")
        url = cluster.url("xnode_gw0")   # for asyncpg or psycopg
        cluster.psql("xnode_gw0", "SELECT 1")

As a command (prints the databases' URLs, keeps the cluster until Ctrl-C or SIGTERM)::

    .venv/bin/python tools/pg_cluster.py [--tcp] [--db NAME ...]
    .venv/bin/python tools/pg_cluster.py --find    # the binaries' directory, or exit 1

Running as root: ``initdb`` refuses to (and ``postgres`` too), because a server
running as root could be made to write any file on the machine through SQL such as
``COPY ... TO``. Our CI and development machines run everything as root, so when
this process is root the cluster's own commands (``initdb``, ``pg_ctl``, and so the
server) run as an unprivileged system user, ``postgres`` by default (Debian's package
creates it), and the temporary directory is made its own. Clients (``psql`` here,
the drivers in tests) stay root: they only talk to the socket. The switch is
``subprocess``'s ``user``/``group``/``extra_groups`` (a ``setuid`` in the child
before ``exec``), so nothing beyond the standard library is needed, not even
``runuser``.

Settings are chosen for a cluster whose data is thrown away: no ``fsync``, no
synchronous commit, no full-page writes. Pass ``durable=True`` to keep PostgreSQL's
defaults (a benchmark that wants to include the cost of flushing the WAL).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

DEBIAN_ROOT = Path("/usr/lib/postgresql")
NEEDED = ("initdb", "pg_ctl", "postgres", "psql")
SUPERUSER = "postgres"
"""The cluster's bootstrap superuser role (clients connect as it; ``trust`` auth)."""
RUN_AS = "postgres"
"""The system user the server runs as when this process is root."""
SOCKET_PORT = 5432
"""The port number in the socket's file name when listening on a Unix socket only: the
socket sits in the cluster's own directory, so the usual number never clashes."""
START_TIMEOUT_S = 60
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# For a cluster whose data is thrown away: durability costs time and buys nothing.
THROWAWAY_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
# Always: no TCP unless asked, quiet logs, enough connections for a pool per test worker.
BASE_SETTINGS: Mapping[str, str] = {
    "max_connections": "200",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}


class PgClusterError(RuntimeError):
    """The cluster could not be made or started; the message says why (and the log)."""


def _has_binaries(path: Path) -> bool:
    return all((path / name).is_file() for name in NEEDED)


def _env_without_pg() -> dict[str, str]:
    """This process's environment without ``PG*`` variables (a stray ``PGHOST`` or
    ``PGDATABASE`` must not redirect the cluster's own commands)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def find_bin_dir() -> Path | None:
    """The directory of Debian's PostgreSQL binaries, newest major version first.

    ``XNODE_PG_BIN`` overrides the search (another installation). ``/usr/local/bin``
    and ``PATH`` are deliberately not used: on some machines ``pg_ctl`` there is a
    hand-installed wrapper whose behaviour (cluster selection, ``sudo``) differs from the
    real binary, and Debian's ``/usr/bin`` names are ``pg_wrapper`` links that do not
    include ``initdb`` or ``pg_ctl`` at all.
    """
    override = os.environ.get("XNODE_PG_BIN")
    if override:
        path = Path(override)
        return path if _has_binaries(path) else None

    def version(path: Path) -> tuple[int, ...]:
        digits = re.findall(r"\d+", path.parent.name)
        return tuple(int(d) for d in digits) or (0,)

    candidates = sorted(DEBIAN_ROOT.glob("*/bin"), key=version, reverse=True)
    return next((path for path in candidates if _has_binaries(path)), None)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (another process may take it
    before the server binds it: :meth:`PgCluster.start` retries with a new one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def check_name(name: str) -> str:
    """``name`` if it is a plain lower-case SQL identifier (databases are made by name, so
    nothing that would need quoting is let through)."""
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


@dataclass(frozen=True)
class _RunAs:
    """Who the cluster's own commands run as (None: this process's user)."""

    uid: int
    gid: int
    name: str


def _run_as(user: str) -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PgClusterError(
            f"running as root, and there is no {user!r} system user to run PostgreSQL as"
            " (initdb refuses root); install Debian's postgresql package (make postgres),"
            " which creates it, or pass run_as=<an unprivileged user>"
        ) from None
    return _RunAs(entry.pw_uid, entry.pw_gid, user)


class PgCluster:
    """One throwaway cluster: ``start()`` (or ``with``) makes and starts it, ``stop()``
    stops it and removes its directory. Stopping is also registered with ``atexit``,
    so an interpreter that exits without stopping it still cleans up. A process killed
    with SIGKILL leaves its server running: PostgreSQL has no "exit with the parent"
    setting. Such leftovers are ``/tmp/xnode-pg-*``; ``pg_ctl -D DIR/data stop`` (as the
    ``postgres`` user when root) ends one."""

    def __init__(
        self,
        *,
        tcp: bool = False,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
        run_as: str = RUN_AS,
        base_dir: Path | None = None,
    ) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise PgClusterError(
                f"no PostgreSQL binaries under {DEBIAN_ROOT}/<version>/bin"
                " (run `make postgres`, or set XNODE_PG_BIN)"
            )
        self.bin_dir = found
        self.tcp = tcp
        self.settings = {
            **BASE_SETTINGS,
            **({} if durable else THROWAWAY_SETTINGS),
            **(settings or {}),
        }
        self._run_as_name = run_as
        self._base_parent = base_dir
        self.directory: Path | None = None
        self.port = SOCKET_PORT
        self.databases: list[str] = []
        self._running = False
        self._lock = threading.Lock()

    # --- where to connect ----------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1``, or the socket's directory (libpq and both drivers take a path)."""
        if self.tcp:
            return "127.0.0.1"
        return str(self._dir)

    def dsn(self, database: str = "postgres") -> str:
        """A libpq key/value connection string (psycopg, libpq; asyncpg takes only
        :meth:`url`)."""
        return " ".join(f"{key}={value}" for key, value in self.params(database).items())

    def params(self, database: str = "postgres") -> dict[str, str | int]:
        """Connection keywords: host, port, user, dbname."""
        return {"host": self.host, "port": self.port, "user": SUPERUSER, "dbname": database}

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL, which both asyncpg and psycopg take (the socket's
        directory as the ``host`` query parameter)."""
        if self.tcp:
            return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
        return f"postgresql://{SUPERUSER}@/{database}?host={self.host}&port={self.port}"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise PgClusterError("the cluster is not started")
        return self.directory

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self._dir / "data"

    @property
    def log_file(self) -> Path:
        """The server's log (``pg_ctl -l``)."""
        return self._dir / "postgres.log"

    # --- life ----------------------------------------------------------------------

    def __enter__(self) -> PgCluster:
        if self.directory is None:  # ``with cluster.start():`` works too
            self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PgCluster:
        """initdb into a new temporary directory and start the server (waits until it
        accepts connections)."""
        if self.directory is not None:
            raise PgClusterError(f"already started in {self.directory}")
        run_as = _run_as(self._run_as_name)
        # Made under /tmp (not $TMPDIR or pytest's tmp_path, which may sit in root's 0700
        # directories) so the unprivileged server user can reach it.
        parent = self._base_parent or Path(tempfile.gettempdir() if run_as is None else "/tmp")
        self.directory = Path(tempfile.mkdtemp(prefix="xnode-pg-", dir=parent))
        atexit.register(self.stop)
        try:
            if run_as is not None:
                os.chown(self.directory, run_as.uid, run_as.gid)
            self._command(
                run_as, "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
            )
            for attempt in range(3):
                if self.tcp:
                    self.port = free_loopback_port()
                self._write_settings()
                try:
                    self._command(
                        run_as, "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                        "-w", "-t", str(START_TIMEOUT_S), "start",
                    )
                except PgClusterError:
                    # Another process took the port between the probe and the bind.
                    if self.tcp and attempt < 2 and "could not bind" in self.log_tail():
                        continue
                    raise
                break
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate: the data is thrown away) and remove the
        directory. Safe to call twice, and when start() failed half-way."""
        with self._lock:
            if self.directory is None:
                return
            directory, self.directory = self.directory, None
            atexit.unregister(self.stop)
            if self._running or (directory / "data" / "postmaster.pid").exists():
                with contextlib.suppress(PgClusterError, OSError):
                    self._command(
                        _run_as(self._run_as_name), "pg_ctl", "-D", str(directory / "data"),
                        "-m", "immediate", "-w", "stop", cwd=directory,
                    )
            self._running = False
            shutil.rmtree(directory, ignore_errors=True)

    def _write_settings(self) -> None:
        listen = {
            "listen_addresses": "'127.0.0.1'" if self.tcp else "''",
            "port": str(self.port),
            # The socket goes in the cluster's own directory, never /var/run/postgresql.
            "unix_socket_directories": f"'{self._dir}'",
        }
        lines = [f"{key} = {value}" for key, value in {**self.settings, **listen}.items()]
        # postgresql.auto.conf is read last: rewriting it wins over initdb's file, and a
        # retry with a new port replaces the previous attempt's lines.
        auto = self.data_dir / "postgresql.auto.conf"
        auto.write_text("# written by tools/pg_cluster.py\n" + "\n".join(lines) + "\n")

    def _command(
        self, run_as: _RunAs | None, program: str, *args: str, cwd: Path | None = None
    ) -> str:
        env = _env_without_pg()
        env["LC_ALL"] = "C.UTF-8"
        workdir = cwd or self._dir
        if run_as is not None:
            # root's home and working directory are not the server user's to read.
            env.update(HOME=str(workdir), USER=run_as.name, LOGNAME=run_as.name)
        result = subprocess.run(
            [str(self.bin_dir / program), *args], cwd=workdir, env=env,
            capture_output=True, text=True, check=False,
            user=None if run_as is None else run_as.uid,
            group=None if run_as is None else run_as.gid,
            extra_groups=None if run_as is None else [],
        )
        if result.returncode != 0:
            raise PgClusterError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}"
                f"\n{self.log_tail()}"
            )
        output: str = result.stdout
        return output

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        with contextlib.suppress(OSError, PgClusterError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- databases -----------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database (UTF-8, from template0) and return its DSN."""
        self.psql("postgres", f"CREATE DATABASE {check_name(name)} TEMPLATE template0")
        self.databases.append(name)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (closing its sessions first)."""
        self.psql("postgres", f"DROP DATABASE IF EXISTS {check_name(name)} WITH (FORCE)")
        if name in self.databases:
            self.databases.remove(name)

    def psql(self, database: str, sql: str) -> str:
        """Run SQL with the cluster's own ``psql`` (no Python driver needed) and return
        its unaligned, tuples-only output (``|`` between columns)."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database,
                "-c", sql,
            ],
            env=_env_without_pg(),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise PgClusterError(f"psql: {result.stderr.strip()}")
        return result.stdout.strip()

    @property
    def version(self) -> str:
        """The server's version string (``SHOW server_version``)."""
        return self.psql("postgres", "SHOW server_version")


def main(argv: list[str] | None = None) -> int:
    """The command: start a cluster, print where it is, keep it until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--find", action="store_true", help="print the binaries' directory")
    parser.add_argument("--tcp", action="store_true", help="listen on a free loopback port")
    parser.add_argument("--durable", action="store_true", help="keep fsync and friends on")
    parser.add_argument("--db", action="append", default=[], help="create this database")
    args = parser.parse_args(argv)
    if args.find:
        found = find_bin_dir()
        print(found or f"no PostgreSQL binaries under {DEBIAN_ROOT} (make postgres)")
        return 0 if found else 1
    started = time.perf_counter()
    with PgCluster(tcp=args.tcp, durable=args.durable) as instance:
        for name in args.db:
            instance.create_database(name)
        print(f"PostgreSQL {instance.version} in {instance.directory}"
              f" (started in {time.perf_counter() - started:.1f} s)")
        for name in args.db or ["postgres"]:
            print(f"  {name}: {instance.url(name)}")
        print("Ctrl-C stops it and removes the directory.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
