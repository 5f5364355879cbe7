"""The inbox processed by a second process (setting ``inbox_process``), against a real one.

Node A serves in this test process; its inbox process is a real `xnode
inbox-process` subprocess sharing A's database. Node B is an ordinary node.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from live_nodes import LiveNode, eventually, follow_across, remote_post, start_node

from xnode.activitypub.inbox import INBOX_LINK
from xnode.activitypub.inbox_process import decode_event, encode_event
from xnode.events import NotificationCreated, PostDeleted, PostPublished
from xnode.posts.service import Draft
from xnode.web.state import DB, LIVE, POSTS


@pytest.fixture
async def split_nodes(tmp_path: Path) -> AsyncIterator[tuple[LiveNode, LiveNode]]:
    a = await start_node(tmp_path, "a", inbox_process=True, helper_idle_stop_s=0)
    b = await start_node(tmp_path, "b")
    link = a[INBOX_LINK]
    await eventually(lambda: _true(link.ready), timeout=30)
    yield a, b
    await b.server.close()
    await a.server.close()


async def _true(value: bool) -> bool:
    return value


async def test_activities_are_handled_by_the_inbox_process(split_nodes, caplog):
    caplog.set_level(logging.INFO, logger="xnode.activitypub.inbox")
    a, b = split_nodes
    link = a[INBOX_LINK]
    alice = await a.user("alice")
    bob = await b.user("bob")
    notified: list[object] = []

    async def record(event: object) -> None:
        notified.append(event)

    link.live.subscribe(NotificationCreated, record)
    link.live.subscribe(PostPublished, record)

    # bob@B follows alice@A: the inbox process takes the Follow and queues the
    # Accept; the web process, woken by it, sends the Accept at once.
    await follow_across(b, bob, a, "alice")
    # bob mentions alice: stored on A by the inbox process; alice's open tabs
    # hear of the notification through the web process.
    post = await b[POSTS].publish(bob, Draft(f"@alice@{a.domain} hello from B"))
    row = await eventually(lambda: remote_post(a, post.uri))
    assert "hello from B" in row["content_html"]
    await eventually(lambda: _true(NotificationCreated(alice.id) in notified))
    # A public post is not relayed (no open tab shows it live); a message is.
    assert not [e for e in notified if isinstance(e, PostPublished)]
    dm = await b[POSTS].publish(bob, Draft(f"@alice@{a.domain} psst", visibility="direct"))
    dm_row = await eventually(lambda: remote_post(a, dm.uri))
    assert dm_row["conversation_id"] is not None
    await eventually(
        lambda: _true(PostPublished(dm_row["id"], dm_row["account_id"]) in notified)
    )
    handled = await a[DB].fetchall("SELECT state FROM inbox_queue")
    assert [r["state"] for r in handled] == ["done", "done", "done"]
    assert link.starts == 1
    # New activities handed over are not mistaken for replays in the log.
    assert not [r for r in caplog.records if "replayed" in r.getMessage()]


class FakeTab:
    """An open browser tab, as the live hub sees it: it records the frames pushed."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.closed = False

    async def send_json(self, data: dict) -> None:
        self.frames.append(data)


async def test_with_a_tab_open_new_public_posts_reach_it_from_the_inbox_process(split_nodes):
    """New public posts are relayed while someone could see them ("1 new post")."""
    a, b = split_nodes
    alice, bob = await a.user("alice"), await b.user("bob")
    await follow_across(a, alice, b, "bob")
    tab = FakeTab()
    await a[LIVE].connect(alice.id, tab)
    try:
        post = await b[POSTS].publish(bob, Draft("zqx public, for alice's open tab"))
        row = await eventually(lambda: remote_post(a, post.uri))

        async def nudged() -> bool:
            return any(f.get("type") == "timeline" and f.get("id") == row["id"]
                       for f in tab.frames)  # fmt: skip

        await eventually(nudged)
        assert [f["home"] for f in tab.frames if f.get("type") == "timeline"] == [True]
    finally:
        a[LIVE].disconnect(alice.id, tab)


async def test_activities_are_kept_while_the_inbox_process_is_down(split_nodes):
    a, b = split_nodes
    link = a[INBOX_LINK]
    await a.user("alice")
    bob = await b.user("bob")
    link.process.kill()
    await eventually(lambda: _true(not link.ready))
    # The web process stores the activity itself and answers 202 as usual...
    post = await b[POSTS].publish(bob, Draft(f"@alice@{a.domain} sent while it was down"))

    async def queued() -> bool:
        return await a[DB].fetchvalue("SELECT COUNT(*) FROM inbox_queue") == 1

    await eventually(queued)
    # ...and the restarted inbox process handles it.
    await eventually(lambda: _true(link.ready), timeout=30)
    assert link.starts == 2
    row = await eventually(lambda: remote_post(a, post.uri), timeout=40)
    assert "sent while it was down" in row["content_html"]


def test_relayed_events_round_trip_and_unknown_ones_are_dropped():
    event = PostDeleted(1, 2, "https://a.example/p/1", "direct", (3, 4))
    assert decode_event(json.loads(encode_event(event))) == event
    assert decode_event({"event": "AccountDeleted", "fields": {"account_id": 1}}) is None
    assert decode_event({"event": "PostDeleted", "fields": {"nope": 1}}) is None
    assert decode_event({"event": "PostDeleted", "fields": "x"}) is None


async def test_the_inbox_process_exits_when_the_web_process_goes(tmp_path: Path):
    a = await start_node(tmp_path, "a", inbox_process=True, helper_idle_stop_s=0)
    link = a[INBOX_LINK]
    await eventually(lambda: _true(link.ready), timeout=30)
    process = link.process
    await a.server.close()
    await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0
