"""One domain path for interactions: a reply, like, boost, block, post deletion or account deletion
leaves the same stored state on a node whether it was made there (the service call a page
or an app makes) or arrived from another server.

Each test plays one interaction twice on node A, against the same kind of rows: once by
carol, a local user, once by bob of node B, a second complete node whose activities
travel signed over real HTTP (tests/live_nodes.py). What A then stores about the posts and
people involved (counters, likes, boosts, reactions, bookmarks, notifications, follows,
blocks, account stats), with the actor's id written as "X", must be equal: a path that
forgets a counter or a notification, or cleans up more on one side, fails here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from live_nodes import LiveNode, eventually, follow_across, nodes

from federation.signatures import sign_request
from xnode.accounts.models import Account
from xnode.activitypub.endpoints import KEYRING, RESOLVER, SERIALIZER
from xnode.ids import new_id
from xnode.posts.models import Post
from xnode.posts.service import Draft
from xnode.store import posts as post_store
from xnode.web.state import ACCOUNTS, DB, POSTS, RELATIONSHIPS

__all__ = ["nodes"]  # the fixture, imported for pytest


async def state(node: LiveNode, actor_id: int, alice: Account, posts: dict[str, int]) -> Any:
    """What ``node`` stores about ``posts`` (name -> id), alice and the actor, ids written
    as names: the actor "X", alice "alice", the posts by their names. Notifications are
    alice's and those about the posts (only local people get notifications)."""
    names: dict[int, str] = {actor_id: "X", alice.id: "alice"}
    names.update({post_id: name for name, post_id in posts.items()})
    ids = list(posts.values())
    marks = ", ".join("?" for _ in ids) or "NULL"
    db = node[DB]

    async def rows(sql: str, params: list[Any], named: int) -> list[tuple[Any, ...]]:
        """The rows, their first ``named`` columns (ids) written as names."""
        found = await db.fetchall(sql, params)
        return sorted((
            tuple(
                names.get(v, "someone else") if k < named and v is not None else v
                for k, v in enumerate(row)
            )
            for row in found
        ), key=repr)

    async def stats(account_id: int) -> tuple[int, int, int]:
        row = await db.fetchone(
            "SELECT followers_count, following_count, statuses_count FROM account_stats"
            " WHERE account_id = ?", (account_id,),
        )  # fmt: skip
        return (0, 0, 0) if row is None else (row[0], row[1], row[2])

    pair = [alice.id, actor_id] * 2
    return {
        "posts": await rows(
            "SELECT id, likes_count, reblogs_count, replies_count, deleted_at IS NOT NULL"
            f" FROM posts WHERE id IN ({marks})", ids, 1,
        ),
        "likes": await rows(
            f"SELECT account_id, post_id FROM likes WHERE post_id IN ({marks})", ids, 2
        ),
        "boosts": await rows(
            "SELECT account_id, reblog_of_id, visibility FROM posts"
            f" WHERE reblog_of_id IN ({marks})", ids, 2,
        ),
        "reactions": await rows(
            f"SELECT account_id, post_id, emoji FROM reactions WHERE post_id IN ({marks})",
            ids, 2,
        ),
        "bookmarks": await rows(
            f"SELECT account_id, post_id FROM bookmarks WHERE post_id IN ({marks})", ids, 2
        ),
        "notifications": await rows(
            "SELECT from_account_id, post_id, account_id, type FROM notifications"
            f" WHERE account_id = ? OR post_id IN ({marks})", [alice.id, *ids], 3,
        ),
        "follows": await rows(
            "SELECT account_id, target_account_id, state FROM follows"
            " WHERE account_id IN (?, ?) OR target_account_id IN (?, ?)", pair, 2,
        ),
        "blocks": await rows(
            "SELECT account_id, target_account_id FROM blocks"
            " WHERE account_id IN (?, ?) OR target_account_id IN (?, ?)", pair, 2,
        ),
        "stats": {"alice": await stats(alice.id), "X": await stats(actor_id)},
    }


