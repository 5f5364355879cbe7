"""The PostgreSQL dialect of the schema migrations (issue 18).

Each migration's ``POSTGRES`` statements must bring a PostgreSQL database to the state
SQLite reaches with its ``STATEMENTS``: the same tables and columns (in order), NOT NULLs,
defaults, foreign keys, named indexes, uniques and CHECKs, and the same account_stats
triggers. SQLite's side is read from a database made by ``open_database`` (which
migrates on open). The worker's throwaway cluster (tests/database_backend.py) gives a
fresh database per test; the tests needing it skip where Debian's PostgreSQL binaries
are not installed (`make postgres`).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from database_backend import fresh_database_url
from pg_cluster import PgCluster

from xnode.store import migrations as migrations_package
from xnode.store.database import open_database
from xnode.store.migrations import Migration, SchemaTooNewError, all_migrations
from xnode.store.migrations.postgres import apply_postgres_migrations
from xnode.store.shards import host_shard

FTS_TABLES = ("posts_fts", "accounts_fts")


@pytest.fixture
async def pg(pg_cluster: PgCluster) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database with every migration applied (copied from the
    harness's migrated template: a copy takes a fraction of the time migrating does)."""
    conn = await asyncpg.connect(fresh_database_url())
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated by the store itself (read with the sqlite3 module)."""
    path = tmp_path_factory.mktemp("sqlite") / "reference.db"

    async def make() -> None:
        async with open_database(path):
            pass

    asyncio.run(make())
    return path


@pytest.fixture
def lite(sqlite_path: Path, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A private copy of the migrated SQLite database, foreign keys on as the store has
    them (autocommit, as the scripts below run one statement at a time)."""
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(sqlite_path)
    conn = sqlite3.connect(copy, isolation_level=None)
    source.backup(conn)
    source.close()
    conn.execute("PRAGMA foreign_keys = ON")
    yield conn
    conn.close()


# --- reading the two schemas -----------------------------------------------------------


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """User tables, without SQLite's own and FTS5's shadow tables (posts_fts_data…)."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return sorted(
        name for name in names if not any(name.startswith(f"{fts}_") for fts in FTS_TABLES)
    )


def _pg_default(value: str | None) -> str | None:
    """``'[]'::text`` → ``'[]'``: PostgreSQL shows a default with its cast."""
    if value is None:
        return None
    return re.sub(r"::(text|bigint|integer|double precision)$", "", value)


def sqlite_columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, bool, str | None]]:
    """(name, not null, default) per column, in order. A primary key column counts as
    NOT NULL (SQLite's rowid alias is, PRAGMA just does not say so)."""
    return [
        (name, bool(notnull or pk), default)
        for _, name, _, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})")
    ]


async def pg_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        " ORDER BY table_name"
    )
    return [row["table_name"] for row in rows]


async def pg_columns(conn: asyncpg.Connection, table: str) -> list[tuple[str, bool, str | None]]:
    rows = await conn.fetch(
        "SELECT column_name, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [
        (row["column_name"], row["is_nullable"] == "NO", _pg_default(row["column_default"]))
        for row in rows
    ]


def sqlite_foreign_keys(conn: sqlite3.Connection, table: str) -> set[tuple[str, str, str, str]]:
    """(column, referenced table, referenced column, ON DELETE) of each foreign key."""
    return {
        (row[3], row[2], row[4], row[6])
        for row in conn.execute(f"PRAGMA foreign_key_list({table})")
    }


_PG_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
               "d": "SET DEFAULT"}


async def pg_foreign_keys(conn: asyncpg.Connection, table: str) -> set[tuple[str, str, str, str]]:
    rows = await conn.fetch(
        "SELECT a.attname AS col, c.confrelid::regclass::text AS ref, r.attname AS ref_col,"
        " c.confdeltype::text AS action FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]"
        " WHERE c.contype = 'f' AND c.conrelid = $1::regclass",
        table,
    )
    return {(row["col"], row["ref"], row["ref_col"], _PG_ACTIONS[row["action"]]) for row in rows}


