"""Numbered, forward-only schema migrations.

Each migration is a module ``mNNN_<name>.py`` defining ``STATEMENTS``; it is
applied in one transaction and recorded in ``schema_migrations``. A node
refuses to open a database that records a migration newer than its code.
Statements may call the SQL functions in ``MIGRATION_FUNCTIONS`` (for data
changes that must agree with Python code, such as a host's delivery shard).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiosqlite

from xnode.store.shards import host_shard

if TYPE_CHECKING:
    from xnode.store.database import Database

_MODULE_NAME = re.compile(r"^m(\d{3})_(\w+)$")


MIGRATION_FUNCTIONS = {"xnode_host_shard": host_shard}
"""SQL functions (one argument, deterministic) that migrations may call."""


class SchemaTooNewError(Exception):
    """The database was migrated by a newer version of xnode."""


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    version: int
    name: str
    statements: tuple[str, ...]


def all_migrations() -> list[Migration]:
    """Every migration shipped with this code, in version order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(int(match[1]), match[2], tuple(module.STATEMENTS)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must be 1..n without gaps, got {versions}")
    return found


async def applied_versions(conn: aiosqlite.Connection) -> set[int]:
    """Versions already recorded in the database."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    async with conn.execute("SELECT version FROM schema_migrations") as cursor:
        return {row[0] for row in await cursor.fetchall()}


async def schema_version(db: Database) -> int | None:
    """The newest migration the database records (None: none yet), for ``xnode check``."""
    version = await db.fetchvalue("SELECT MAX(version) FROM schema_migrations")
    return None if version is None else int(version)


async def apply_migrations(conn: aiosqlite.Connection) -> list[int]:
    """Apply every pending migration, each in its own transaction.

    Returns:
        The versions applied now.

    Raises:
        SchemaTooNewError: if the database has a migration this code lacks.
    """
    migrations = all_migrations()
    done = await applied_versions(conn)
    newest_known = migrations[-1].version if migrations else 0
    if done and max(done) > newest_known:
        raise SchemaTooNewError(
            f"database schema version {max(done)} is newer than this xnode "
            f"(knows up to {newest_known}); upgrade xnode before serving this data"
        )
    for name, function in MIGRATION_FUNCTIONS.items():
        await conn.create_function(name, 1, function, deterministic=True)
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        applied.append(migration.version)
    return applied
