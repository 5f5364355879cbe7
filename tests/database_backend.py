"""The database engine the suite's nodes run on: SQLite (the default) or PostgreSQL.

``XNODE_TEST_DATABASE=postgres`` runs every node the tests make (in-process apps through
``conftest.make_settings``, subprocess nodes through ``served_node``) on PostgreSQL: each
test process (each pytest-xdist worker) starts its own throwaway cluster
(``tools/pg_cluster.py``) on first use, migrates one template database, and gives every
node a fresh database cloned from it (``CREATE DATABASE ... TEMPLATE``: a file copy, much
faster than running the migrations again). Databases made for a test are dropped when it
ends, so a run's disk use stays at a few nodes' worth.

Tests of SQLite itself (WAL, online backup, the one-writer group commit) open their own
``.sqlite3`` files and run the same on both passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pg_cluster import PgCluster

BACKEND = os.environ.get("XNODE_TEST_DATABASE", "sqlite")
ON_POSTGRES = BACKEND == "postgres"
TEMPLATE = "xnode_template"

_lock = threading.Lock()
_cluster: PgCluster | None = None
_names = itertools.count(1)
_made: list[str] = []


def _migrate(url: str) -> None:
    """Run the migrations on ``url`` (on a thread of its own: a test's loop may be running)."""
    from xnode.store.database import open_database

    async def run() -> None:
        async with open_database(url):
            pass

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def cluster() -> PgCluster:
    """This process's cluster, started (and its template migrated) on first use."""
    global _cluster
    with _lock:
        if _cluster is None:
            started = PgCluster().start()
            started.create_database(TEMPLATE)
            _migrate(started.url(TEMPLATE))
            _cluster = started
        return _cluster


def fresh_database_url() -> str:
    """A new, migrated, empty PostgreSQL database for one node; dropped after the test."""
    pg = cluster()
    name = f"node_{os.getpid()}_{next(_names)}"
    pg.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
    _made.append(name)
    return pg.url(name)


def empty_database_url() -> str:
    """A new PostgreSQL database with no tables at all (as ``createdb`` leaves it), for
    tests of the migrations and of moving a node; dropped after the test."""
    pg = cluster()
    name = f"empty_{os.getpid()}_{next(_names)}"
    pg.create_database(name)
    _made.append(name)
    return pg.url(name)


def drop_made_databases() -> None:
    """Drop the databases made since the last call (the end of a test)."""
    if not _made or _cluster is None:
        return
    names = list(_made)
    _made.clear()
    for name in names:
        _cluster.drop_database(name)


def database_target(path: Path) -> str | Path:
    """Where a node's database lives on this run: ``path`` on SQLite, a new PostgreSQL
    database otherwise."""
    return fresh_database_url() if ON_POSTGRES else path


class _Rows:
    """A finished statement's rows, read as a ``sqlite3`` cursor's are."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class SyncPostgres:
    """A synchronous look into a node's PostgreSQL database for tests that read (or seed)
    a stopped or frozen ``xnode serve`` the way they use ``sqlite3``: ``execute``,
    ``executemany``, ``fetchone``/``fetchall``, rows by name or position. asyncpg runs on
    a private event loop in its own thread; each statement commits on its own."""

    def __init__(self, url: str) -> None:
        import asyncpg

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn = self._call(asyncpg.connect(url))

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        # As the backend runs a statement (xnode/store/postgres.py), without a pool.
        from xnode.store.postgres import numbered, returns_rows, rowcount

        if returns_rows(sql):
            rows = self._call(self._conn.fetch(numbered(sql), *params))
            return _Rows(list(rows), len(rows))
        return _Rows([], rowcount(self._call(self._conn.execute(numbered(sql), *params))))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        from xnode.store.postgres import numbered

        self._call(self._conn.executemany(numbered(sql), [tuple(r) for r in rows]))

    def __enter__(self) -> SyncPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # every statement has committed already

    def close(self) -> None:
        self._call(self._conn.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def node_database(data_dir: Path, sqlite_file: Path) -> Iterator[Any]:
    """A synchronous connection to a served node's database, on either engine (its
    ``database_url`` in ``xnode.toml``, else its SQLite file)."""
    from xnode.settings import load_settings

    url = load_settings(data_dir, environ={}).database_url
    if url is None:
        conn = sqlite3.connect(sqlite_file)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()
        return
    pg = SyncPostgres(url)
    try:
        yield pg
    finally:
        pg.close()
