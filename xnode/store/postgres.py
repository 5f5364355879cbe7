"""The PostgreSQL backend (asyncpg, a pool of connections).

For nodes that outgrow one SQLite file (docs/admin.md, "Scaling out"). It implements
:class:`xnode.store.database.Database` over an asyncpg pool: reads take any pooled
connection, each transaction block holds one for its length. asyncpg was chosen over
psycopg 3 by ``bench/pg_drivers.py`` (docs/benchmarks.md, "PostgreSQL drivers"): less
client CPU per page and per write, and a smaller pool.

Store code writes ``?`` placeholders, SQLite's and the DB-API's; PostgreSQL numbers its
parameters (``$1``, ``$2``), so each statement is rewritten once (outside string
literals) and the rewrite is cached. Constraint errors become
:class:`xnode.store.database.IntegrityError`, as on SQLite.

Unlike SQLite, several transactions write at once here (and several processes): every
store function must be correct without a single writer (ids from ``RETURNING``, queue
rows claimed with ``FOR UPDATE SKIP LOCKED``, upserts instead of read-then-write).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

# Imported only where a node runs on PostgreSQL (database_for), so the embedded default
# needs no driver installed.
import asyncpg

from xnode.ids import PROCESS_TAGS, claim_process_tag, process_tag
from xnode.store.database import (
    CACHED_TABLES,
    Dialect,
    IntegrityError,
    Params,
    Row,
    written_tables,
)

log = logging.getLogger(__name__)

POOL_MIN = 1
"""Connections kept open when idle: a one-user node stays small."""
POOL_MAX = 10
CLOSE_TIMEOUT_S = 10.0
STATEMENT_CACHE = 1024
"""Prepared statements kept per connection (the store has a few hundred distinct ones)."""
_TRANSLATIONS_MAX = 4096

# A string literal, a quoted identifier, or a placeholder.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?\d*")
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW|EXPLAIN)\b|\bRETURNING\b", re.I)
_translations: dict[str, str] = {}

ID_TAG_LOCK = 0x786E  # "xn": the advisory lock space of the ID tags (the second key is the tag)

TABLES_CHANNEL = "xnode_tables"
"""Where each commit names the cached tables it wrote, comma-separated (``table_version``)."""


def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered ``$1``, ``$2``... (``?NNN`` keeps its
    number; cached)."""
    done = _translations.get(sql)
    if done is not None:
        return done
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        token = match.group(0)
        if not token.startswith("?"):
            return token  # a string literal or quoted name
        if len(token) > 1:
            return f"${token[1:]}"  # ?NNN: SQLite's numbered parameter, PostgreSQL's $NNN
        counter += 1
        return f"${counter}"

    done = _TOKEN.sub(number, sql)
    if len(_translations) >= _TRANSLATIONS_MAX:
        _translations.clear()  # dynamic IN-lists: a bound, not an LRU, is enough
    _translations[sql] = done
    return done


def returns_rows(sql: str) -> bool:
    """Whether a statement answers with rows (a query, or a write with ``RETURNING``):
    those run with ``fetch``, the others with ``execute`` for their command tag."""
    return _RETURNS_ROWS.search(sql) is not None


def rowcount(status: str) -> int:
    """Rows changed, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


@contextmanager
def _statement(sql: str) -> Iterator[None]:
    """Driver errors of one statement: constraint errors become :class:`IntegrityError`,
    any other carries the statement (in its traceback) for whoever reads the log."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(str(exc)) from exc
    except Exception as exc:
        exc.add_note(f"in: {sql}")
        raise


