"""A real ``xnode serve`` in a subprocess, with its helper processes, for tests that kill it.

Durability is about what survives ``kill -9``, which an in-process node cannot
show. :class:`ServedNode` initialises a node as ``xnode init`` does, starts
``xnode serve`` in a process group of its own (the serving process, the inbox
process and the delivery processes), can arm fault points
(``XNODE_FAULT_PAUSE``, :mod:`xnode.faults`) so that a process freezes at an
exact moment, and kills the whole group with SIGKILL. :class:`WebUser` drives
it through its web UI as a browser would (login, CSRF tokens, forms).

Also used by ``bench/crash_fanout.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from database_backend import ON_POSTGRES, SyncPostgres, fresh_database_url, node_database
from ports import free_port

from xnode.accounts.service import AccountService
from xnode.bootstrap import init_node
from xnode.clock import SystemClock
from xnode.settings import DATABASE_FILE, load_settings
from xnode.store.database import open_database

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def init_with_users(
    data_dir: Path, port: int, users: Iterable[str], *, database_url: str | None, cores: int,
    password: str = PASSWORD,
) -> None:
    """``xnode init`` a node listening on 127.0.0.1:``port`` (its domain too), registration
    open, then create ``users`` through the account service, as a sign-up does."""
    await init_node(
        data_dir, domain=f"127.0.0.1:{port}", https=False, listen=f"127.0.0.1:{port}",
        registration="open", cores=cores, database_url=database_url,
    )  # fmt: skip
    settings = load_settings(data_dir, environ={})
    async with open_database(settings.database) as db:
        accounts = AccountService(db, settings, SystemClock())
        for user in users:
            await accounts.create_user(user, password)


@dataclass
class ServedNode:
    """A node in ``data_dir``, served by a real ``xnode serve`` process group when started."""

    data_dir: Path
    port: int
    log_path: Path
    settings: dict[str, str] = field(default_factory=dict)  # XNODE_* for every start
    process: subprocess.Popen[bytes] | None = None

    @property
    def domain(self) -> str:
        """The node's domain (host:port on loopback)."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The node's public URL."""
        return f"http://{self.domain}"

    @classmethod
    async def create(
        cls, tmp: Path, name: str, *, users: tuple[str, ...] = (),
        database_url: str | None = None, **settings: Any,
    ) -> ServedNode:
        """Initialise a node (not started) with these users; ``settings``: XNODE_* overrides;
        ``database_url``: its PostgreSQL database (default: the suite's engine).

        Helper processes are on, as ``xnode init`` sets them on a two-core
        machine, whatever this machine has: an inbox process and two delivery
        processes.
        """
        port = free_port()
        data_dir = tmp / name
        if database_url is None and ON_POSTGRES:
            database_url = fresh_database_url()
        await init_with_users(data_dir, port, users, database_url=database_url, cores=2)
        values = {
            "allow_private_addresses": "true", "call_relay": "false", "call_relay_port": "0",
            **{k: str(v) for k, v in settings.items()},
        }  # fmt: skip
        env = {f"XNODE_{key.upper()}": value.lower() for key, value in values.items()}
        return cls(data_dir, port, tmp / f"{name}.log", env)

    def start(
        self, *, pause_at: str | None = None, cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``xnode serve`` (a process group of its own); ``pause_at`` arms fault points."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("XNODE_")}
        environ.update(self.settings)
        if pause_at:
            environ["XNODE_FAULT_PAUSE"] = pause_at
        environ.update(env or {})
        with self.log_path.open("ab") as log:
            log.write(f"--- start (pause at {pause_at})\n".encode())
            # The installed `xnode` command, as people run it (not `python -m`, which
            # would take an xnode/ folder in the working directory first).
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "xnode"), "serve", "--data", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT, env=environ, start_new_session=True,
                cwd=cwd or self.data_dir.parent,
            )  # fmt: skip

    async def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Wait until the node answers its front page."""
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None and self.process.poll() is None, self.log()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.base_url}/") as response:
                        if response.status == 200:
                            return
                assert time.monotonic() < deadline, f"not serving in time:\n{self.log()}"
                await asyncio.sleep(0.1)

    async def wait_log(self, text: str, timeout_s: float = 30.0, after: int = 0) -> int:
        """Wait until the log holds ``text`` (from offset ``after``); returns where it ends."""
        deadline = time.monotonic() + timeout_s
        while True:
            log = self.log_path.read_bytes()
            found = log.find(text.encode(), after)
            if found >= 0:
                return found + len(text)
            assert time.monotonic() < deadline, f"{text!r} not logged in time:\n{self.log()}"
            await asyncio.sleep(0.05)

    async def wait_paused(self, point: str, timeout_s: float = 30.0) -> None:
        """Wait until a process of the node froze at fault point ``point``."""
        await self.wait_log(f"paused at {point}", timeout_s)

    def kill(self) -> None:
        """SIGKILL the whole group (serving process and helpers), as a crash would."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        # Helpers are in the group too; wait until none is left.
        deadline = time.monotonic() + 10
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.process = None

    def stop(self) -> None:
        """SIGTERM the group and wait (a clean stop)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def log(self) -> str:
        """Everything the node's processes wrote (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-6000:]

    @contextlib.contextmanager
    def database(self) -> Iterator[Any]:
        """A connection to the node's database, to look (never to change): ``sqlite3``'s,
        or on PostgreSQL one that reads the same way (tests/database_backend.py)."""
        with node_database(self.data_dir, self.data_dir / DATABASE_FILE) as conn:
            yield conn


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class WebUser:
    """A person using a served node's web UI (cookies, CSRF tokens, forms)."""

    def __init__(self, node: ServedNode | None, base_url: str | None = None) -> None:
        self.node = node
        # unsafe: cookies for an IP-address host (127.0.0.1) are kept too.
        self.session = aiohttp.ClientSession(
            base_url=base_url or (node.base_url if node else None),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )

    @classmethod
    def for_url(cls, base_url: str) -> WebUser:
        """A browser for any node at ``base_url`` (an in-process one, say)."""
        return cls(None, base_url)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.session.close()

    async def token(self, page: str = "/") -> str:
        """The CSRF token of a page's forms."""
        async with self.session.get(page) as response:
            assert response.status == 200, await response.text()
            match = _CSRF.search(await response.text())
        assert match, f"no CSRF token on {page}"
        return match[1]

    async def login(self, username: str, password: str = PASSWORD) -> None:
        """Sign in through the login form."""
        status = await self.submit("/login", {"username": username, "password": password},
                                   token_page="/login")  # fmt: skip
        assert status == 303, f"login answered {status}"

    async def submit(
        self, path: str, data: dict[str, str], *, token_page: str = "/"
    ) -> int:
        """Post a form with a fresh CSRF token; the response's status."""
        form = {"csrf_token": await self.token(token_page), **data}
        async with self.session.post(path, data=form, allow_redirects=False) as response:
            return response.status

    async def submit_until_frozen(
        self, path: str, data: dict[str, str], point: str, *, token_page: str = "/"
    ) -> None:
        """Post a form that freezes the node at ``point``; returns once it has frozen."""
        form = {"csrf_token": await self.token(token_page), **data}
        request = asyncio.ensure_future(self.session.post(path, data=form, allow_redirects=False))
        assert self.node is not None
        try:
            await self.node.wait_paused(point)
        finally:
            request.cancel()
            with contextlib.suppress(BaseException):
                await request


