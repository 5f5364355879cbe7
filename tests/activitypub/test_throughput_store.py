"""Behaviour kept by the issue-4 throughput work: caches invalidate, writes stay atomic."""

from __future__ import annotations

import pytest

from xnode.store import deliveries as store
from xnode.store import domain_blocks
from xnode.store.database import IntegrityError, open_database


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


async def test_executemany_is_part_of_one_atomic_transaction(tmp_path):
    """A batch that fails part-way leaves nothing behind; one that succeeds commits all."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        sql = "INSERT INTO domain_blocks (domain, severity, created_at) VALUES (?, ?, 0)"
        with pytest.raises(IntegrityError):
            async with db.transaction() as conn:
                await conn.executemany(sql, [("a.example", "suspend"), ("a.example", "suspend")])
        assert await db.fetchvalue("SELECT count(*) FROM domain_blocks") == 0
        async with db.transaction() as conn:
            await conn.executemany(sql, [("a.example", "suspend"), ("b.example", "silence")])
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
        attempt = store.Attempt(delivery.id, delivery.host, "delivered", 1, 202, None, 0, 2)
        await store.record_attempts(
            db, [store.Outcome(attempt, True, None)], lambda failures, now: None
        )
        state = await db.fetchvalue("SELECT state FROM deliveries WHERE id = ?", (delivery.id,))
        assert state == "failed"


async def test_insert_many_maps_each_new_id_to_its_own_row(tmp_path):
    """Rows already queued are skipped, and every returned id belongs to its row
    (the hand-off to the worker relies on it)."""
    async with open_database(tmp_path / "x.sqlite3") as db:

        def row(activity: str, inbox: str) -> store.NewDelivery:
            return store.NewDelivery(activity, None, None, inbox, f'{{"id": "{activity}"}}')

        first = await store.insert_many(db, [row("a1", "https://h1.example/inbox")], now=0)
        again = [
            row("a2", "https://h1.example/inbox"),
            row("a1", "https://h1.example/inbox"),  # queued already
            row("a1", "https://h2.example/inbox"),
        ]
        added = await store.insert_many(db, again, now=1)
        assert sorted((r.activity_id, r.inbox_url) for r in added.values()) == [
            ("a1", "https://h2.example/inbox"), ("a2", "https://h1.example/inbox"),
        ]
        for delivery_id, new in added.items():
            stored = await db.fetchone(
                "SELECT activity_id, inbox_url, payload FROM deliveries WHERE id = ?",
                (delivery_id,),
            )
            assert tuple(stored) == (new.activity_id, new.inbox_url, new.payload)
        assert set(first).isdisjoint(added)


async def test_follower_inboxes_share_inboxes_and_skip_gone_accounts(tmp_path):
    """One inbox per shared inbox; deleted, suspended, pending and local followers add none."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        rows = [  # id, domain, inbox, shared inbox, deleted, suspended
            (1, None, None, None, None, None),  # the local author
            (2, "one.example", "https://one.example/u/a", "https://one.example/inbox", None, None),
            (3, "one.example", "https://one.example/u/b", "https://one.example/inbox", None, None),
            (4, "two.example", "https://two.example/u/c", "", None, None),
            (5, "three.example", "https://three.example/u/d", None, 1.0, None),
            (6, "four.example", "https://four.example/u/e", None, None, 1.0),
            (7, None, None, None, None, None),  # a local follower
            (8, "five.example", "https://five.example/u/f", None, None, None),  # pending
        ]
        for account_id, domain, inbox, shared, deleted, suspended in rows:
            await db.execute(
                "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
                " shared_inbox_url, deleted_at, suspended_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (account_id, f"u{account_id}", f"u{account_id}", domain,
                 f"https://x.example/{account_id}", inbox, shared, deleted, suspended),
            )
        for follower in range(2, 9):
            await db.execute(
                "INSERT INTO follows (account_id, target_account_id, state, created_at)"
                " VALUES (?, 1, ?, 0)",
                (follower, "pending" if follower == 8 else "accepted"),
            )
        assert await store.remote_follower_inboxes(db, 1) == [
            "https://one.example/inbox", "https://two.example/u/c",
        ]


async def test_a_batch_of_outcomes_leaves_each_host_as_its_last_answer_says(tmp_path):
    """Outcomes are written together; per host, the later answer in the batch stands."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        rows = [
            store.NewDelivery(f"a{n}", None, None, f"https://{host}/inbox", "{}")
            for n in range(2) for host in ("up-then-down.example", "down-then-up.example")
        ]  # fmt: skip
        added = await store.insert_many(db, rows, now=0)

        def outcome(n: int, host: str, ok: bool) -> store.Outcome:
            delivery_id = next(
                i for i, r in added.items()
                if r.activity_id == f"a{n}" and r.inbox_url == f"https://{host}/inbox"
            )  # fmt: skip
            state = "delivered" if ok else "pending"
            attempt = store.Attempt(delivery_id, host, state, 1, 202 if ok else 503,
                                    None if ok else "HTTP 503", 60, 5.0 + n)  # fmt: skip
            return store.Outcome(attempt, ok, None, "rfc9421" if ok else None)

        await store.record_attempts(db, [
            outcome(0, "up-then-down.example", True), outcome(0, "down-then-up.example", False),
            outcome(1, "up-then-down.example", False), outcome(1, "down-then-up.example", True),
        ], lambda failures, now: now + 60 * failures)  # fmt: skip
        down = await store.host_health(db, "up-then-down.example")
        up = await store.host_health(db, "down-then-up.example")
        assert down is not None and up is not None
        assert (down.consecutive_failures, down.circuit_open_until) == (1, 6.0 + 60)
        assert (up.consecutive_failures, up.circuit_open_until) == (0, None)
        assert (down.signature_scheme, up.signature_scheme) == ("rfc9421", "rfc9421")
        states = await db.fetchall("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        assert {r[0]: r[1] for r in states} == {"delivered": 2, "pending": 2}
