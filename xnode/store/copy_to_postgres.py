"""Copying a SQLite node's database into an empty PostgreSQL database (issue 18).

``xnode db migrate-to-postgres`` (:mod:`xnode.cli_db`) calls :func:`copy_sqlite_to_postgres`;
the rest of this module is the pure pieces it is made of (value conversion, the
checksum), kept apart so they can be read and tested on their own.

How the copy goes, and why:

* The SQLite file is opened with an **exclusive lock** held for the whole run
  (``PRAGMA locking_mode = EXCLUSIVE`` and ``BEGIN EXCLUSIVE``). Every connection of a
  serving node holds a shared lock, so the lock is refused while anything has the
  database open (that is how a serving node is detected), and while it is held nothing
  can open it: no write can slip in between the copy and the switch of xnode.toml, and
  the rows read are one consistent snapshot.
* The target is migrated by :func:`~xnode.store.database.open_database` (the same
  migrations ``xnode serve`` runs), then both schemas are compared: the same tables,
  the same columns, the same applied migrations. A difference is refused, never
  papered over: it would be a bug in a migration, and the copy would lose data.
* Everything is written in **one PostgreSQL transaction**: a failure anywhere (a value
  PostgreSQL refuses, a broken reference, a checksum that differs) rolls it all back
  and leaves the target as empty as it was, ready for another try.
* Foreign keys are **dropped for the copy and added back** (their definitions read
  from the catalog, ``pg_get_constraintdef``) before the commit, as ``pg_restore``
  does. Copying in foreign-key order is not enough here: ``posts`` and ``accounts``
  reference themselves (replies, boosts, moved accounts), and a reply can have a
  smaller id than the post it answers (a remote parent fetched later). PostgreSQL's
  constraints are not ``DEFERRABLE``, and ``session_replication_role`` needs a
  superuser; dropping and re-adding needs only ownership of the tables, which the
  role that ran the migrations has. Re-adding checks every row in one pass, so a
  reference SQLite let through (it checks foreign keys only while they are on) still
  stops the copy.
* The tables' own triggers (the ``account_stats`` counters) are disabled for the
  copy: ``account_stats`` is copied as it is, and the triggers would count every
  copied post and follow a second time.
* Rows go in with ``COPY`` (asyncpg's ``copy_records_to_table``), in chunks, each value
  converted by its PostgreSQL column's type (SQLite may keep an integer in a REAL
  column, or text in a BLOB one).
* Then each table is **verified** inside the same transaction: the row count and a
  SHA-256 over the rows in primary-key order, each value normalised by its column's
  type (:func:`normalised`), computed from SQLite's raw values while copying and from
  what PostgreSQL returns afterwards. The two sides share the normalisation, not the
  conversion, so a conversion that changed a value shows up.
* Finally each identity sequence is set to its column's largest id, so the rows the
  node inserts next do not collide with copied ones.

SQLite's internal tables (``sqlite_*``) and the shadow tables of its FTS5 indexes
(``*_data``, ``*_idx``, ``*_content``, ``*_docsize``, ``*_config``) are not copied; the
FTS5 tables themselves are (``rowid`` and their text columns): on PostgreSQL they are
plain tables whose generated ``document`` column is computed from the text.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg

from xnode.store.database import open_database

CHUNK_ROWS = 5000
"""Rows read from SQLite and sent in one ``COPY`` (a progress step, too)."""
CONNECT_TIMEOUT_S = 15.0
SCHEMA_MIGRATIONS = "schema_migrations"
"""Filled by the target's own migrations, so compared rather than copied."""
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*", re.I)
FTS5_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config")

Kind = Literal["int", "float", "text", "bytes"]
Phase = Literal["copy", "verify"]
Progress = Callable[[Phase, int, int], None]
"""Called as rows are copied and verified: ``(phase, rows done so far, rows in all)``."""


class CopyError(Exception):
    """The copy cannot be done, or went wrong; the message says why (and nothing was
    committed to the target)."""


class NodeServingError(CopyError):
    """The SQLite database is open in another process (``xnode serve``, most likely)."""


class TargetNotEmptyError(CopyError):
    """The PostgreSQL database already holds rows, or tables xnode did not make."""


class TargetUnreachableError(CopyError):
    """The PostgreSQL database cannot be reached with the DSN given."""


class VerificationError(CopyError):
    """Some table's rows differ after the copy (the copy was rolled back)."""

    def __init__(self, message: str, report: CopyReport) -> None:
        super().__init__(message)
        self.report = report


