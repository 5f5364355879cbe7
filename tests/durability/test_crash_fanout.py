"""Crashes during a large fan-out: every follower still gets the post (issue 14).

Node A (a real `xnode serve` with its inbox and two delivery processes) has
2,000 remote followers on 40 hosts, each with a personal inbox, so a post is
2,000 deliveries. The hosts are plain receivers in this process that record
every arrival, so duplicates can be counted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from crash import local_row, restart
from live_nodes import eventually
from served_node import Receivers, add_followers

from xnode.activitypub.delivery import GLOBAL_LIMIT, RECORD_BATCH_MAX

HOSTS = 40
PER_HOST = 50
DELIVERY_PROCESSES = 2


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    found = Receivers()
    await found.start(HOSTS)
    yield found
    await found.close()


async def test_a_crash_in_the_middle_of_a_fan_out_loses_no_follower(served, alice, receivers):
    followers = add_followers(served, "alice", receivers.ports, PER_HOST)
    # Each delivery process freezes once it has had 300 answers.
    served.start(pause_at="after-sends:300")
    await served.wait_serving()
    await alice.login("alice")
    assert await alice.submit("/posts", {"source": "to all my followers"}) == 303
    uri = local_row(served, "SELECT uri FROM posts WHERE source = 'to all my followers'")[0]
    activity_id = f"{uri}/activity"
    await served.wait_paused("after-sends:300")
    served.kill()
    before = len(receivers.reached(activity_id))
    assert 300 <= before < followers, before  # the crash came in the middle

    started = time.monotonic()
    await restart(served)
    everyone = set(receivers.inboxes(PER_HOST))

    async def all_reached() -> bool:
        return set(receivers.reached(activity_id)) == everyone

    await eventually(all_reached, timeout=60)
    drained_s = time.monotonic() - started
    arrivals = len(receivers.reached(activity_id))
    duplicates = arrivals - followers
    print(f"crash after {before} of {followers}: drained in {drained_s:.1f} s "
          f"(restart included), {duplicates} duplicates")  # fmt: skip
    # Only sends whose answer came but whose outcome was not written yet can repeat:
    # at most the sends in flight and one batch of outcomes, per delivery process.
    assert 0 <= duplicates <= DELIVERY_PROCESSES * (GLOBAL_LIMIT + RECORD_BATCH_MAX)


async def test_a_crash_after_the_outbox_became_rows_loses_nothing(served, alice, receivers):
    followers = add_followers(served, "alice", receivers.ports[:5], 4)
    served.start(pause_at="after-outbox")
    await served.wait_serving()
    await alice.login("alice")
    await alice.submit_until_frozen("/posts", {"source": "queued, not sent"}, "after-outbox")
    served.kill()
    with served.database() as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        pending = db.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'")
        assert pending.fetchone()[0] == followers
    assert receivers.received == []
    await restart(served)
    uri = local_row(served, "SELECT uri FROM posts WHERE source = 'queued, not sent'")[0]

    async def all_reached() -> bool:
        return len(set(receivers.reached(f"{uri}/activity"))) == followers

    await eventually(all_reached, timeout=30)
    assert len(receivers.reached(f"{uri}/activity")) == followers  # nothing twice
