"""Helper processes on demand (issue 15): started by load, handed the work, stopped when idle.

Node A is configured as `xnode init` does on two cores (an inbox process, two
delivery processes) with the idle time cut to two seconds and the start
thresholds lowered, so that a few real follows and posts are "load". Nodes B and
C record every activity their inboxes accept: nothing may arrive twice or not at
all while the work moves between processes.
"""

from __future__ import annotations

from typing import Any

import pytest
from live_nodes import eventually, follow_across, remote_post, start_node

from xnode.activitypub import helper_pool
from xnode.activitypub.delivery import DELIVERY
from xnode.activitypub.helper_pool import HELPER_POOL, RateMeter
from xnode.activitypub.inbox import INBOX_LINK
from xnode.activitypub.node import DELIVERY_PROCESSES
from xnode.posts.service import Draft
from xnode.store import helper_processes
from xnode.web.state import DB, POSTS


async def _true(value: bool) -> bool:
    return value


async def _all_idle(node: Any) -> bool:
    return {s.state for s in await helper_processes.all_states(node[DB])} == {"idle"}


def test_the_rate_meter_counts_the_last_seconds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(helper_pool.time, "monotonic", lambda: now[0])
    meter = RateMeter(window_s=2)
    meter.add(10)
    now[0] = 101.5
    meter.add(30)
    assert meter.rate() == 20.0
    now[0] = 102.2  # the first second left the window
    assert meter.rate() == 15.0
    now[0] = 110.0
    assert meter.rate() == 0.0


@pytest.fixture
async def nodes(tmp_path, monkeypatch):
    monkeypatch.setattr(helper_pool, "INBOX_START_PER_S", 0.5)  # one activity starts it
    monkeypatch.setattr(helper_pool, "DELIVERY_BURST_ROWS", 2)  # a fan-out to two hosts
    monkeypatch.setattr(helper_pool, "CHECK_INTERVAL_S", 0.2)
    a = await start_node(tmp_path, "a", inbox_process=True, delivery_processes=2,
                         helper_idle_stop_s=2)  # fmt: skip
    b = await start_node(tmp_path, "b", record_inbox=True)
    c = await start_node(tmp_path, "c", record_inbox=True)
    yield a, b, c
    for node in (c, b, a):
        await node.server.close()


async def test_helpers_start_with_load_take_over_and_stop_when_idle(nodes):
    a, b, c = nodes
    pool, link, senders = a[HELPER_POOL], a[INBOX_LINK], a[DELIVERY_PROCESSES]
    # Idle: one process does everything.
    assert not link.running and not senders.running
    assert pool.inbox_here and a[DELIVERY].working
    await eventually(lambda: _all_idle(a))

    # Follows arriving are inbox load: the inbox process starts and takes the queue.
    alice = await a.user("alice")
    for node, name in ((b, "bob"), (c, "carol")):
        await follow_across(node, await node.user(name), a, "alice")
    await eventually(lambda: _true(link.ready and not pool.inbox_here), timeout=30)

    # A fan-out is delivery load: the delivery processes start and take over.
    async def post_reaches_everyone(text: str) -> str:
        post = await a[POSTS].publish(alice, Draft(text))
        for node in (b, c):
            await eventually(lambda node=node: remote_post(node, post.uri), timeout=30)
        return f"{post.uri}/activity"

    first = await post_reaches_everyone("while the delivery processes start")
    await eventually(lambda: _true(senders.ready and not a[DELIVERY].working), timeout=30)
    second = await post_reaches_everyone("sent by the delivery processes")
    # bob mentions alice: the inbox process stores it.
    bob_post = await b[POSTS].publish(
        (await b.user("bob2")), Draft(f"@alice@{a.domain} hello")
    )
    await eventually(lambda: remote_post(a, bob_post.uri), timeout=30)

    # Quiet for the idle time: the helpers stop and this process works alone again.
    await eventually(lambda: _true(not link.running and not senders.running), timeout=30)
    # The queue here resumes once the stopped helpers' states are written.
    await eventually(lambda: _true(pool.inbox_here and a[DELIVERY].working), timeout=10)
    await eventually(lambda: _all_idle(a))
    third = await post_reaches_everyone("sent by the serving process again")
    carol_post = await c[POSTS].publish(
        (await c.user("carol2")), Draft(f"@alice@{a.domain} still there?")
    )
    await eventually(lambda: remote_post(a, carol_post.uri), timeout=30)

    # Every Create reached each node exactly once through the hand-overs.
    for node in (b, c):
        creates = node.received_ids("Create")
        assert [creates.count(activity) for activity in (first, second, third)] == [1, 1, 1]