# --- other servers' inboxes, for a large fan-out ----------------------------------------


class Receivers:
    """Inboxes on many loopback ports (hosts) that answer 202 and record what came.

    No signature is checked: they stand for dozens of other servers in a test
    about what reaches them, not about how it is signed (other tests are).
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        """``delay_s``: how long each inbox takes to answer (a slow peer)."""
        self.delay_s = delay_s
        self.ports: list[int] = []
        self.received: list[tuple[str, str]] = []  # (inbox URL, activity id), duplicates kept
        self._runner: Any = None

    async def start(self, hosts: int) -> None:
        """Listen on ``hosts`` ports."""
        from aiohttp import web

        async def inbox(request: web.Request) -> web.Response:
            activity = await request.json()
            self.received.append((f"http://{request.host}{request.path}", activity["id"]))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/users/{name}/inbox", inbox)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for _ in range(hosts):
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def inboxes(self, per_host: int) -> list[str]:
        """The personal inbox URL of every follower :func:`add_followers` makes."""
        return [
            f"http://127.0.0.1:{port}/users/f{n}/inbox"
            for port in self.ports for n in range(per_host)
        ]  # fmt: skip

    def reached(self, activity_id: str) -> list[str]:
        """The inboxes an activity reached, once per arrival (duplicates kept)."""
        return [inbox for inbox, received in self.received if received == activity_id]


def add_followers(node: ServedNode, username: str, ports: list[int], per_host: int) -> int:
    """Remote accounts ``f<n>`` on every port, each with a personal inbox, following
    ``username`` (accepted), as the node stores them after real follows; returns how many.

    Written before the node starts (test set-up, straight into its database: thousands
    of real follows would make the test about following).
    """
    now = time.time()
    with node_database(node.data_dir, node.data_dir / DATABASE_FILE) as conn, conn:
        (author_id,) = conn.execute(
            "SELECT id FROM accounts WHERE username = ? AND domain IS NULL", (username,)
        ).fetchone()
        (next_id,) = conn.execute("SELECT max(id) + 1 FROM accounts").fetchone()
        rows = []
        for port in ports:
            for n in range(per_host):
                uri = f"http://127.0.0.1:{port}/users/f{n}"
                rows.append((next_id, f"f{n}", f"f{n}", f"127.0.0.1:{port}", uri, uri,
                             f"{uri}/inbox", now, now, now))  # fmt: skip
                next_id += 1
        conn.executemany(
            "INSERT INTO accounts (id, username, username_key, domain, uri, url, inbox_url,"
            " fetched_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO follows (id, account_id, target_account_id, state, created_at)"
            " VALUES (?, ?, ?, 'accepted', ?)",
            [(row[0], row[0], author_id, now) for row in rows],
        )
        if isinstance(conn, SyncPostgres):
            # Ids written by hand: PostgreSQL's identity sequences must move past them
            # (remote accounts stored later take theirs from the sequence).
            for table in ("accounts", "follows"):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT MAX(id) FROM {table}))"
                )
    return len(rows)


# --- one node served by two processes (issue 18) ----------------------------------------


_pair_names = iter(range(1_000_000))


class Pair:
    """One node served by two processes (``one`` and ``two``) sharing its database."""

    def __init__(self, one: ServedNode, two: ServedNode, url: str) -> None:
        self.one, self.two, self.url = one, two, url

    @property
    def domain(self) -> str:
        """The node's domain (process 1's address: the one in its URLs)."""
        return self.one.domain

    async def start(self) -> None:
        """Start both processes and wait until each answers."""
        self.one.start()
        self.two.start()
        await asyncio.gather(self.one.wait_serving(), self.two.wait_serving())

    def stop(self) -> None:
        """Stop both processes."""
        self.one.stop()
        self.two.stop()

    def logs(self) -> str:
        """Both processes' logs (for failure messages)."""
        return f"--- process 1:\n{self.one.log()}\n--- process 2:\n{self.two.log()}"


async def make_pair(tmp: Path, users: tuple[str, ...]) -> Pair:
    """Initialise a PostgreSQL node with ``users``, served by two processes (not started).

    The helper processes are on (``cores=2``, as ``xnode init`` sets on a two-core
    machine): each serving process has its own, all sharing the queues.
    """
    url = fresh_database_url()
    one = await ServedNode.create(
        tmp, f"several_{next(_pair_names)}", users=users, database_url=url
    )
    port_two = free_port()
    two = ServedNode(
        one.data_dir, port_two, one.log_path.with_name(f"{one.data_dir.name}-2.log"),
        {**one.settings, "XNODE_LISTEN": f"127.0.0.1:{port_two}"},
    )  # fmt: skip
    return Pair(one, two, url)