async def settled(a: LiveNode, b: LiveNode) -> bool:
    """Whether every delivery between the two nodes went out and A handled its inbox."""
    for node in (a, b):
        pending = await node[DB].fetchvalue(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE state = 'pending')"
            " + (SELECT COUNT(*) FROM inbox_queue WHERE state = 'pending')"
        )
        if pending:
            return False
    return True


async def wait_settled(a: LiveNode, b: LiveNode) -> None:
    await eventually(lambda: settled(a, b))


async def send_signed(b: LiveNode, sender: Account, a: LiveNode, activity: dict[str, Any]) -> None:
    """POST ``activity`` to A's shared inbox, signed by ``sender``'s key on B."""
    key = (await b[KEYRING].for_account(sender)).rsa
    body = json.dumps(activity).encode()
    url = f"http://{a.domain}/inbox"
    headers = {"Content-Type": "application/activity+json"}
    headers.update(sign_request("POST", url, headers, body, key.key_id, key.private_key,
                                now=time.time()))  # fmt: skip
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body, headers=headers
    ) as response:
        assert response.status == 202, await response.text()


async def copy_on(node: LiveNode, post: Post) -> Post:
    """``post`` as ``node`` stores it (fetched from its server if needed)."""
    assert post.uri is not None
    found = await node[RESOLVER].note(post.uri)
    assert found is not None
    return found


async def value(node: LiveNode, sql: str, *params: Any) -> Any:
    return await node[DB].fetchvalue(sql, params)


async def people(
    nodes: tuple[LiveNode, LiveNode],
) -> tuple[Account, Account, Account, Account, Account]:
    """On A: alice (whom carol acts on) and dora (whom bob of B acts on: a fresh account,
    so that her counts start where alice's did); carol; bob on B, and bob as A knows him."""
    a, b = nodes
    alice, dora, carol = await a.user("alice"), await a.user("dora"), await a.user("carol")
    bob = await b.user("bob")
    return alice, dora, carol, bob, await a.remote(f"bob@{b.domain}")


async def test_like_and_unlike_leave_the_same_state(nodes):
    a, b = nodes
    alice, dora, carol, bob, bob_on_a = await people(nodes)
    post = await a[POSTS].publish(alice, Draft("like me"))
    await a[POSTS].like(carol.id, post.id)
    liked = await state(a, carol.id, alice, {"post": post.id})
    await a[POSTS].like(carol.id, post.id, on=False)
    unliked = await state(a, carol.id, alice, {"post": post.id})
    assert liked["posts"] == [("post", 1, 0, 0, 0)]
    assert liked["likes"] == [("X", "post")]
    assert liked["notifications"] == [("X", "post", "alice", "like")]
    assert unliked["posts"] == [("post", 0, 0, 0, 0)]
    assert unliked["likes"] == unliked["notifications"] == []

    post = await a[POSTS].publish(dora, Draft("like me"))
    copy = await copy_on(b, post)
    await b[POSTS].like(bob.id, copy.id)
    await eventually(lambda: value(a, "SELECT likes_count FROM posts WHERE id = ?", post.id))
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {"post": post.id}) == liked
    await b[POSTS].like(bob.id, copy.id, on=False)
    await eventually(lambda: value(
        a, "SELECT likes_count = 0 FROM posts WHERE id = ?", post.id))  # fmt: skip
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {"post": post.id}) == unliked


