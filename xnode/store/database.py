"""SQLite access: one writer connection, a few reader connections.

SQLite allows one writer at a time; funnelling every write through a single
connection guarded by an asyncio lock serialises them without ``SQLITE_BUSY``
storms, while WAL lets the reader connections answer queries concurrently
without waiting for writes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from xnode.store.migrations import apply_migrations

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
BUSY_TIMEOUT_MS = 5000


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class Database:
    """The node's SQLite database.

    Use :meth:`transaction` for writes (one at a time, atomically) and
    :meth:`fetchone` / :meth:`fetchall` for reads.
    """

    def __init__(self, path: Path, readers: int = 3) -> None:
        self.path = path
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        """Open connections, switch to WAL and apply pending migrations.

        Raises:
            SchemaTooNewError: if the database was written by a newer xnode.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await _connect(self.path)
        try:
            await self._writer.execute("PRAGMA journal_mode = WAL")
            applied = await apply_migrations(self._writer)
            if applied:
                log.info("applied migrations %s", ", ".join(str(v) for v in applied))
            for _ in range(self._reader_count):
                reader = await _connect(self.path)
                await reader.execute("PRAGMA query_only = ON")
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
        except BaseException:
            # An open aiosqlite connection's thread keeps the process alive.
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection (checkpointing the WAL on the writer)."""
        for reader in self._all_readers:
            await reader.close()
        self._all_readers.clear()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block's writes as one transaction on the writer connection.

        Commits when the block ends normally and rolls back on any exception,
        so a failed operation never leaves partial rows behind.
        """
        if self._writer is None:
            raise RuntimeError("database is not open")
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._readers.get()
        try:
            yield conn
        finally:
            self._readers.put_nowait(conn)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a query on a reader connection and return the first row, if any."""
        async with self._reader() as conn, conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a query on a reader connection and return every row."""
        async with self._reader() as conn, conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchvalue(self, sql: str, params: Params = ()) -> Any:
        """Run a query and return the first column of the first row (or None)."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def backup_to(self, target: Path) -> None:
        """Copy the database to ``target`` with SQLite's online backup API.

        Safe while the node is serving: the copy is a consistent snapshot.
        """
        if self._writer is None:
            raise RuntimeError("database is not open")
        dest = await aiosqlite.connect(target)
        try:
            await self._writer.backup(dest)
        finally:
            await dest.close()

    async def integrity_problems(self) -> list[str]:
        """Run SQLite's integrity and foreign-key checks; return any problems."""
        problems: list[str] = []
        for row in await self.fetchall("PRAGMA integrity_check"):
            if row[0] != "ok":
                problems.append(str(row[0]))
        problems.extend(
            f"foreign key violation in {row[0]} (rowid {row[1]})"
            for row in await self.fetchall("PRAGMA foreign_key_check")
        )
        return problems


@asynccontextmanager
async def open_database(path: Path) -> AsyncIterator[Database]:
    """Open a database for the length of a block (CLI commands, tests)."""
    db = Database(path)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
