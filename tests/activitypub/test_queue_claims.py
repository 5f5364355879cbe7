"""Delivery rows queued already claimed (the small hand-offs a process sends from memory)
are held by that process alone, and can be given up one by one (issue 18). Both backends."""

from __future__ import annotations

import time

from xnode.store import deliveries
from xnode.web.state import DB


def rows(n: int, tag: str) -> list[deliveries.NewDelivery]:
    return [
        deliveries.NewDelivery(f"https://node.example/{tag}/{k}", None, None,
                               f"https://h{k}.example/inbox", "{}")
        for k in range(n)
    ]  # fmt: skip


async def others_see(db, now: float) -> list[int]:
    found = await deliveries.due(
        db, now, per_host=10, limit=100, claim=deliveries.Claim("another", now + 1)
    )
    await deliveries.release(db, "another")
    return sorted(delivery.id for delivery, _ in found)


async def test_rows_queued_claimed_are_that_process_s_alone(app):
    db = app[DB]
    now = time.time()
    mine = await deliveries.insert_many(
        db, rows(2, "mine"), now, claim=deliveries.Claim("this-process", now + 300)
    )
    free = await deliveries.insert_many(db, rows(2, "free"), now)
    # Another process sees only the unclaimed ones: this one is sending the others from
    # memory (xnode.activitypub.delivery's hand-off), and a read must not send them twice.
    assert await others_see(db, time.time()) == sorted(free)
    # Given up (this process stopped sending before it could): anyone's again.
    assert await deliveries.release_rows(db, "another", mine) == 0  # not theirs to give
    assert await deliveries.release_rows(db, "this-process", mine) == 2
    assert await others_see(db, time.time()) == sorted([*mine, *free])