class _Cursor:
    """A finished statement's rows and count, read the way store code reads a cursor."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = iter(rows)
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        """The next row, if any."""
        return next(self._rows, None)

    async def fetchall(self) -> list[Row]:
        """Every remaining row."""
        return list(self._rows)

    def __aiter__(self) -> AsyncIterator[Row]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Row]:
        for row in self._rows:
            yield row


class _Result:
    """An awaitable (and ``async with``-able) statement run."""

    __slots__ = ("_run",)

    def __init__(self, run: Any) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, _Cursor]:
        cursor: _Cursor = yield from self._run.__await__()
        return cursor

    async def __aenter__(self) -> _Cursor:
        cursor: _Cursor = await self._run
        return cursor

    async def __aexit__(self, *exc: object) -> None:
        return None


class PostgresConnection:
    """One pooled connection inside a transaction block."""

    dialect: Dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection, owner: PostgresDatabase) -> None:
        self._conn = conn
        self._owner = owner
        self.deferred: list[tuple[str, Params]] = []
        self.touched: set[str] = set()  # watched tables this block wrote

    def at_commit(self, sql: str, parameters: Params = ()) -> None:
        """Run a write just before the block commits (in its transaction)."""
        self.deferred.append((sql, parameters))

    async def _run(self, sql: str, parameters: Params) -> _Cursor:
        self.touched.update(self._owner._note(sql))
        with _statement(sql):
            if returns_rows(sql):
                rows = await self._conn.fetch(numbered(sql), *parameters)
                return _Cursor(rows, len(rows))
            status = await self._conn.execute(numbered(sql), *parameters)
            return _Cursor([], rowcount(status))

    async def _run_many(self, sql: str, parameters: Iterable[Params]) -> _Cursor:
        self.touched.update(self._owner._note(sql))
        batch = [tuple(p) for p in parameters]
        with _statement(sql):
            await self._conn.executemany(numbered(sql), batch)
        return _Cursor([], len(batch))

    def execute(self, sql: str, parameters: Params = ()) -> _Result:
        """Run one statement; await the result or use it in ``async with``."""
        return _Result(self._run(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Params]) -> _Result:
        """Run one statement for every parameter set."""
        return _Result(self._run_many(sql, parameters))

    async def execute_fetchall(self, sql: str, parameters: Params = ()) -> list[Row]:
        """Run a statement and return every row."""
        return await (await self._run(sql, parameters)).fetchall()


class PostgresDatabase:
    """A node's PostgreSQL database (implements :class:`xnode.store.database.Database`)."""

    dialect: Dialect = "postgres"

    def __init__(self, url: str, *, pool_min: int = POOL_MIN, pool_max: int = POOL_MAX) -> None:
        self.url = url
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        self._table_versions = dict.fromkeys(CACHED_TABLES, 0)
        self._listener: asyncpg.Connection | None = None
        self._listeners: dict[str, list[Callable[[str], None]]] = {}
        self._listen_lock = asyncio.Lock()
        self._id_tag: int | None = None
        self.commits = 0

    async def open(self) -> None:
        """Open the pool and apply pending migrations.

        Raises:
            SchemaTooNewError: if the database was written by a newer xnode.
        """
        from xnode.store.migrations.postgres import apply_postgres_migrations

        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=self._pool_min,
            max_size=self._pool_max,
            statement_cache_size=STATEMENT_CACHE,
            # The pool's default reset (RESET ALL, UNLISTEN *, CLOSE ALL...) is a round
            # trip per release; nothing here changes session state, so none is needed.
            reset=_no_reset,
            # Prepared statements would switch to a generic plan after five runs; the home
            # timeline's next pages (id < ?) then walked the whole posts index (page query
            # 63.5 against 2.35 ms p50 at 1 M posts, bench/pg_timelines.py). Planning each
            # run with its values costs a fraction of a millisecond.
            server_settings={"plan_cache_mode": "force_custom_plan"},
        )
        try:
            async with self._pool.acquire() as conn:
                applied = await apply_postgres_migrations(conn)
            if applied:
                log.info("applied migrations %s", ", ".join(str(v) for v in applied))
            await self._claim_process_tag()
            await self.listen(TABLES_CHANNEL, self._tables_changed)
        except BaseException:
            await self.close()
            raise

    async def _claim_process_tag(self) -> None:
        """Hold one of the 256 ID tags for as long as this database is open, so that no
        other process on this database makes the IDs this one makes (:mod:`xnode.ids`).

        The tag is a session advisory lock on the listening connection: it is released
        when the connection ends, also when the process dies.
        """
        async with self._listen_lock:
            listener = await self._connect_listener()
            for tag in random.sample(range(PROCESS_TAGS), PROCESS_TAGS):
                if await listener.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", ID_TAG_LOCK, tag
                ):
                    self._id_tag = tag
                    claim_process_tag(tag)
                    return
        log.warning("all %d ID tags are taken: IDs may clash between processes", PROCESS_TAGS)

    async def _connect_listener(self) -> asyncpg.Connection:
        """The connection outside the pool (call with ``_listen_lock`` held)."""
        if self._listener is None:
            self._listener = await asyncpg.connect(self.url)
        return self._listener

    async def close(self) -> None:
        """Close the pool (waiting for connections in use to come back)."""
        if self._id_tag is not None and process_tag() == self._id_tag:
            claim_process_tag(None)  # the lock goes with the connection: stop using the tag
        self._id_tag = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # Graceful: waits for connections in use. A task still holding one at
                # shutdown (cancelled mid-query) must not keep the process from exiting.
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("database connections still in use at close: terminated")
                pool.terminate()

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    def _note(self, sql: str) -> list[str]:
        # A statement writing a cached table invalidates its caches here at once; the
        # transaction names it to every process when it commits (TABLES_CHANNEL). Every
        # cached table, not only those this process caches: another process may.
        touched = written_tables(sql)
        for table in touched:
            self._table_versions[table] += 1
        return touched

    def table_version(self, table: str) -> int:
        """A counter that changes whenever any process writes SQL naming ``table`` (one
        of :data:`xnode.store.database.CACHED_TABLES`): writes here at once, other
        processes' when they commit."""
        return self._table_versions[table]

    def _tables_changed(self, payload: str) -> None:
        for table in payload.split(","):
            if table in self._table_versions:
                self._table_versions[table] += 1

    # --- between processes: LISTEN / NOTIFY --------------------------------------------

    async def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to every process listening on ``channel`` (at once, or when
        sent from inside a transaction, at its commit)."""
        await self._pool_or_fail().execute("SELECT pg_notify($1, $2)", channel, payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` for every notification on ``channel`` (from any
        process, this one included). One connection outside the pool listens for all."""
        callbacks = self._listeners.get(channel)
        if callbacks is not None:
            if callback not in callbacks:
                callbacks.append(callback)
            return
        self._listeners[channel] = [callback]
        async with self._listen_lock:
            # One operation at a time on the connection: two LISTENs at once would fail.
            listener = await self._connect_listener()
            await listener.add_listener(channel, self._dispatch)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for callback in self._listeners.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("a listener on %s failed", channel)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        """Run the block's writes as one transaction on one pooled connection."""
        async with self._pool_or_fail().acquire() as conn, conn.transaction():
            block = PostgresConnection(conn, self)
            yield block
            for sql, parameters in block.deferred:
                await block.execute(sql, parameters)
            if block.touched:  # NOTIFY is transactional: sent at the commit
                await conn.execute(
                    "SELECT pg_notify($1, $2)", TABLES_CHANNEL, ",".join(sorted(block.touched))
                )
        self.commits += 1

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        with _statement(sql):
            rows: list[Row] = await self._pool_or_fail().fetch(numbered(sql), *params)
        return rows

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, if any."""
        with _statement(sql):
            row: Row | None = await self._pool_or_fail().fetchrow(numbered(sql), *params)
        return row

    async def fetchvalue(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (or None)."""
        with _statement(sql):
            return await self._pool_or_fail().fetchval(numbered(sql), *params)

    # Point reads have no cheaper path here than any other query: one round trip.
    async def lookup(self, sql: str, params: Params = ()) -> Row | None:
        """An indexed point read: the first row, if any."""
        return await self.fetchone(sql, params)

    async def lookup_value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row of a point read (or None)."""
        return await self.fetchvalue(sql, params)

    async def lookup_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a small indexed read."""
        return await self.fetchall(sql, params)

    async def fetch_keyed(self, sql: str, params: Params, keys: int) -> list[Row]:
        """Rows of a query selecting ``keys`` index keys."""
        return await self.fetchall(sql, params)

    async def backup_to(self, target: Path) -> None:
        """Not here: PostgreSQL is backed up with ``pg_dump`` (docs/admin.md)."""
        raise RuntimeError("a PostgreSQL node is backed up with pg_dump (docs/admin.md)")

    async def integrity_problems(self) -> list[str]:
        """PostgreSQL enforces its constraints on every write; nothing to scan for."""
        await self.fetchvalue("SELECT 1")  # but the server must answer
        return []


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None