def sqlite_indexes(conn: sqlite3.Connection) -> dict[str, tuple[str, bool, bool]]:
    """Named indexes (not the automatic ones of UNIQUE/PRIMARY KEY):
    name → (table, unique, partial)."""
    found: dict[str, tuple[str, bool, bool]] = {}
    for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        found[name] = (table, sql.upper().startswith("CREATE UNIQUE"), " WHERE " in sql.upper())
    return found


async def pg_indexes(conn: asyncpg.Connection) -> dict[str, tuple[str, bool, bool]]:
    """Indexes not made for a constraint (primary keys, UNIQUE), as sqlite_indexes."""
    rows = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl,"
        " i.indisunique AS uniq, i.indpred IS NOT NULL AS partial FROM pg_index i"
        " JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'"
        " WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    )
    return {row["name"]: (row["tbl"], row["uniq"], row["partial"]) for row in rows}


def sqlite_keys(conn: sqlite3.Connection, table: str) -> set[tuple[str, ...]]:
    """The column lists of the primary key and each UNIQUE constraint."""
    keys = {
        tuple(column[2] for column in conn.execute(f"PRAGMA index_info({name})"))
        for _, name, _, origin, _ in conn.execute(f"PRAGMA index_list({table})")
        if origin in ("u", "pk")
    }
    # An INTEGER PRIMARY KEY is the rowid itself: no index says so, table_info does.
    pk = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[5]]
    if pk:
        keys.add(tuple(pk))
    return keys


async def pg_keys(conn: asyncpg.Connection, table: str) -> set[tuple[str, ...]]:
    rows = await conn.fetch(
        "SELECT array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, pos)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num"
        " ORDER BY k.pos) AS cols FROM pg_constraint c"
        " WHERE c.contype IN ('p', 'u') AND c.conrelid = $1::regclass",
        table,
    )
    return {tuple(row["cols"]) for row in rows}


_SQLITE_CHECK = re.compile(r"CHECK \((\w+) IN\s*\(([^)]*)\)\)")
_PG_CHECK = re.compile(r"CHECK \(\((\w+) = ANY \(ARRAY\[([^\]]*)\]\)\)\)")


