"""The SQLite backend: one writer connection, a few reader connections.

SQLite allows one writer at a time; funnelling every write through a single
connection guarded by an asyncio lock serialises them without ``SQLITE_BUSY``
storms, while WAL lets the reader connections answer queries concurrently
without waiting for writes.

The writer runs its statements synchronously on the event loop's thread
(:class:`WriterConnection`), not on aiosqlite's worker thread. A write in WAL
mode with ``synchronous = NORMAL`` takes tens of microseconds, but a hop to a
worker thread and back costs a whole event-loop iteration, which under load is
milliseconds; a transaction of a dozen statements held the write lock for a
dozen such hops, and that, not SQLite, capped the inbox and the delivery queue
(issue 4). Readers stay on their own threads: queries can be slow, writes are not.

Point reads (one row by a unique index: an account by id, a key by its id) have
the same problem as writes did: the thread hop costs far more than the read,
and a reader thread handing its rows back waits for the GIL while the loop is
busy. :meth:`Database.lookup` runs such reads on a read-only connection on the
loop's thread instead. It is for indexed lookups of a few rows only; anything
that scans goes through :meth:`Database.fetchall`.

Durability: WAL with ``synchronous = NORMAL`` makes a commit durable against the
process dying (``kill -9``: the WAL is in the OS's hands once ``COMMIT`` returns);
only a power loss or kernel crash can lose the last commits. That is the
guarantee the docs make. WAL checkpoints (the step that does fsync) run on a
background aiosqlite connection, so they never stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from xnode.store.database import Dialect, IntegrityError, Params, Row
from xnode.store.migrations import apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
CHECKPOINT_EVERY_COMMITS = 1000
"""Writer commits between background WAL checkpoints (SQLite's own default is per 1000 pages)."""
_BUSY_RETRY_S = 0.005
INLINE_KEYS_MAX = 64
"""Keyed reads of up to this many keys run inline (:meth:`Database.fetch_keyed`)."""


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class _Cursor:
    """The part of an aiosqlite cursor that store code uses, over a plain sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return self._cursor.rowcount

    async def fetchone(self) -> Row | None:
        """The next row, if any."""
        row: Row | None = self._cursor.fetchone()
        return row

    async def fetchall(self) -> list[Row]:
        """Every remaining row."""
        return list(self._cursor.fetchall())

    async def close(self) -> None:
        """Release the cursor."""
        self._cursor.close()

    def __aiter__(self) -> AsyncIterator[Row]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Row]:
        for row in self._cursor:
            yield row


class _Result:
    """Awaitable and ``async with``-able, as aiosqlite's ``execute`` result is."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: _Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._done().__await__()

    async def _done(self) -> _Cursor:
        return self._cursor

    async def __aenter__(self) -> _Cursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


@contextlib.contextmanager
def _integrity() -> Iterator[None]:
    """SQLite's constraint errors as the interface's one :class:`IntegrityError`."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc


class WriterConnection:
    """The writer: aiosqlite's connection API, run synchronously on the loop's thread.

    Only :meth:`Database.transaction` hands it out, inside ``BEGIN IMMEDIATE``,
    so no statement can wait for another writer (the lock is already ours) and
    none blocks the loop for longer than SQLite takes to do the work.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, versions: dict[str, int]) -> None:
        self._conn = conn
        self._versions = versions  # shared with Database.table_version
        self.deferred: list[tuple[str, Params]] = []  # the running block's at_commit()s

    def at_commit(self, sql: str, parameters: Params = ()) -> None:
        """Run a write just before this block's group commits, in the same transaction.

        For inserts nothing reads back before the commit, into tables whose writes
        cost more one at a time: FTS5 writes its pending terms out at every later
        statement savepoint, so the full-text rows of a commit group go in
        together. If the block fails, its deferred writes are dropped with it;
        if a deferred write fails, the whole group fails.
        """
        self.deferred.append((sql, parameters))

    def _note(self, sql: str) -> None:
        # In-memory caches of small tables go stale on any write naming the table
        # (a substring test: cheap, and errs on the side of invalidating).
        for table in self._versions:
            if table in sql:
                self._versions[table] += 1

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return self._conn.in_transaction

    @property
    def row_factory(self) -> Any:
        """The row factory of the underlying connection."""
        return self._conn.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._conn.row_factory = factory

    def execute(self, sql: str, parameters: Params = ()) -> _Result:
        """Run one statement; await the result or use it in ``async with``."""
        return _Result(_Cursor(self.run(sql, parameters)))

    def executemany(self, sql: str, parameters: Iterable[Params]) -> _Result:
        """Run one statement for every parameter set."""
        return _Result(_Cursor(self.run_many(sql, parameters)))

    async def execute_fetchall(self, sql: str, parameters: Params = ()) -> list[Row]:
        """Run a statement and return every row."""
        return list(self.run(sql, parameters).fetchall())

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def run(self, sql: str, parameters: Params = ()) -> sqlite3.Cursor:
        """Run one statement synchronously."""
        self._note(sql)
        with _integrity():
            return self._conn.execute(sql, parameters)

    def run_many(self, sql: str, parameters: Iterable[Params]) -> sqlite3.Cursor:
        """Run one statement for every parameter set, synchronously."""
        self._note(sql)
        with _integrity():
            return self._conn.executemany(sql, parameters)


