"""Behaviour kept by the issue-4 throughput work: caches invalidate, writes stay atomic."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from xnode.store import deliveries as store
from xnode.store import domain_blocks
from xnode.store.database import WriterConnection, open_database


async def test_domain_block_cache_sees_writes_through_the_same_database(tmp_path):
    """A block inserted with plain SQL (as tests and tools do) applies at once."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        assert not await domain_blocks.url_is_suspended(db, "https://bad.example/users/a")
        await db.execute(
            "INSERT INTO domain_blocks (domain, severity, created_at) VALUES (?, ?, 0)",
            ("bad.example", "suspend"),
        )
        assert await domain_blocks.url_is_suspended(db, "https://sub.bad.example/users/a")
        assert await domain_blocks.suspended_domains(db) == ["bad.example"]
        assert await domain_blocks.remove_block(db, "bad.example")
        assert not await domain_blocks.url_is_suspended(db, "https://bad.example/users/a")


async def test_domain_block_cache_sees_another_database_on_the_same_file(tmp_path):
    """The CLI opens its own Database; a block it adds applies to the serving one at once."""
    path = tmp_path / "x.sqlite3"
    async with open_database(path) as serving, open_database(path) as cli:
        assert await domain_blocks.severity_for(serving, "bad.example") is None
        await domain_blocks.add_block(cli, "bad.example", "silence", "", now=0)
        assert await domain_blocks.severity_for(serving, "bad.example") == "silence"


async def test_write_batch_is_one_atomic_transaction(tmp_path):
    """A batch that fails part-way leaves nothing behind; one that succeeds commits all."""
    async with open_database(tmp_path / "x.sqlite3") as db:

        def insert(rows: list[tuple[str, str]]) -> Callable[[WriterConnection], int]:
            def work(conn: WriterConnection) -> int:
                return conn.run_many(
                    "INSERT INTO domain_blocks (domain, severity, created_at) VALUES (?, ?, 0)",
                    rows,
                ).rowcount

            return work

        with pytest.raises(sqlite3.IntegrityError):
            await db.write_batch(insert([("a.example", "suspend"), ("a.example", "suspend")]))
        assert await db.fetchvalue("SELECT count(*) FROM domain_blocks") == 0
        assert await db.write_batch(insert([("a.example", "suspend"), ("b.example", "silence")]))
        assert await db.fetchvalue("SELECT count(*) FROM domain_blocks") == 2


async def test_an_outcome_does_not_revive_a_cancelled_delivery(tmp_path):
    """A row an admin cancelled while it was read ahead or in flight stays failed."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        row = store.NewDelivery(
            "https://us.example/a/1", None, None, "https://bad.example/inbox", "{}"
        )
        await store.insert_many(db, [row], now=0)
        ((delivery, _),) = await store.due(db, 1, per_host=4, limit=10)
        await domain_blocks.add_block(db, "bad.example", "suspend", "", now=1)
        await store.record_attempt(
            db, store.Attempt(delivery.id, delivery.host, "delivered", 1, 202, None, 0, 2),
            host_up=True, retry_after_until=None, circuit_for=lambda failures: None,
        )
        state = await db.fetchvalue("SELECT state FROM deliveries WHERE id = ?", (delivery.id,))
        assert state == "failed"