def sqlite_checks(conn: sqlite3.Connection, table: str) -> set[tuple[str, frozenset[str]]]:
    """(column, allowed values) of each CHECK (all of this schema's are ``col IN (...)``);
    the table's SQL includes the columns added by ALTER TABLE."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    found = {
        (column, frozenset(re.findall(r"'([^']*)'", values)))
        for column, values in _SQLITE_CHECK.findall(sql)
    }
    assert sql.count("CHECK") == len(found), sql  # none of another shape slipped by
    return found


async def pg_checks(conn: asyncpg.Connection, table: str) -> set[tuple[str, frozenset[str]]]:
    rows = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE contype = 'c' AND conrelid = $1::regclass",
        table,
    )
    found = set()
    for row in rows:
        match = _PG_CHECK.fullmatch(row["def"])
        assert match, row["def"]
        found.add((match[1], frozenset(re.findall(r"'([^']*)'::text", match[2]))))
    return found


def sqlite_index_columns(conn: sqlite3.Connection, index: str) -> list[str]:
    return [row[2] for row in conn.execute(f"PRAGMA index_info({index})")]


async def pg_index_columns(conn: asyncpg.Connection, index: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(num, pos)"
        " JOIN pg_attribute a ON a.attnum = k.num"
        " WHERE i.indexrelid = $1::regclass AND a.attrelid = i.indrelid ORDER BY k.pos",
        index,
    )
    return [row["attname"] for row in rows]


# --- applying ------------------------------------------------------------------------------


async def test_all_migrations_apply_to_an_empty_database_and_then_nothing(pg_url):
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [m.version for m in all_migrations()]
        assert await apply_postgres_migrations(conn) == versions
        assert await apply_postgres_migrations(conn) == []
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in all_migrations()
        ]
    finally:
        await conn.close()


async def test_two_processes_starting_at_once_apply_each_migration_once(pg_url):
    first, second = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        results = await asyncio.gather(
            apply_postgres_migrations(first), apply_postgres_migrations(second)
        )
        assert sorted(results, key=len) == [[], [m.version for m in all_migrations()]]
    finally:
        await first.close()
        await second.close()


async def test_refuses_a_database_from_a_newer_xnode(pg):
    await pg.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
    )
    with pytest.raises(SchemaTooNewError):
        await apply_postgres_migrations(pg)
    # The lock was released: another run (here the same connection) is not stuck.
    assert await pg.fetchval("SELECT pg_try_advisory_lock(1)") is True


async def test_a_failing_migration_leaves_nothing_behind(pg_url, monkeypatch):
    conn = await asyncpg.connect(pg_url)
    try:
        first = all_migrations()[0]
        broken = [
            first,
            Migration(2, "broken", (), ("CREATE TABLE half_done (x BIGINT)", "SELECT 1/0")),
        ]
        monkeypatch.setattr("xnode.store.migrations.postgres.all_migrations", lambda: broken)
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_postgres_migrations(conn)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT MAX(version) FROM schema_migrations") == 1
    finally:
        await conn.close()


def test_a_migration_without_its_postgres_statements_is_refused(monkeypatch):
    module = __import__(f"{migrations_package.__name__}.m010_call_support", fromlist=["x"])
    monkeypatch.delattr(module, "POSTGRES")
    with pytest.raises(RuntimeError, match="m010_call_support has no POSTGRES"):
        all_migrations()


# --- the same schema -------------------------------------------------------------------------


async def test_the_same_tables_and_columns_as_sqlite(pg, lite):
    tables = sqlite_tables(lite)
    assert await pg_tables(pg) == tables
    for table in tables:
        expected = sqlite_columns(lite, table)
        if table in FTS_TABLES:
            # FTS5's hidden rowid is a real key column here, and the tsvector is extra.
            expected = [
                ("rowid", True, None),
                *expected,
                ("document", False, None),
            ]
        assert await pg_columns(pg, table) == expected, table


async def test_the_same_foreign_keys_and_actions_as_sqlite(pg, lite):
    for table in sqlite_tables(lite):
        if table in FTS_TABLES:
            continue
        assert await pg_foreign_keys(pg, table) == sqlite_foreign_keys(lite, table), table


async def test_the_same_named_indexes_as_sqlite(pg, lite):
    found = await pg_indexes(pg)
    # The full-text indexes are PostgreSQL's own (FTS5 keeps its index in shadow tables).
    assert found.pop("posts_fts_document") == ("posts_fts", False, False)
    assert found.pop("accounts_fts_document") == ("accounts_fts", False, False)
    assert found == sqlite_indexes(lite)
    for index in found:
        assert await pg_index_columns(pg, index) == sqlite_index_columns(lite, index), index


async def test_the_same_primary_keys_and_unique_constraints_as_sqlite(pg, lite):
    for table in sqlite_tables(lite):
        if table in FTS_TABLES:
            assert await pg_keys(pg, table) == {("rowid",)}
            continue
        assert await pg_keys(pg, table) == sqlite_keys(lite, table), table


async def test_the_same_checks_as_sqlite(pg, lite):
    checked = 0
    for table in sqlite_tables(lite):
        if table in FTS_TABLES:
            continue
        expected = sqlite_checks(lite, table)
        assert await pg_checks(pg, table) == expected, table
        checked += len(expected)
    assert checked > 20


# --- the same constraints at work ----------------------------------------------------------


ACCOUNT = (
    "INSERT INTO accounts (id, username, username_key, domain, created_at, updated_at)"
    " VALUES ({id}, '{name}', '{key}', {domain}, 1, 1)"
)


def account(id_: int, name: str, domain: str | None = None) -> str:
    """An account row as the store writes it: ``username_key`` is the lowered username
    (the schema's case-insensitive handle; no column is COLLATE NOCASE)."""
    return ACCOUNT.format(
        id=id_, name=name, key=name.lower(), domain="NULL" if domain is None else f"'{domain}'"
    )


async def outcome_pg(conn: asyncpg.Connection, sql: str) -> str:
    try:
        await conn.execute(sql)
    except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError,
            asyncpg.ForeignKeyViolationError, asyncpg.NotNullViolationError) as error:
        return type(error).__name__.removesuffix("Error")
    return "ok"


