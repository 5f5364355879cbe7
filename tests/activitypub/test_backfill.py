"""Remote profiles and threads read from the other server when someone looks (issue 15).

Three real nodes on loopback: bob lives on B, carol on C, and alice on A looks
at bob's profile and at a thread of his through A's web UI.
"""

from __future__ import annotations

import re

import pytest
from live_nodes import eventually, follow_across, remote_post, start_node
from served_node import WebUser

from xnode.activitypub.backfill import BACKFILL
from xnode.posts.service import Draft
from xnode.web.state import DB, POSTS, RELATIONSHIPS, TIMELINES


@pytest.fixture
async def three(tmp_path):
    nodes = [await start_node(tmp_path, name) for name in ("a", "b", "c")]
    yield nodes
    for node in reversed(nodes):
        await node.server.close()


async def browser(node, username: str) -> WebUser:
    user = WebUser.for_url(str(node.server.make_url("")).rstrip("/"))
    await user.login(username)
    return user


async def page_of(user: WebUser, path: str) -> str:
    async with user.session.get(path) as response:
        assert response.status == 200, (path, response.status)
        return await response.text()


async def test_a_remote_profile_shows_what_their_server_knows(three):
    a, b, _ = three
    await a.user("alice")
    bob = await b.user("bob")
    for name in ("fan1", "fan2"):
        fan = await b.user(name)
        await b[RELATIONSHIPS].follow(fan.id, bob.id)
    await b[RELATIONSHIPS].follow(bob.id, (await b.user("idol")).id)
    posts = [await b[POSTS].publish(bob, Draft(f"zqx public {n}")) for n in range(3)]
    await b[POSTS].publish(bob, Draft("zqx followers only", visibility="followers"))
    await b[POSTS].pin(bob.id, posts[0].id)

    alice = await browser(a, "alice")
    try:
        page = await page_of(alice, f"/@bob@{b.domain}")
    finally:
        await alice.close()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    for n in range(3):
        assert f"zqx public {n}" in text
    assert "zqx followers only" not in text
    assert "2 followers" in text and "1 following" in text
    pinned = page[page.index('id="pinned-heading"'):page.index('id="posts-heading"')]
    assert "zqx public 0" in pinned and "zqx public 1" not in pinned


async def test_a_thread_fetches_the_replies_the_node_was_not_sent(three):
    a, b, c = three
    alice, bob, carol = await a.user("alice"), await b.user("bob"), await c.user("carol")
    await follow_across(a, alice, b, "bob")
    await follow_across(c, carol, b, "bob")
    post = await b[POSTS].publish(bob, Draft("zqx what do you all think?"))
    mine = await eventually(lambda: remote_post(a, post.uri))
    on_c = await eventually(lambda: remote_post(c, post.uri))
    # carol answers on C: her server sends it to bob's, not to A.
    reply = await c[POSTS].publish(carol, Draft("zqx carol's answer", in_reply_to_id=on_c["id"]))
    await eventually(lambda: remote_post(b, reply.uri))
    assert await remote_post(a, reply.uri) is None

    viewer = await browser(a, "alice")
    try:
        page = await page_of(viewer, f"/@bob@{b.domain}/{mine['id']}")
    finally:
        await viewer.close()
    assert "zqx carol&#39;s answer" in page or "zqx carol's answer" in page
    stored = await remote_post(a, reply.uri)
    assert stored["in_reply_to_id"] == mine["id"]
    assert await a[DB].fetchvalue(
        "SELECT count(*) FROM notifications WHERE account_id = ?", (alice.id,)
    ) == 0


async def test_a_remote_profile_lists_the_posts_read_from_the_outbox_newest_first(three):
    """The outbox lists the newest first; stored in that order, they read backwards."""
    a, b, _ = three
    alice = await a.user("alice")
    bob = await b.user("bob")
    for n in range(3):
        await b[POSTS].publish(bob, Draft(f"zqx number {n}"))
    bob_on_a = await a.remote(f"bob@{b.domain}")
    await a[BACKFILL].for_profile(bob_on_a)
    page = await a[TIMELINES].profile(alice.id, bob_on_a.id)
    texts = [re.sub(r"<[^>]+>", "", v.post.content_html) for v in page.items]
    assert texts == ["zqx number 2", "zqx number 1", "zqx number 0"]


async def test_following_a_remote_person_counts_at_once_in_the_counts_their_server_gave(three):
    """Their server's counts are read at most every few hours: a follow that starts or
    ends here moves them meanwhile, or the profile says "0 followers" to a follower."""
    a, b, _ = three
    alice = await a.user("alice")
    bob = await b.user("bob")
    bob_on_a = await a.remote(f"bob@{b.domain}")
    await a[BACKFILL].for_profile(bob_on_a)

    async def counts() -> tuple[int, int]:
        row = await a[DB].fetchone(
            "SELECT followers_count, following_count FROM accounts WHERE id = ?", (bob_on_a.id,)
        )
        return row["followers_count"], row["following_count"]

    assert await counts() == (0, 0)
    await follow_across(a, alice, b, "bob")
    assert await counts() == (1, 0)
    await follow_across(b, bob, a, "alice")  # bob follows alice: A counts whom he follows
    assert await counts() == (1, 1)
    await a[RELATIONSHIPS].unfollow(alice.id, bob_on_a.id)
    await a[RELATIONSHIPS].block(alice.id, bob_on_a.id)  # ends his follow too
    assert await counts() == (0, 0)