async def test_boost_and_unboost_leave_the_same_state(nodes):
    a, b = nodes
    alice, dora, carol, bob, bob_on_a = await people(nodes)
    post = await a[POSTS].publish(alice, Draft("boost me"))
    await a[POSTS].boost(carol, post.id)
    boosted = await state(a, carol.id, alice, {"post": post.id})
    await a[POSTS].boost(carol, post.id, on=False)
    unboosted = await state(a, carol.id, alice, {"post": post.id})
    assert boosted["posts"] == [("post", 0, 1, 0, 0)]
    assert boosted["boosts"] == [("X", "post", "public")]
    assert boosted["notifications"] == [("X", "post", "alice", "boost")]
    assert boosted["stats"] == {"alice": (0, 0, 1), "X": (0, 0, 1)}
    assert unboosted["posts"] == [("post", 0, 0, 0, 0)]
    assert unboosted["boosts"] == unboosted["notifications"] == []

    post = await a[POSTS].publish(dora, Draft("boost me"))
    copy = await copy_on(b, post)
    await b[POSTS].boost(bob, copy.id)
    await eventually(lambda: value(a, "SELECT reblogs_count FROM posts WHERE id = ?", post.id))
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {"post": post.id}) == boosted
    await b[POSTS].boost(bob, copy.id, on=False)
    await eventually(lambda: value(
        a, "SELECT reblogs_count = 0 FROM posts WHERE id = ?", post.id))  # fmt: skip
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {"post": post.id}) == unboosted


async def test_a_block_ends_follows_the_same_way(nodes):
    a, b = nodes
    alice, dora, carol, bob, bob_on_a = await people(nodes)
    relationships = a[RELATIONSHIPS]
    await relationships.follow(carol.id, alice.id)
    await relationships.follow(alice.id, carol.id)
    before = await state(a, carol.id, alice, {})
    await relationships.block(carol.id, alice.id)
    blocked = await state(a, carol.id, alice, {})
    assert before["stats"] == {"alice": (1, 1, 0), "X": (1, 1, 0)}
    assert before["follows"] == [("X", "alice", "accepted"), ("alice", "X", "accepted")]
    assert before["notifications"] == [("X", None, "alice", "follow")]
    assert blocked["blocks"] == [("X", "alice")]
    assert blocked["follows"] == blocked["notifications"] == []
    assert blocked["stats"] == {"alice": (0, 0, 0), "X": (0, 0, 0)}

    dora_on_b = await follow_across(b, bob, a, "dora")
    await follow_across(a, dora, b, "bob")
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {}) == before
    # Only the Block, signed by bob's key on B: B's own block would also send Undo{Follow}
    # and Reject for the two follows, which would end them on A whatever the Block did.
    await send_signed(b, bob, a, b[SERIALIZER].block(bob, new_id(), dora_on_b))
    await eventually(lambda: value(a, "SELECT COUNT(*) FROM blocks WHERE account_id = ?",
                                   bob_on_a.id))  # fmt: skip
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, {}) == blocked


async def _interact_with(a: LiveNode, alice: Account, reply_id: int) -> None:
    """alice likes, bookmarks and boosts the reply, and reacts to it (the row an emoji
    reaction from anywhere makes)."""
    await a[POSTS].like(alice.id, reply_id)
    await a[POSTS].bookmark(alice.id, reply_id)
    await a[POSTS].boost(alice, reply_id)
    async with a[DB].transaction() as conn:
        await post_store.insert_reaction(conn, new_id(), alice.id, reply_id, "🎉", None, 0.0)