def outcome_lite(conn: sqlite3.Connection, sql: str) -> str:
    try:
        conn.execute(sql)
    except sqlite3.IntegrityError as error:
        message = str(error)
        if message == "constraint failed":  # FTS5's duplicate rowid says no more
            return "UniqueViolation"
        for prefix, name in (("UNIQUE", "UniqueViolation"), ("CHECK", "CheckViolation"),
                             ("FOREIGN KEY", "ForeignKeyViolation"),
                             ("NOT NULL", "NotNullViolation")):
            if message.startswith(prefix):
                return name
        raise
    return "ok"


CONSTRAINT_SCRIPT = [
    (account(1, "Alice"), "ok"),
    (account(2, "ALICE"), "UniqueViolation"),  # the same local handle, other case
    (account(3, "alice", "remote.example"), "ok"),
    (account(4, "Alice", "remote.example"), "UniqueViolation"),
    (account(5, "alice", "other.example"), "ok"),
    ("INSERT INTO users (account_id, password_hash, state, created_at, password_changed_at)"
     " VALUES (1, 'x', 'sleeping', 1, 1)", "CheckViolation"),
    ("INSERT INTO posts (account_id, visibility, local, created_at)"
     " VALUES (99, 'public', 1, 1)", "ForeignKeyViolation"),
    ("INSERT INTO posts (id, account_id, visibility, local, created_at, uri)"
     " VALUES (1, 1, 'public', 1, 1, 'https://x.example/1')", "ok"),
    ("INSERT INTO posts (id, account_id, visibility, local, created_at, uri)"
     " VALUES (2, 1, 'public', 1, 1, 'https://x.example/1')", "UniqueViolation"),
    ("INSERT INTO posts (id, account_id, visibility, local, created_at, reblog_of_id)"
     " VALUES (3, 3, 'public', 0, 1, 1)", "ok"),
    ("INSERT INTO posts (id, account_id, visibility, local, created_at, reblog_of_id)"
     " VALUES (4, 3, 'public', 0, 1, 1)", "UniqueViolation"),  # posts_one_boost
    ("INSERT INTO notifications (account_id, type, from_account_id, created_at)"
     " VALUES (1, 'missed_call', 3, 1)", "ok"),  # m011's CHECK
    ("INSERT INTO notifications (account_id, type, from_account_id, created_at)"
     " VALUES (1, 'poke', 3, 1)", "CheckViolation"),
    ("INSERT INTO likes (account_id, post_id, created_at) VALUES (3, 1, 1)", "ok"),
    ("INSERT INTO likes (account_id, post_id, created_at) VALUES (3, 1, 2)", "UniqueViolation"),
    ("UPDATE accounts SET call_policy = 'strangers' WHERE id = 1", "CheckViolation"),
    ("UPDATE accounts SET dm_policy = 'following' WHERE id = 1", "ok"),
    ("INSERT INTO posts_fts (rowid, text) VALUES (1, 'one')", "ok"),
    ("INSERT INTO posts_fts (rowid, text) VALUES (1, 'again')", "UniqueViolation"),
    ("DELETE FROM posts WHERE id = 1", "ok"),  # cascades: the boost, the like
]


async def test_uniques_checks_and_keys_hold_alike(pg, lite):
    for sql, expected in CONSTRAINT_SCRIPT:
        assert (outcome_lite(lite, sql), await outcome_pg(pg, sql)) == (expected, expected), sql
    for check in ("SELECT COUNT(*) FROM posts", "SELECT COUNT(*) FROM likes",
                  "SELECT COUNT(*) FROM notifications"):
        assert lite.execute(check).fetchone()[0] == await pg.fetchval(check), check


async def test_new_rows_get_ids_after_explicit_ones_are_not_needed(pg):
    # GENERATED BY DEFAULT: an id may be given (the copy tool does) or left to the sequence.
    await pg.execute(account(1, "carol"))
    new_id = await pg.fetchval(
        "INSERT INTO invites (code, created_at) VALUES ('abc', 1) RETURNING id"
    )
    assert new_id == 1


# --- account_stats triggers --------------------------------------------------------------------


def post(id_: int, account_id: int, visibility: str, created_at: float,
         reblog_of: int | None = None) -> str:
    return (
        "INSERT INTO posts (id, account_id, visibility, local, created_at, reblog_of_id)"
        f" VALUES ({id_}, {account_id}, '{visibility}', 1, {created_at},"
        f" {'NULL' if reblog_of is None else reblog_of})"
    )


