"""The SQLite store: migrations, transactions, concurrent reads, IDs."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from xnode.ids import IdGenerator, id_for_time, id_timestamp, typeable_token
from xnode.store.database import IntegrityError, database_for, open_database
from xnode.store.migrations import SchemaTooNewError, all_migrations


async def test_migrations_apply_once_and_are_recorded(tmp_path):
    path = tmp_path / "db.sqlite3"
    async with open_database(path) as db:
        versions = [r[0] for r in await db.fetchall("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in all_migrations()]
        assert await db.fetchvalue("PRAGMA journal_mode") == "wal"
        assert await db.fetchvalue("PRAGMA foreign_keys") == 1
    async with open_database(path) as db:  # reopening applies nothing twice
        count = await db.fetchvalue("SELECT COUNT(*) FROM schema_migrations")
        assert count == len(all_migrations())


async def test_refuses_a_database_from_a_newer_xnode(tmp_path):
    path = tmp_path / "db.sqlite3"
    async with open_database(path) as db:
        await db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)"
        )
    db = database_for(path)
    with pytest.raises(SchemaTooNewError, match="999"):
        await db.open()
    await db.close()


async def test_failed_transaction_leaves_nothing_behind(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        with pytest.raises(IntegrityError):
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO node_settings (key, value, updated_at) VALUES ('a', '1', 0)"
                )
                await conn.execute(
                    "INSERT INTO node_settings (key, value, updated_at) VALUES ('a', '2', 0)"
                )
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 0


async def _insert_setting(db, key: str, *, fail: bool = False) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO node_settings (key, value, updated_at) VALUES (?, 'v', 0)", (key,)
        )
        if fail:
            raise ValueError("this block fails")


async def test_blocks_ending_together_share_one_commit(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        before = db.commits
        await asyncio.gather(*(_insert_setting(db, f"k{n}") for n in range(20)))
        assert db.commits - before == 1
        # Each block returned only once committed: readers see every row.
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 20


async def test_a_failing_block_rolls_back_alone_within_its_group(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        results = await asyncio.gather(
            _insert_setting(db, "a"), _insert_setting(db, "b", fail=True), _insert_setting(db, "c"),
            _insert_setting(db, "a"),  # a duplicate key: IntegrityError, also alone
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ValueError)
        assert isinstance(results[3], IntegrityError)
        rows = await db.fetchall("SELECT key FROM node_settings ORDER BY key")
        assert [row[0] for row in rows] == ["a", "c"]


async def test_a_cancelled_caller_does_not_cancel_the_groups_commit(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        task = asyncio.create_task(_insert_setting(db, "kept"))
        other = asyncio.create_task(_insert_setting(db, "other"))
        await asyncio.sleep(0)  # both blocks have run; their commit is pending
        task.cancel()
        await other
        with pytest.raises(asyncio.CancelledError):
            await task
        rows = await db.fetchall("SELECT key FROM node_settings ORDER BY key")
        assert [row[0] for row in rows] == ["kept", "other"]


async def _defer_setting(db, key: str, *, fail: bool = False) -> None:
    async with db.transaction() as conn:
        conn.at_commit(
            "INSERT INTO node_settings (key, value, updated_at) VALUES (?, 'late', 0)", (key,)
        )
        if fail:
            raise ValueError("this block fails")


async def test_deferred_writes_land_with_their_groups_commit_unless_their_block_fails(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        before = db.commits
        results = await asyncio.gather(
            _defer_setting(db, "kept"), _defer_setting(db, "dropped", fail=True),
            _insert_setting(db, "plain"), return_exceptions=True,
        )  # fmt: skip
        assert results[0] is None and isinstance(results[1], ValueError)
        assert db.commits - before == 1
        # Committed (and visible) by the time each block returned.
        rows = await db.fetchall("SELECT key, value FROM node_settings ORDER BY key")
        assert [tuple(row) for row in rows] == [("kept", "late"), ("plain", "v")]
        # A deferred write that fails takes its whole group down, as a failed COMMIT would.
        results = await asyncio.gather(
            _defer_setting(db, "kept"), _insert_setting(db, "innocent"), return_exceptions=True
        )
        assert all(isinstance(r, IntegrityError) for r in results), results
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 2
        await _defer_setting(db, "later")  # the writer is usable again
        assert await db.fetchvalue("SELECT value FROM node_settings WHERE key = 'later'") == "late"


async def test_a_failing_commit_fails_every_block_of_its_group(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:

        async def dangling_invite() -> None:
            async with db.transaction() as conn:
                # A deferred foreign-key violation is only detected by COMMIT.
                await conn.execute("PRAGMA defer_foreign_keys = ON")
                await conn.execute(
                    "INSERT INTO invites (id, code, created_by, created_at) VALUES (1, 'x', 999, 0)"
                )

        results = await asyncio.gather(
            _insert_setting(db, "innocent"), dangling_invite(), return_exceptions=True
        )
        assert all(isinstance(r, IntegrityError) for r in results), results
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 0
        assert await db.fetchvalue("SELECT COUNT(*) FROM invites") == 0
        await _insert_setting(db, "later")  # the writer is usable again
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 1


async def test_a_block_waiting_on_io_delays_but_keeps_the_others(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        release = asyncio.Event()

        async def slow() -> None:
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO node_settings (key, value, updated_at) VALUES ('slow', 'v', 0)"
                )
                await release.wait()

        slow_task = asyncio.create_task(slow())
        fast_task = asyncio.create_task(_insert_setting(db, "fast"))
        await asyncio.sleep(0.01)
        assert not fast_task.done()  # the writer is one connection: it waits its turn
        release.set()
        await asyncio.gather(slow_task, fast_task)
        assert await db.fetchvalue("SELECT COUNT(*) FROM node_settings") == 2


async def test_readers_are_not_blocked_by_an_open_write(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        await db.execute("INSERT INTO node_settings (key, value, updated_at) VALUES ('k', 'v', 0)")
        writing = asyncio.Event()
        release = asyncio.Event()

        async def slow_writer() -> None:
            async with db.transaction() as conn:
                await conn.execute("UPDATE node_settings SET value = 'new' WHERE key = 'k'")
                writing.set()
                await release.wait()

        task = asyncio.create_task(slow_writer())
        await writing.wait()
        # The write is uncommitted: a reader sees the old value at once.
        value = await asyncio.wait_for(
            db.fetchvalue("SELECT value FROM node_settings WHERE key = 'k'"), timeout=2
        )
        assert value == "v"
        release.set()
        await task
        assert await db.fetchvalue("SELECT value FROM node_settings WHERE key = 'k'") == "new"


async def test_inline_reads_see_commits_but_not_an_open_write(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        await db.execute("INSERT INTO node_settings (key, value, updated_at) VALUES ('k', 'v', 0)")
        sql = "SELECT value FROM node_settings WHERE key = ?"
        async with db.transaction() as conn:
            await conn.execute("UPDATE node_settings SET value = 'new' WHERE key = 'k'")
            assert await db.lookup_value(sql, ("k",)) == "v"
        assert await db.lookup_value(sql, ("k",)) == "new"
        assert await db.lookup(sql, ("missing",)) is None


async def test_keyed_reads_give_the_same_rows_inline_and_on_a_reader(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO node_settings (key, value, updated_at) VALUES (?, ?, 0)",
                [(f"k{i}", f"v{i}") for i in range(200)],
            )
        for count in (3, 150):  # inline, then past INLINE_KEYS_MAX (a reader thread)
            keys = [f"k{i}" for i in range(count)]
            marks = ", ".join("?" for _ in keys)
            rows = await db.fetch_keyed(
                f"SELECT key, value FROM node_settings WHERE key IN ({marks})", keys, len(keys)
            )
            assert sorted(tuple(r) for r in rows) == sorted((k, "v" + k[1:]) for k in keys)


async def test_inline_reader_cannot_write(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        with pytest.raises(sqlite3.OperationalError):
            await db.lookup("DELETE FROM node_settings RETURNING key")


async def test_reader_connections_cannot_write(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        with pytest.raises(sqlite3.OperationalError):
            await db.fetchall("DELETE FROM node_settings")


async def test_online_backup_is_a_consistent_copy(tmp_path):
    async with open_database(tmp_path / "db.sqlite3") as db:
        await db.execute("INSERT INTO node_settings (key, value, updated_at) VALUES ('k', 'v', 0)")
        await db.backup_to(tmp_path / "copy.sqlite3")
    copy = sqlite3.connect(tmp_path / "copy.sqlite3")
    assert copy.execute("SELECT value FROM node_settings").fetchone() == ("v",)


def test_ids_are_time_sortable_and_unique():
    generator = IdGenerator()
    ids = [generator.next_id(now_ms=1_800_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    later = generator.next_id(now_ms=1_800_000_000_500)
    assert later > ids[-1]
    assert id_timestamp(later) == pytest.approx(1_800_000_000.5)
    assert id_for_time(1_800_000_000.5) <= later
    assert later < (1 << 63)


def test_typeable_tokens_never_start_with_a_dash():
    # One token in 64 would start with "-" by chance; 2,000 draws miss that with p < 1e-13.
    tokens = [typeable_token(12) for _ in range(2000)]
    assert not any(token.startswith("-") for token in tokens)
    assert len(set(tokens)) == len(tokens)
    assert all(len(token) == 16 for token in tokens)