# --- Pure pieces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column to copy, with the kind of value its PostgreSQL type holds."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Table:
    """A table to copy: its columns (PostgreSQL's order) and primary key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        """The columns' names, in copy order."""
        return [column.name for column in self.columns]

    def kind_of(self, name: str) -> Kind:
        """The kind of one of the table's columns."""
        return next(column.kind for column in self.columns if column.name == name)


@dataclass(frozen=True)
class TableResult:
    """One table's rows and checksum on each side."""

    name: str
    source_rows: int
    source_checksum: str
    target_rows: int
    target_checksum: str

    @property
    def matches(self) -> bool:
        """Whether both sides hold the same rows."""
        return (self.source_rows, self.source_checksum) == (
            self.target_rows, self.target_checksum,
        )  # fmt: skip


@dataclass(frozen=True)
class CopyReport:
    """What was copied and how it verified."""

    tables: list[TableResult]
    sequences: dict[str, int] = field(default_factory=dict)
    """Each identity sequence's table, and the value it was set to (its largest id)."""

    @property
    def rows(self) -> int:
        """Rows copied in all."""
        return sum(table.source_rows for table in self.tables)

    @property
    def mismatched(self) -> list[TableResult]:
        """The tables whose rows differ."""
        return [table for table in self.tables if not table.matches]


def column_kind(pg_type: str) -> Kind:
    """The kind of value a PostgreSQL column type holds (``format_type``'s spelling).

    Raises:
        CopyError: a type the copy does not know (the schema grew one: teach it here).
    """
    if pg_type in ("bigint", "integer", "smallint"):
        return "int"
    if pg_type in ("double precision", "real", "numeric"):
        return "float"
    if pg_type == "text" or pg_type.startswith("character"):
        return "text"
    if pg_type == "bytea":
        return "bytes"
    raise CopyError(f"cannot copy a column of PostgreSQL type {pg_type!r}")


def convert(kind: Kind, value: Any) -> Any:
    """A value read from SQLite as the Python type asyncpg sends for a column ``kind``.

    SQLite's types are per value, not per column: an INTEGER column can hold a float
    that happens to be whole, a REAL column an integer, a BLOB column text.

    Raises:
        ValueError: the value cannot be that kind without losing something.
    """
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ValueError(f"{value!r} is not an integer")
    if kind == "float":
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value)  # ValueError for text that is no number
        raise ValueError(f"{value!r} is not a number")
    if kind == "text":
        if isinstance(value, bytes):
            value = value.decode("utf-8")  # UnicodeDecodeError is a ValueError
        elif not isinstance(value, str):
            value = str(value)
        if "\x00" in value:
            # PostgreSQL's text cannot hold NUL; SQLite's can.
            raise ValueError("text with a NUL character (PostgreSQL's text cannot hold one)")
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ValueError(f"{value!r} is not bytes")


def normalised(kind: Kind, value: Any) -> bytes:
    """A value as the bytes the checksum takes, the same for the SQLite value and the
    PostgreSQL value it became: ``None`` apart from everything else, numbers by their
    meaning in the column (floats by ``repr``), text as UTF-8, bytes as they are.

    Anything this does not recognise is tagged with its type, so it differs from the
    other side rather than hiding a difference.
    """
    if value is None:
        return b"N"
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind == "bytes" and isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bool):
        return b"i" + str(int(value)).encode()
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return b"f" + repr(value).encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return b"b" + bytes(value)
    return b"?" + type(value).__name__.encode() + b":" + repr(value).encode()