def follow(id_: int, follower: int, target: int, state: str) -> str:
    return (
        "INSERT INTO follows (id, account_id, target_account_id, state, created_at)"
        f" VALUES ({id_}, {follower}, {target}, '{state}', 1)"
    )


STATS_SCRIPT = [
    account(1, "ann"), account(2, "bob"), account(3, "cy"), account(4, "dee"),
    post(10, 1, "public", 100),
    post(11, 1, "direct", 150),  # not counted
    post(12, 1, "unlisted", 120),
    post(13, 2, "followers", 130),
    post(14, 3, "public", 140, reblog_of=13),  # a boost counts as a post, as in Mastodon
    "UPDATE posts SET deleted_at = 200 WHERE id = 12",  # uncounted
    "UPDATE posts SET deleted_at = 201 WHERE id = 12",  # already uncounted: no change
    "UPDATE posts SET visibility = 'public' WHERE id = 11",  # counted; older: last stays
    "UPDATE posts SET deleted_at = NULL WHERE id = 12",  # counted again
    "UPDATE posts SET visibility = 'direct' WHERE id = 10",  # uncounted
    "UPDATE posts SET sensitive = 1 WHERE id = 13",  # another column: no trigger
    "DELETE FROM posts WHERE id = 11",
    "DELETE FROM posts WHERE id = 13",  # cascades to the boost 14
    post(15, 4, "direct", 300),
    "DELETE FROM posts WHERE id = 15",  # never counted
    follow(1, 1, 2, "accepted"),
    follow(2, 2, 1, "pending"),
    follow(3, 3, 1, "accepted"),
    follow(4, 4, 1, "accepted"),
    follow(5, 1, 4, "pending"),
    "UPDATE follows SET state = 'accepted' WHERE id = 2",
    "UPDATE follows SET state = 'pending' WHERE id = 3",
    "UPDATE follows SET state = 'pending' WHERE id = 5",  # pending to pending
    "DELETE FROM follows WHERE id = 1",
    "DELETE FROM follows WHERE id = 5",  # never counted
]


async def test_account_stats_triggers_count_alike(pg, lite):
    query = (
        "SELECT account_id, followers_count, following_count, statuses_count, last_status_at"
        " FROM account_stats ORDER BY account_id"
    )
    for sql in STATS_SCRIPT:
        lite.execute(sql)
        await pg.execute(sql)
    expected = [tuple(row) for row in lite.execute(query)]
    assert [tuple(row) for row in await pg.fetch(query)] == expected
    assert expected == [
        (1, 2, 0, 1, 150.0),
        (2, 0, 1, 0, 130.0),
        (3, 0, 0, 0, 140.0),
        (4, 0, 1, 0, None),
    ]


async def test_deleting_an_account_with_counted_rows_goes_alike(pg, lite):
    # The stats triggers, on both backends: the cascade deletes the account's stats row,
    # then its follows and posts, whose triggers count down. m013's upserted the row again
    # for an account that is gone (its foreign key refused the deletion); m017's only
    # update rows that are there. (The store deletes only never-approved sign-ups.)
    script = [account(1, "ann"), account(4, "dee"), follow(1, 4, 1, "accepted"),
              follow(2, 1, 4, "accepted"), post(1, 4, "public", 10)]
    for sql in script:
        lite.execute(sql)
        await pg.execute(sql)
    delete = "DELETE FROM accounts WHERE id = 4"
    assert (outcome_lite(lite, delete), await outcome_pg(pg, delete)) == ("ok", "ok")
    query = ("SELECT account_id, followers_count, following_count, statuses_count"
             " FROM account_stats ORDER BY account_id")  # fmt: skip
    expected = [tuple(row) for row in lite.execute(query)]
    assert [tuple(row) for row in await pg.fetch(query)] == expected == [(1, 0, 0, 0)]


# --- functions -----------------------------------------------------------------------------------