async def test_deleting_a_post_cleans_up_the_same_way(nodes):
    a, b = nodes
    alice, dora, carol, bob, bob_on_a = await people(nodes)
    question = await a[POSTS].publish(alice, Draft("a question"))
    answer = await a[POSTS].publish(carol, Draft("@alice an answer", in_reply_to_id=question.id))
    names = {"question": question.id, "answer": answer.id}
    created = await state(a, carol.id, alice, names)
    assert created["posts"] == [("answer", 0, 0, 0, 0), ("question", 0, 0, 1, 0)]
    assert created["notifications"] == [("X", "answer", "alice", "reply")]
    assert created["stats"] == {"alice": (0, 0, 1), "X": (0, 0, 1)}
    await _interact_with(a, alice, answer.id)
    before = await state(a, carol.id, alice, names)
    await a[POSTS].delete(carol.id, answer.id)
    deleted = await state(a, carol.id, alice, names)
    assert before["posts"] == [("answer", 1, 1, 0, 0), ("question", 0, 0, 1, 0)]
    assert before["reactions"] == [("alice", "answer", "🎉")]
    assert before["bookmarks"] == [("alice", "answer")]
    assert ("X", "answer", "alice", "reply") in before["notifications"]
    assert deleted["posts"] == [("answer", 1, 1, 0, 1), ("question", 0, 0, 0, 0)]
    assert deleted["likes"] == deleted["boosts"] == deleted["reactions"] == []
    assert deleted["bookmarks"] == deleted["notifications"] == []

    question = await a[POSTS].publish(dora, Draft("a question"))
    copy = await copy_on(b, question)
    reply = await b[POSTS].publish(
        bob, Draft(f"@dora@{a.domain} an answer", in_reply_to_id=copy.id)
    )
    assert reply.uri is not None
    answer = await eventually(lambda: post_store.post_by_uri(a[DB], reply.uri))
    await wait_settled(a, b)
    names = {"question": question.id, "answer": answer.id}
    # A reply that mentions: the replies count, the notification and the counts alike.
    assert await state(a, bob_on_a.id, dora, names) == created
    await _interact_with(a, dora, answer.id)
    await wait_settled(a, b)
    remote_before = await state(a, bob_on_a.id, dora, names)
    for kind in ("posts", "likes", "boosts", "reactions", "bookmarks"):
        assert remote_before[kind] == before[kind], kind
    await b[POSTS].delete(bob.id, reply.id)
    await eventually(lambda: value(
        a, "SELECT deleted_at IS NOT NULL FROM posts WHERE id = ?", answer.id))  # fmt: skip
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, names) == deleted


async def test_deleting_an_account_cleans_up_the_same_way(nodes):
    a, b = nodes
    alice, dora, carol, bob, bob_on_a = await people(nodes)
    hello = await a[POSTS].publish(alice, Draft("hello"))
    await a[RELATIONSHIPS].follow(carol.id, alice.id)
    await a[POSTS].like(carol.id, hello.id)
    await a[POSTS].boost(carol, hello.id)
    reply = await a[POSTS].publish(carol, Draft("@alice hi", in_reply_to_id=hello.id))
    await a[POSTS].like(alice.id, reply.id)
    names = {"hello": hello.id, "reply": reply.id}
    before = await state(a, carol.id, alice, names)
    await a[ACCOUNTS].delete_user(carol.id)
    gone = await state(a, carol.id, alice, names)
    assert before["posts"] == [("hello", 1, 1, 1, 0), ("reply", 1, 0, 0, 0)]
    assert before["stats"] == {"alice": (1, 0, 1), "X": (0, 1, 2)}
    assert sorted(row[3] for row in before["notifications"]) == [
        "boost", "follow", "like", "like", "reply",  # alice's, and carol's for her liked reply
    ]
    assert gone["posts"][0] == ("hello", 0, 0, 0, 0) and gone["posts"][1][-1] == 1
    assert gone["likes"] == gone["boosts"] == gone["follows"] == gone["notifications"] == []
    assert gone["stats"] == {"alice": (0, 0, 1), "X": (0, 0, 0)}

    hello = await a[POSTS].publish(dora, Draft("hello"))
    copy = await copy_on(b, hello)
    await follow_across(b, bob, a, "dora")
    await b[POSTS].like(bob.id, copy.id)
    await b[POSTS].boost(bob, copy.id)
    published = await b[POSTS].publish(bob, Draft(f"@dora@{a.domain} hi", in_reply_to_id=copy.id))
    assert published.uri is not None
    reply = await eventually(lambda: post_store.post_by_uri(a[DB], published.uri))
    await a[POSTS].like(dora.id, reply.id)
    await wait_settled(a, b)
    names = {"hello": hello.id, "reply": reply.id}
    remote_before = await state(a, bob_on_a.id, dora, names)
    for kind in ("posts", "likes", "boosts", "follows", "stats"):
        assert remote_before[kind] == before[kind], kind
    await b[ACCOUNTS].delete_user(bob.id)
    await eventually(lambda: value(
        a, "SELECT deleted_at IS NOT NULL FROM accounts WHERE id = ?", bob_on_a.id))  # fmt: skip
    await wait_settled(a, b)
    assert await state(a, bob_on_a.id, dora, names) == gone