class TableChecksum:
    """A running SHA-256 over a table's rows, in the order they are added.

    Each value is length-prefixed, so no two different rows (or splits of a row into
    values) feed the hash the same bytes.
    """

    def __init__(self, kinds: Sequence[Kind]) -> None:
        self._kinds = tuple(kinds)
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, row: Iterable[Any]) -> None:
        """Add one row (its values in column order)."""
        update = self._hash.update
        for kind, value in zip(self._kinds, row, strict=True):
            data = normalised(kind, value)
            update(struct.pack(">Q", len(data)))
            update(data)
        update(b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        """The checksum so far."""
        return self._hash.hexdigest()


def redacted(dsn: str) -> str:
    """The DSN without its password (in the address or ``?password=``), for messages."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return "(an unreadable DSN)"
    # Edited in place: urlsplit's geturl() would drop the empty host of a socket DSN
    # (postgresql:///name?host=/run/postgresql).
    if password is not None:
        dsn = dsn.replace(f":{password}@", ":***@", 1)
    return _PASSWORD_PARAMETER.sub(r"\1***", dsn)


def quoted(name: str) -> str:
    """An SQL identifier, quoted (the same on both engines)."""
    return '"' + name.replace('"', '""') + '"'


# --- The SQLite side --------------------------------------------------------------------


def sqlite_in_use(path: Path) -> bool:
    """Whether another connection has the SQLite database open (a serving node's do).

    Takes and at once releases the lock :func:`copy_sqlite_to_postgres` holds for the
    whole copy: a quick, read-only check before anything else is done.
    """
    try:
        lock = _exclusive(path)
    except NodeServingError:
        return True
    lock.close()
    return False


def _exclusive(path: Path) -> sqlite3.Connection:
    """A connection holding the database's exclusive lock until it is closed.

    Raises:
        NodeServingError: another connection has the database open.
    """
    # timeout=0: a lock held by a serving node is not going away; waiting only delays
    # the refusal.
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise NodeServingError(
                f"{path} is open in another process: is xnode serve (or another xnode"
                " command) running? Stop it first"
            ) from None
        raise CopyError(f"cannot read {path}: {exc}") from None
    return conn


def sqlite_tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The tables to copy and their columns: ordinary tables and FTS5 tables (with
    ``rowid``), without SQLite's internals, FTS5 shadow tables and ``schema_migrations``."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
    ).fetchall()
    virtual = {name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")}
    shadows = {f"{name}{suffix}" for name in virtual for suffix in FTS5_SHADOW_SUFFIXES}
    tables: dict[str, list[str]] = {}
    for name, _sql in rows:
        if name.startswith("sqlite_") or name in shadows or name == SCHEMA_MIGRATIONS:
            continue
        columns = [info[1] for info in conn.execute(f"PRAGMA table_info({quoted(name)})")]
        tables[name] = (["rowid"] if name in virtual else []) + columns
    return tables


def _versions_sqlite(conn: sqlite3.Connection) -> list[int]:
    return [int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def _ordered_select(table: Table, byte_order: str) -> str:
    """Every row of ``table`` by its key, text keys in byte order: SQLite's ``BINARY`` and
    PostgreSQL's ``"C"`` both compare UTF-8 bytes, so both sides list the rows alike."""
    order = ", ".join(
        f"{quoted(k)} COLLATE {byte_order}" if table.kind_of(k) == "text" else quoted(k)
        for k in table.key
    )
    columns = ", ".join(quoted(c) for c in table.column_names)
    return f"SELECT {columns} FROM {quoted(table.name)} ORDER BY {order}"


def _sqlite_select(table: Table) -> str:
    return _ordered_select(table, "BINARY")


# --- The PostgreSQL side ----------------------------------------------------------------


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection to the target, or a clear error (never a driver traceback)."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError,
            asyncpg.InterfaceError) as exc:  # fmt: skip
        reason = str(exc).strip() or type(exc).__name__
        raise TargetUnreachableError(
            f"cannot connect to the PostgreSQL database {redacted(dsn)}: {reason}"
        ) from None


async def _existing_tables(conn: asyncpg.Connection) -> list[str]:
    # The current schema only: that is where the migrations make their tables.
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1"
    )
    return [row[0] for row in rows]


async def _refuse_unless_empty(
    conn: asyncpg.Connection, known: set[str], dsn: str
) -> None:
    """Refuse a target holding tables xnode does not make, or any row."""
    existing = await _existing_tables(conn)
    foreign = [name for name in existing if name not in known and name != SCHEMA_MIGRATIONS]
    if foreign:
        listed = ", ".join(foreign[:8]) + (", ..." if len(foreign) > 8 else "")
        raise TargetNotEmptyError(
            f"{redacted(dsn)} holds tables xnode does not make ({listed}): give an empty"
            " database (createdb)"
        )
    filled = [
        name for name in existing
        if name != SCHEMA_MIGRATIONS
        and await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {quoted(name)})")
    ]  # fmt: skip
    if filled:
        accounts = "accounts" in filled and await conn.fetchval("SELECT count(*) FROM accounts")
        what = f"{accounts} account(s) and rows in " if accounts else "rows in "
        raise TargetNotEmptyError(
            f"{redacted(dsn)} already holds data ({what}{', '.join(filled[:8])}):"
            " the copy goes into an empty database only"
        )


