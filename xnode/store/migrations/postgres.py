"""Applying the schema migrations to a PostgreSQL database (issue 18).

The same numbered list as SQLite's (:func:`xnode.store.migrations.all_migrations`),
each migration's ``POSTGRES`` statements in one transaction, recorded in
``schema_migrations``; a database that records a migration newer than this code is
refused with :class:`~xnode.store.migrations.SchemaTooNewError`.

Several processes may start at once against one database (several ``xnode serve``
behind a proxy): a session-level advisory lock, held for the whole run, makes the
second wait until the first is done, then find nothing left to apply.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from xnode.store.migrations import SchemaTooNewError, all_migrations

if TYPE_CHECKING:
    import asyncpg

MIGRATION_LOCK_KEY = 0x786E6F6465_4D47
"""The advisory lock's key (``"xnodeMG"``): any constant that no other lock of this
database uses."""

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


async def apply_postgres_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration to a PostgreSQL database, each in its own
    transaction, holding the migration lock meanwhile.

    Args:
        conn: a connection outside any transaction (the lock is the session's, and each
            migration commits on its own).

    Returns:
        The versions applied now (empty when the database was up to date, also when
        another process applied them while this one waited for the lock).

    Raises:
        SchemaTooNewError: if the database has a migration this code lacks.
    """
    migrations = all_migrations()
    newest_known = migrations[-1].version if migrations else 0
    # A session lock rather than pg_advisory_xact_lock per migration: the CREATE TABLE
    # IF NOT EXISTS below is itself racy between two sessions (both see no table, one
    # fails on the catalog's unique index), and the applied versions must be read after
    # the other process is done, so the lock must cover the whole run.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        done = {
            int(row["version"])
            for row in await conn.fetch("SELECT version FROM schema_migrations")
        }
        if done and max(done) > newest_known:
            raise SchemaTooNewError(
                f"database schema version {max(done)} is newer than this xnode "
                f"(knows up to {newest_known}); upgrade xnode before serving this data"
            )
        applied: list[int] = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                for statement in migration.postgres_statements:
                    # No arguments: asyncpg sends it as a simple query, which takes
                    # function bodies and several statements alike.
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES ($1, $2, $3)",
                    migration.version, migration.name, time.time(),
                )
            applied.append(migration.version)
        return applied
    finally:
        # A closed connection has released its session's locks already.
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