async def test_host_shard_is_pythons(pg):
    hosts = ["example.com", "mastodon.social:8443", "bücher.example", "日本語.jp",
             "xn--bcher-kva.example", "", "a" * 300]
    for host in hosts:
        assert await pg.fetchval("SELECT xnode_host_shard($1)", host) == host_shard(host), host
    assert [host_shard(h) for h in hosts] == [zlib.crc32(h.encode()) % 1024 for h in hosts]


async def test_the_shard_backfill_statement_runs(pg):
    await pg.execute(
        "INSERT INTO deliveries (activity_id, inbox_url, host, payload, state,"
        " next_attempt_at, created_at) VALUES ('a', 'https://bücher.example/inbox',"
        " 'bücher.example', '{}', 'pending', 0, 0)"
    )
    await pg.execute(all_migrations()[4].postgres_statements[-1])
    assert await pg.fetchval("SELECT shard FROM deliveries") == host_shard("bücher.example")


# --- full-text search -----------------------------------------------------------------------


def fts_lite(conn: sqlite3.Connection, table: str, word: str) -> list[int]:
    rows = conn.execute(
        f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY rowid", (f'"{word}"*',)
    )
    return [row[0] for row in rows]


async def fts_pg(conn: asyncpg.Connection, table: str, word: str) -> list[int]:
    """The query as the store will make it: the word folded like the document, then a
    prefix match (FTS5's ``"word"*``) in the 'simple' configuration."""
    rows = await conn.fetch(
        f"SELECT rowid FROM {table} WHERE document @@"
        " to_tsquery('simple', quote_literal(xnode_search_text($1)) || ':*') ORDER BY rowid",
        word,
    )
    return [row["rowid"] for row in rows]


POSTS = [
    (1, "Un CAFÉ Crème, s'il vous plaît"),
    (2, "Phở in HÀ NỘI"),
    (3, "plain cafe talk"),
    (4, "Ωμέγα and ΣΊΣΥΦΟΣ"),
    (5, "mail me at someone@mail.example or see foo-bar_baz"),
]


# (what someone typed, the posts found): the same on both backends.
SEARCHES = [
    ("cafe", [1, 3]),
    ("CAFÉ", [1, 3]),
    ("creme", [1]),
    ("crè", [1]),  # prefix, accented
    ("pho", [2]),
    ("noi", [2]),
    ("ha", [2]),
    ("ωμέγα", [4]),
    ("ΣΊΣΥ", [4]),
    ("σισυ", []),  # FTS5 keeps the accents of Greek letters, and so do we
    ("mail", [5]),
    ("example", [5]),
    ("bar", [5]),
    ("baz", [5]),
    ("plait", [1]),
    ("tea", []),
]


async def test_posts_fts_matches_as_fts5(pg, lite):
    for rowid, text in POSTS:
        lite.execute("INSERT INTO posts_fts (rowid, text) VALUES (?, ?)", (rowid, text))
        await pg.execute("INSERT INTO posts_fts (rowid, text) VALUES ($1, $2)", rowid, text)
    for word, hits in SEARCHES:
        assert fts_lite(lite, "posts_fts", word) == hits, word
        assert await fts_pg(pg, "posts_fts", word) == hits, word


async def test_accounts_fts_covers_handle_name_and_bio(pg, lite):
    rows = [
        (1, "zoë@remote.example", "Zoë Ångström", "Bäcker aus Köln"),
        (2, "bob", None, "cafe owner"),
    ]
    for row in rows:
        lite.execute(
            "INSERT INTO accounts_fts (rowid, handle, display_name, bio) VALUES (?, ?, ?, ?)",
            row,
        )
        await pg.execute(
            "INSERT INTO accounts_fts (rowid, handle, display_name, bio) VALUES ($1, $2, $3, $4)",
            *row,
        )
    for word, hits in (("zoe", [1]), ("remote", [1]), ("angstrom", [1]), ("KOLN", [1]),
                       ("backer", [1]), ("bob", [2]), ("cafe", [2]), ("owner", [2])):
        assert fts_lite(lite, "accounts_fts", word) == hits, word
        assert await fts_pg(pg, "accounts_fts", word) == hits, word
    # The store removes a row by rowid and writes it again, on both backends alike.
    await pg.execute("DELETE FROM accounts_fts WHERE rowid = $1", 2)
    assert await fts_pg(pg, "accounts_fts", "bob") == []
