"""The inbox queue's insert refuses activities from suspended servers itself (issue 18).

The door's check reads the block list from a cache; with several serving processes on
PostgreSQL, a block made through another process reaches that cache by NOTIFY a few
milliseconds after its commit. The insert (``inbox_queue.enqueue_activity``) reads the
table in the same statement, so nothing from a suspended server is queued even then;
``domain_blocks.any_suspended_now`` tells that refusal from a replay. Both backends.
"""

from __future__ import annotations

import time

from xnode.store import domain_blocks, inbox_queue
from xnode.web.state import DB

ACTOR = "https://social.evil.example/users/mallory"


async def queue(db, n: int, *, actor: str = ACTOR, key_id: str | None = None) -> bool:
    return await inbox_queue.enqueue_activity(
        db, 50_000 + n, activity_id=f"{actor}/activities/{n}", actor_uri=actor,
        signer_key_id=key_id if key_id is not None else f"{actor}#main-key", payload="{}",
        now=time.time(),
    )  # fmt: skip


async def test_the_insert_refuses_what_a_suspension_covers_whatever_the_cache_says(
    app, monkeypatch
):
    db = app[DB]
    assert await queue(db, 1)
    assert not await domain_blocks.any_suspended_now(db, ACTOR)
    await domain_blocks.add_block(db, "evil.example", "suspend", "", time.time())

    # As another process sees it for a moment: the cached list without the block.
    async def stale(_db):
        return {}

    monkeypatch.setattr(domain_blocks, "_severities", stale)
    assert not await domain_blocks.url_is_suspended(db, ACTOR)
    # The actor's server (a subdomain of the blocked one), or the signer's, blocked.
    assert not await queue(db, 2)
    assert not await queue(db, 3, actor="https://fine.example/users/bob",
                           key_id=f"{ACTOR}#main-key")  # fmt: skip
    assert await domain_blocks.any_suspended_now(db, ACTOR)
    assert await domain_blocks.any_suspended_now(db, "https://fine.example/x", ACTOR)
    assert not await domain_blocks.any_suspended_now(db, "https://fine.example/x", None)
    # Others still come in; a replay is still only a replay.
    assert await queue(db, 4, actor="https://fine.example/users/bob",
                       key_id="https://fine.example/users/bob#main-key")  # fmt: skip
    assert not await queue(db, 4, actor="https://fine.example/users/bob",
                           key_id="https://fine.example/users/bob#main-key")  # fmt: skip
    ids = await db.fetchall("SELECT id FROM inbox_queue WHERE id >= 50000 ORDER BY id")
    assert [row["id"] for row in ids] == [50_001, 50_004]

    # A silenced server is not suspended: its activities are queued.
    await domain_blocks.add_block(db, "evil.example", "silence", "", time.time())
    assert await queue(db, 5)