async def _target_tables(conn: asyncpg.Connection) -> dict[str, Table]:
    """The target's tables: copied columns (not generated ones) with kinds, and keys."""
    rows = await conn.fetch(
        "SELECT c.relname AS table_name, a.attname AS column_name,"
        " format_type(a.atttypid, a.atttypmod) AS type"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attgenerated = '' AND c.relname <> $1"
        " ORDER BY c.relname, a.attnum",
        SCHEMA_MIGRATIONS,
    )
    keys = await conn.fetch(
        "SELECT c.relname AS table_name, a.attname AS column_name"
        " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS u(attnum, position)"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum"
        " WHERE n.nspname = current_schema() AND k.contype = 'p'"
        " ORDER BY c.relname, u.position"
    )
    columns: dict[str, list[Column]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(
            Column(row["column_name"], column_kind(row["type"]))
        )
    key_of: dict[str, list[str]] = {}
    for row in keys:
        key_of.setdefault(row["table_name"], []).append(row["column_name"])
    tables = {}
    for name, cols in columns.items():
        # Every xnode table has a primary key; all columns would order one without.
        key = tuple(key_of.get(name) or [c.name for c in cols])
        tables[name] = Table(name, tuple(cols), key)
    return tables


def _compare_schemas(sqlite: dict[str, list[str]], target: dict[str, Table]) -> None:
    """Refuse when the two databases do not have the same tables and columns.

    Raises:
        CopyError: naming what differs (a migration's two dialects disagree).
    """
    problems = []
    for name in sorted(set(sqlite) - set(target)):
        problems.append(f"table {name} is missing on PostgreSQL")
    for name in sorted(set(target) - set(sqlite)):
        problems.append(f"table {name} is missing on SQLite")
    for name in sorted(set(sqlite) & set(target)):
        ours, theirs = set(sqlite[name]), set(target[name].column_names)
        if ours != theirs:
            problems.append(
                f"{name}: columns only on SQLite {sorted(ours - theirs)},"
                f" only on PostgreSQL {sorted(theirs - ours)}"
            )
    if problems:
        raise CopyError(
            "the SQLite and PostgreSQL schemas differ, so the copy would lose data: "
            + "; ".join(problems)
        )


async def _versions_postgres(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
    return [int(row[0]) for row in rows]


def _postgres_select(table: Table) -> str:
    return _ordered_select(table, '"C"')


async def _foreign_keys(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)"
        " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND k.contype = 'f' ORDER BY 1, 2"
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def _identity_columns(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND a.attidentity IN ('a', 'd')"
        " AND NOT a.attisdropped ORDER BY 1"
    )
    return [(row[0], row[1]) for row in rows]


# --- The copy ---------------------------------------------------------------------------


async def copy_sqlite_to_postgres(
    sqlite_path: Path,
    dsn: str,
    progress: Progress | None = None,
    after_commit: Callable[[CopyReport], None] | None = None,
) -> CopyReport:
    """Copy the SQLite database at ``sqlite_path`` into the empty PostgreSQL database
    ``dsn``, verify every table, and commit; nothing is committed unless all of it worked.

    The SQLite database must be at this xnode's schema (open it with
    :func:`~xnode.store.database.open_database` first, which migrates it) and must not
    be open anywhere else; it is only read. ``after_commit`` runs once the copy is
    committed, while the SQLite lock is still held: switching the node's configuration
    there leaves no moment in which a node could start on the old database and write
    to it.

    Raises:
        NodeServingError: the SQLite database is open in another process.
        TargetUnreachableError: the DSN does not lead to a database.
        TargetNotEmptyError: the target holds rows, or tables xnode does not make.
        SchemaTooNewError: the target was migrated by a newer xnode.
        VerificationError: some table differs after the copy (rolled back).
        CopyError: anything else that stops the copy (its message says what).
    """
    report = progress or (lambda phase, done, total: None)
    lite = _exclusive(sqlite_path)  # held until the end: see the module's docstring
    try:
        source_tables = sqlite_tables(lite)
        source_versions = _versions_sqlite(lite)
        counts = {
            name: int(lite.execute(f"SELECT count(*) FROM {quoted(name)}").fetchone()[0])
            for name in source_tables
        }
        conn = await _connect(dsn)
        try:
            await _refuse_unless_empty(conn, set(source_tables), dsn)
        finally:
            await conn.close()
        await _migrate(dsn)
        conn = await _connect(dsn)
        try:
            tables = await _target_tables(conn)
            _compare_schemas(source_tables, tables)
            target_versions = await _versions_postgres(conn)
            if target_versions != source_versions:
                raise CopyError(
                    f"the SQLite database has migrations {source_versions}, PostgreSQL"
                    f" {target_versions}: both must be at this xnode's schema"
                )
            ordered = [tables[name] for name in sorted(tables)]
            try:
                async with conn.transaction():
                    result = await _copy_all(lite, conn, ordered, counts, dsn, report)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # E.g. a role that does not own the tables (ALTER TABLE), or a server
                # that went away: rolled back either way.
                raise CopyError(f"PostgreSQL stopped the copy: {exc}") from None
        finally:
            await conn.close()
        if after_commit is not None:
            after_commit(result)
        return result
    finally:
        lite.close()


async def _migrate(dsn: str) -> None:
    """Run the PostgreSQL migrations, as ``xnode serve`` would."""
    try:
        async with open_database(dsn):
            pass
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CopyError(f"cannot migrate {redacted(dsn)}: {exc}") from None


async def _copy_all(
    lite: sqlite3.Connection,
    conn: asyncpg.Connection,
    tables: list[Table],
    counts: dict[str, int],
    dsn: str,
    report: Progress,
) -> CopyReport:
    """The copy proper, inside the target's transaction (see the module's docstring)."""
    names = ", ".join(quoted(t.name) for t in tables)
    # Nothing else may write (or read half a copy) meanwhile; then look again, now that
    # no one can fill a table between the look and the copy.
    await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
    await _refuse_unless_empty(conn, {t.name for t in tables}, dsn)
    foreign_keys = await _foreign_keys(conn)
    for owner, name, _definition in foreign_keys:
        await conn.execute(f"ALTER TABLE {quoted(owner)} DROP CONSTRAINT {quoted(name)}")
    for table in tables:
        await conn.execute(f"ALTER TABLE {quoted(table.name)} DISABLE TRIGGER USER")

    total = sum(counts.values())
    done = 0
    report("copy", 0, total)
    sources: dict[str, TableChecksum] = {}
    for table in tables:
        checksum = sources[table.name] = TableChecksum([c.kind for c in table.columns])
        cursor = lite.execute(_sqlite_select(table))
        while batch := cursor.fetchmany(CHUNK_ROWS):
            records = []
            for row in batch:
                checksum.add(row)
                records.append(_converted(table, row))
            try:
                await conn.copy_records_to_table(
                    table.name, records=records, columns=table.column_names
                )
            except Exception as exc:
                raise CopyError(f"PostgreSQL refused rows of {table.name}: {exc}") from None
            done += len(batch)
            report("copy", done, total)

    for table_name, name, definition in foreign_keys:
        try:
            await conn.execute(
                f"ALTER TABLE {quoted(table_name)} ADD CONSTRAINT {quoted(name)} {definition}"
            )
        except Exception as exc:
            raise CopyError(
                f"rows of {table_name} break its foreign key {name} ({definition}): {exc}"
            ) from None
    for table in tables:
        await conn.execute(f"ALTER TABLE {quoted(table.name)} ENABLE TRIGGER USER")

    sequences = {}
    for table_name, column in await _identity_columns(conn):
        largest = await conn.fetchval(
            f"SELECT max({quoted(column)}) FROM {quoted(table_name)}"
        )
        # An empty table's sequence starts at 1 (is_called false); else after the max.
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)",
            quoted(table_name), column, largest or 1, largest is not None,
        )
        sequences[table_name] = int(largest or 0)

    results = []
    done = 0
    report("verify", 0, total)
    for table in tables:
        target = TableChecksum([c.kind for c in table.columns])
        async for row in conn.cursor(_postgres_select(table), prefetch=CHUNK_ROWS):
            target.add(row)
            done += 1
            if done % CHUNK_ROWS == 0:
                report("verify", done, total)
        source = sources[table.name]
        results.append(TableResult(
            table.name, source.rows, source.hexdigest(), target.rows, target.hexdigest()
        ))  # fmt: skip
    report("verify", done, total)
    result = CopyReport(results, sequences)
    if result.mismatched:
        # Raised inside the transaction: it rolls back, and the target is empty again.
        listed = ", ".join(
            f"{t.name} ({t.source_rows} rows on SQLite, {t.target_rows} on PostgreSQL"
            + (")" if t.source_rows != t.target_rows else ", checksums differ)")
            for t in result.mismatched
        )
        raise VerificationError(f"tables differ after the copy: {listed}", result)
    return result


def _converted(table: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    """A SQLite row as the values COPY takes, or a CopyError naming the row and column."""
    values = []
    for column, value in zip(table.columns, row, strict=True):
        try:
            values.append(convert(column.kind, value))
        except ValueError as exc:
            where = ", ".join(
                f"{k}={row[table.column_names.index(k)]!r}" for k in table.key
            )
            raise CopyError(
                f"{table.name} ({where}), column {column.name}: cannot copy {exc}"
            ) from None
    return tuple(values)
