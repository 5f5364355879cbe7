"""The database interface the store modules are written against, and how to open one.

Two backends implement it: :class:`xnode.store.sqlite.SqliteDatabase` (the embedded
default: one file in the data directory) and :class:`xnode.store.postgres.PostgresDatabase`
(for nodes that outgrow one file and run several serving processes). Store modules are
the only code that writes SQL; they write it once, in the portable subset both engines
share, with ``?`` placeholders (the PostgreSQL backend numbers them), and branch on
:attr:`Database.dialect` only for the few pieces that cannot be portable (full-text
search, case-insensitive matching). Everything is ``async``: on SQLite the point reads
(:meth:`Database.lookup`) still run inline on the event loop's thread, and an ``await``
of a coroutine that never suspends costs a microsecond.

Rows are :class:`Row`: both ``sqlite3.Row`` and ``asyncpg.Record`` read by column name
and by position.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

Params = Sequence[Any]
"""Statement parameters, bound to the ``?`` placeholders in order."""

Dialect = Literal["sqlite", "postgres"]

CACHED_TABLES = ("accounts", "account_keys", "domain_blocks")
"""Tables some process keeps an in-memory cache of (:meth:`Database.table_version`):
a write naming one invalidates the caches, on PostgreSQL in every serving process."""

_WRITE_TARGET = re.compile(
    r"\b(?:(?:INSERT|REPLACE)(?:\s+OR\s+\w+)?\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM"
    r"|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?(?:\w+\.)?\"?(\w+)",
    re.IGNORECASE,
)
_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE", "WITH")


def written_tables(sql: str) -> list[str]:
    """The :data:`CACHED_TABLES` a statement may write (what invalidates their caches).

    A query writes nothing. A data change writes only the tables it names as its
    targets (``INSERT INTO t``, ``UPDATE t``, ``DELETE FROM t``, also inside a ``WITH``):
    a table it merely reads, such as ``domain_blocks`` in the inbox's insert that checks
    the sender is not blocked, is left alone. (A substring test made every queued
    activity invalidate the domain-block cache, on PostgreSQL in every process with a
    NOTIFY, and the next checks read the whole table again: two reads of it and a
    NOTIFY per activity.) No trigger or foreign-key action writes a cached table on
    behalf of another one (``account_keys`` rows deleted with their account are covered
    by the ``accounts`` write). Anything else (schema changes) errs on the side of
    invalidating: every cached table named in it.
    """
    head = sql.lstrip()[:7].upper()
    if head.startswith("SELECT"):
        return []
    if head.startswith(_DML):
        targets = {match[1].lower() for match in _WRITE_TARGET.finditer(sql)}
        return [table for table in CACHED_TABLES if table in targets]
    return [table for table in CACHED_TABLES if table in sql]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Row(Protocol):
    """One result row: by column name or position (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Cursor(Protocol):
    """A statement's result inside a transaction."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement (inserted, updated or deleted)."""
        ...

    async def fetchone(self) -> Row | None:
        """The next row, if any."""
        ...

    async def fetchall(self) -> list[Row]:
        """Every remaining row."""
        ...

    def __aiter__(self) -> AsyncIterator[Row]: ...


class Result(Protocol):
    """What :meth:`Connection.execute` returns: awaited, or used in ``async with``."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...

    async def __aenter__(self) -> Cursor: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Connection(Protocol):
    """The connection a transaction block writes through (:meth:`Database.transaction`)."""

    dialect: Dialect

    def execute(self, sql: str, parameters: Params = ()) -> Result:
        """Run one statement."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Params]) -> Result:
        """Run one statement for every parameter set."""
        ...

    async def execute_fetchall(self, sql: str, parameters: Params = ()) -> list[Row]:
        """Run a statement and return every row."""
        ...

    def at_commit(self, sql: str, parameters: Params = ()) -> None:
        """Run a write just before the transaction commits (see the SQLite backend)."""
        ...


class Database(Protocol):
    """A node's database: reads, transactions, and the odd bit of maintenance."""

    dialect: Dialect
    commits: int
    """Commits made since opening (for tests and benchmarks)."""

    async def open(self) -> None:
        """Connect and apply pending migrations.

        Raises:
            SchemaTooNewError: if the database was written by a newer xnode.
        """
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A block whose writes commit together when it ends, or roll back on an exception."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, if any."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        ...

    async def fetchvalue(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (or None)."""
        ...

    async def lookup(self, sql: str, params: Params = ()) -> Row | None:
        """An indexed point read (a few rows by a unique index): the first row, if any.

        The SQLite backend runs these inline on the loop's thread; a query that scans
        belongs in :meth:`fetchone`.
        """
        ...

    async def lookup_value(self, sql: str, params: Params = ()) -> Any:
        """Like :meth:`lookup`, the first column of the first row (or None)."""
        ...

    async def lookup_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Like :meth:`lookup`, every row (a handful of rows by an index)."""
        ...

    async def fetch_keyed(self, sql: str, params: Params, keys: int) -> list[Row]:
        """Rows of a query selecting ``keys`` index keys (``WHERE id IN (...)``)."""
        ...

    def table_version(self, table: str) -> int:
        """A counter that changes whenever a write names ``table`` (one of
        :data:`CACHED_TABLES`), for in-memory caches of it."""
        ...

    async def backup_to(self, target: Path) -> None:
        """Copy the database to ``target`` while serving (SQLite only: PostgreSQL has pg_dump)."""
        ...

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every serving process of this node (PostgreSQL's ``NOTIFY``; on SQLite,
        where one process serves, a no-op)."""
        ...

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Have ``callback(payload)`` called for each notification on ``channel``."""
        ...

    async def integrity_problems(self) -> list[str]:
        """The engine's own consistency checks; an empty list when all is well."""
        ...


# --- The few dialect differences shared by several store modules -----------------------


def greatest(dialect: Dialect) -> str:
    """The larger-of-its-arguments function: SQLite's scalar ``MAX``, PostgreSQL's
    ``GREATEST`` (PostgreSQL's ``MAX`` is only the aggregate)."""
    return "GREATEST" if dialect == "postgres" else "MAX"


def zero_padded(dialect: Dialect, expression: str, width: int) -> str:
    """``expression`` (a non-negative integer) as text, zero-padded to ``width`` digits
    (sortable as text): SQLite's ``printf``, PostgreSQL's ``lpad``."""
    if dialect == "postgres":
        return f"lpad(CAST({expression} AS TEXT), {width}, '0')"
    return f"printf('%0{width}d', {expression})"


class IntegrityError(Exception):
    """A write broke a constraint (unique, foreign key, check), on either backend.

    Each backend raises this for its driver's constraint errors, so services can
    catch one exception whichever engine runs underneath.
    """


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL database (a ``postgresql://`` URL)."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def database_for(target: str | Path) -> Database:
    """An unopened database: a PostgreSQL URL or the path of a SQLite file."""
    if is_postgres_url(target):
        from xnode.store.postgres import PostgresDatabase

        return PostgresDatabase(str(target))
    from xnode.store.sqlite import SqliteDatabase

    return SqliteDatabase(Path(target))


@asynccontextmanager
async def open_database(target: str | Path) -> AsyncIterator[Database]:
    """Open a database for the length of a block (CLI commands, tests)."""
    db = database_for(target)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
