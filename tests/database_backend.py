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
import itertools
import os
import threading
from pathlib import Path

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