class _ReaderPool:
    """Read-only connections on their own threads; one query is one hop there and back.

    aiosqlite needed three hops for a ``fetchone`` (execute, fetch, close), each
    waiting for an event-loop iteration (issue 4). And a connection handed to a
    waiting coroutine stayed taken until the loop resumed it, so under load the
    queries queued for connections that were idle, waiting on the loop: a tenth of
    page reads waited 350 ms for one (issue 15). Here each thread keeps its own
    connection and takes the next query as soon as it has finished the last: the
    executor's queue is the only queue, first come first served.
    """

    def __init__(self, path: Path, size: int) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="xnode-db-read")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Closed from the loop's thread at shutdown, once no query runs.
            conn = self._local.conn = _connect_reader(self._path, same_thread=False)
            with self._lock:
                self._connections.append(conn)
        return work(conn)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with a reader connection on one of the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, work)

    async def close(self) -> None:
        """Let running queries finish, stop the threads, close the connections."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _connect_reader(path: Path, *, same_thread: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=same_thread)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA query_only = ON")
    return conn


def _connect_writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    # No busy wait on this connection: it would block the event loop. BEGIN
    # IMMEDIATE is retried with asyncio sleeps instead (another process writing).
    conn.execute("PRAGMA busy_timeout = 0")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints fsync; they run from the background connection instead.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


@dataclass
class _CommitGroup:
    """Transaction blocks waiting for one ``COMMIT``."""

    committed: asyncio.Future[None]
    task: asyncio.Task[None] | None = None
    # Statements its blocks deferred to just before the COMMIT (WriterConnection.at_commit).
    deferred: list[tuple[str, Params]] = field(default_factory=list)


class SqliteDatabase:
    """The node's SQLite database (implements :class:`xnode.store.database.Database`).

    Use :meth:`transaction` for writes (one at a time, atomically) and
    :meth:`fetchone` / :meth:`fetchall` for reads.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._reader_count = readers
        # Migrations, backups and WAL checkpoints: slow work, on aiosqlite's thread.
        self._maintenance: aiosqlite.Connection | None = None
        self._writer: WriterConnection | None = None
        self._inline_reader: sqlite3.Connection | None = None
        self._commits_since_checkpoint = 0
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._table_versions: dict[str, int] = {}
        self._readers: _ReaderPool | None = None
        self._write_lock = asyncio.Lock()
        self._open_group: _CommitGroup | None = None
        self.commits = 0
        """Commits made by the writer since opening (each may carry many blocks)."""

    async def open(self) -> None:
        """Open connections, switch to WAL and apply pending migrations.

        Raises:
            SchemaTooNewError: if the database was written by a newer xnode.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._maintenance = await _connect(self.path)
        try:
            await self._maintenance.execute("PRAGMA journal_mode = WAL")
            applied = await apply_migrations(self._maintenance)
            if applied:
                log.info("applied migrations %s", ", ".join(str(v) for v in applied))
            self._writer = WriterConnection(_connect_writer(self.path), self._table_versions)
            # Readers never wait for the writer in WAL mode, so this cannot block on a lock.
            self._inline_reader = _connect_reader(self.path, same_thread=False)
            self._readers = _ReaderPool(self.path, self._reader_count)
        except BaseException:
            # An open aiosqlite connection's thread keeps the process alive.
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection (the last one to close checkpoints the WAL)."""
        group = self._open_group
        if group is not None:  # blocks that ended just now: let their commit run
            with contextlib.suppress(Exception):
                await asyncio.shield(group.committed)
        if self._checkpoint_task is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint_task
            self._checkpoint_task = None
        if self._readers is not None:
            await self._readers.close()
            self._readers = None
        if self._inline_reader is not None:
            self._inline_reader.close()
            self._inline_reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._maintenance is not None:
            await self._maintenance.close()
            self._maintenance = None

    def table_version(self, table: str) -> int:
        """A counter that changes whenever this database's writer runs SQL naming ``table``.

        For in-memory caches of small tables: the first call starts the watch.
        Writes by other processes are not seen; such caches also need an expiry.
        """
        return self._table_versions.setdefault(table, 0)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriterConnection]:
        """Run the block's writes as one transaction on the writer connection.

        The block's writes are committed when the block ends normally (the
        ``async with`` returns only once they are durable) and rolled back on any
        exception, so a failed operation never leaves partial rows behind.

        Group commit: blocks that end within the same event-loop iteration share
        one ``COMMIT``, each inside its own savepoint. A commit writes every page
        the transaction touched to the WAL (the posts table, its indexes, a new
        full-text segment), so under load one commit per block was the largest
        single cost of the inbox (issue 4). Each block still succeeds or fails on
        its own; only a failing ``COMMIT`` fails every block of its group.
        """
        writer = self._writer
        if writer is None:
            raise RuntimeError("database is not open")
        async with self._write_lock:
            group = self._open_group
            if group is None:
                await self._begin(writer)
                group = self._open_group = _CommitGroup(asyncio.get_running_loop().create_future())
                asyncio.get_running_loop().call_soon(self._schedule_commit, group)
            writer.run("SAVEPOINT block")
            writer.deferred = []
            try:
                yield writer
            except BaseException as exc:
                writer.deferred = []
                if writer.in_transaction:
                    writer.run("ROLLBACK TO block")
                    writer.run("RELEASE block")
                else:  # some errors (SQLITE_FULL) roll back the whole transaction
                    self._end_group(group, exc)
                raise
            else:
                writer.run("RELEASE block")
                group.deferred.extend(writer.deferred)
                writer.deferred = []
        # Outside the lock: the next blocks join the group meanwhile. Shielded, so
        # that a cancelled caller does not take the group's commit down with it.
        await asyncio.shield(group.committed)

    def _schedule_commit(self, group: _CommitGroup) -> None:
        if self._open_group is group:
            group.task = asyncio.create_task(self._commit(group))

    async def _commit(self, group: _CommitGroup) -> None:
        """Commit ``group`` once the block running now (if any) has ended."""
        async with self._write_lock:
            if self._open_group is not group:
                return  # already ended by a failure
            writer = self._writer
            try:
                if writer is None:
                    raise RuntimeError("database closed with a transaction open")
                for sql, parameters in group.deferred:
                    writer.run(sql, parameters)
                writer.run("COMMIT")
            except BaseException as exc:
                if writer is not None and writer.in_transaction:
                    writer.run("ROLLBACK")
                self._end_group(group, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                self._end_group(group, None)
                self._committed()

    def _end_group(self, group: _CommitGroup, error: BaseException | None) -> None:
        if self._open_group is group:
            self._open_group = None
        if group.committed.done():
            return
        if error is None:
            group.committed.set_result(None)
        else:
            group.committed.set_exception(
                error if isinstance(error, Exception) else RuntimeError(f"commit failed: {error!r}")
            )
            group.committed.exception()  # retrieved: members that were cancelled never await it

    async def _begin(self, writer: WriterConnection) -> None:
        """``BEGIN IMMEDIATE``, waiting (without blocking the loop) while another process writes."""
        waited_s = 0.0
        while True:
            try:
                writer.run("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if waited_s * 1000 >= BUSY_TIMEOUT_MS:
                    raise
            await asyncio.sleep(_BUSY_RETRY_S)
            waited_s += _BUSY_RETRY_S

    def _committed(self) -> None:
        """Count a commit; now and then checkpoint the WAL in the background."""
        self.commits += 1
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint < CHECKPOINT_EVERY_COMMITS:
            return
        if self._checkpoint_task is None or self._checkpoint_task.done():
            self._commits_since_checkpoint = 0
            self._checkpoint_task = asyncio.create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        if self._maintenance is None:
            return
        try:
            await self._maintenance.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    def _reader_pool(self) -> _ReaderPool:
        if self._readers is None:
            raise RuntimeError("database is not open")
        return self._readers

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query on a reader connection and return the first row, if any."""
        def query(conn: sqlite3.Connection) -> Row | None:
            row: Row | None = conn.execute(sql, params).fetchone()
            return row

        return await self._reader_pool().run(query)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query on a reader connection and return every row."""
        def query(conn: sqlite3.Connection) -> list[Row]:
            return list(conn.execute(sql, params).fetchall())

        return await self._reader_pool().run(query)

    async def lookup(self, sql: str, params: Params = ()) -> Row | None:
        """An indexed point read on the loop's thread: the first row, if any.

        Only for queries that reach a few rows through an index (tens of
        microseconds); they skip the reader threads' hop. It sees every committed
        write, like the readers, and never the writer's open transaction.
        """
        if self._inline_reader is None:
            raise RuntimeError("database is not open")
        cursor = self._inline_reader.execute(sql, params)
        try:
            row: Row | None = cursor.fetchone()
        finally:
            cursor.close()  # ends the read: the next lookup sees newer commits
        return row

    async def lookup_value(self, sql: str, params: Params = ()) -> Any:
        """Like :meth:`lookup`, the first column of the first row (or None)."""
        row = await self.lookup(sql, params)
        return None if row is None else row[0]

    async def lookup_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Like :meth:`lookup`, every row (for a handful of rows by an index)."""
        if self._inline_reader is None:
            raise RuntimeError("database is not open")
        return list(self._inline_reader.execute(sql, params).fetchall())

    async def fetch_keyed(self, sql: str, params: Params, keys: int) -> list[Row]:
        """Rows of a query that selects by ``keys`` index keys (``WHERE id IN (...)``).

        Hydrating a page or one message is a handful of such reads; inline, each
        costs what SQLite takes, where a reader thread's hop costs an event-loop
        iteration (milliseconds while the loop signs a delivery). Many keys go to
        a reader thread, so one large read never holds up the loop.
        """
        if keys <= INLINE_KEYS_MAX:
            return await self.lookup_all(sql, params)
        return await self.fetchall(sql, params)

    async def fetchvalue(self, sql: str, params: Params = ()) -> Any:
        """Run a query and return the first column of the first row (or None)."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def notify(self, channel: str, payload: str) -> None:
        """Nothing to do: one process serves a SQLite node (its helpers have their own
        links, :mod:`xnode.activitypub.inbox_process`)."""

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Nothing to hear: no other serving process shares a SQLite node."""

    async def backup_to(self, target: Path) -> None:
        """Copy the database to ``target`` with SQLite's online backup API.

        Safe while the node is serving: the copy is a consistent snapshot.
        """
        if self._maintenance is None:
            raise RuntimeError("database is not open")
        dest = await aiosqlite.connect(target)
        try:
            await self._maintenance.backup(dest)
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

