"""The outbox: what local people do becomes the right activity, queued for the right inboxes.

No HTTP here: the services publish events, the outbox queues deliveries, and
the tests read the queued rows (inbox and payload).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_signing import Node, local_account, open_node, remote_account

from federation.http import FetchSettings
from xnode.accounts.models import Account
from xnode.accounts.relationships import RelationshipService
from xnode.activitypub.delivery import DeliveryQueue
from xnode.activitypub.endpoints import KEYRING
from xnode.activitypub.inbox import INBOX
from xnode.activitypub.outbox import MAX_EXPANSION_ATTEMPTS, Outbox
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import PUBLIC
from xnode.events import EventBus, Liked, PostPublished
from xnode.ids import new_id
from xnode.media import MediaStore
from xnode.posts.service import Draft, PostService
from xnode.web.state import EVENTS, POSTS, RELATIONSHIPS

BOB_SHARED = "https://one.test/inbox"
DAVE_INBOX = "https://two.test/users/dave/inbox"
EVE_INBOX = "https://three.test/users/eve/inbox"
FOLLOWER_INBOXES = {BOB_SHARED, DAVE_INBOX}


@dataclass
class World:
    """alice (local) with remote followers bob and carol (one shared inbox) and dave,
    a local follower lisa, a pending follower frank, and eve, who does not follow."""

    node: Node
    posts: PostService
    relationships: RelationshipService
    outbox: Outbox
    events: EventBus
    alice: Account
    lisa: Account
    bob: Account
    carol: Account
    dave: Account
    eve: Account
    frank: Account


async def follow(node: Node, follower: Account, target: Account, state: str = "accepted",
                 uri: str | None = None) -> int:
    """A follow row, as either side would have stored it."""
    follow_id = new_id()
    await node.db.execute(
        "INSERT INTO follows (id, account_id, target_account_id, uri, state, created_at)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (follow_id, follower.id, target.id, uri, state),
    )
    return follow_id


async def remote_post(node: Node, author: Account, visibility: str = "public") -> int:
    """A post received from another server."""
    post_id = new_id()
    await node.db.execute(
        "INSERT INTO posts (id, account_id, uri, url, content_html, visibility, local, created_at)"
        " VALUES (?, ?, ?, ?, '<p>hi</p>', ?, 0, 0)",
        (post_id, author.id, f"{author.uri}/statuses/{post_id}",
         f"{author.uri}/statuses/{post_id}", visibility),
    )
    return post_id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The cast, with the outbox subscribed to the services' events."""
    async with open_node(tmp_path) as node:
        events = EventBus()
        posts = PostService(node.db, node.settings, node.clock, events,
                            MediaStore(node.settings.media_dir))
        queue = DeliveryQueue(
            node.db, node.settings, node.clock, node.signer, FetchSettings(),
            _no_local, rng=random.Random(1),
        )
        outbox = Outbox(node.db, node.settings, node.serializer, node.keys, posts, queue)
        outbox.subscribe(events)
        alice, lisa = await local_account(node, "alice"), await local_account(node, "lisa")
        bob = await remote_account(node.db, "bob", "one.test", shared_inbox=BOB_SHARED)
        carol = await remote_account(node.db, "carol", "one.test", shared_inbox=BOB_SHARED)
        dave = await remote_account(node.db, "dave", "two.test", inbox=DAVE_INBOX)
        eve = await remote_account(node.db, "eve", "three.test", inbox=EVE_INBOX)
        frank = await remote_account(node.db, "frank", "four.test")
        for follower in (bob, carol, dave, lisa):
            await follow(node, follower, alice)
        await follow(node, frank, alice, "pending")
        yield World(node, posts, RelationshipService(node.db, node.clock, events), outbox,
                    events, alice, lisa, bob, carol, dave, eve, frank)
        await queue.close()


async def _no_local(activity: dict[str, Any], sender: Account) -> None:
    raise AssertionError("the outbox passes remote recipients only")


async def queued(world: World, kind: str | None = None) -> dict[str, dict[str, Any]]:
    """Queued deliveries as {inbox: activity}, optionally of one activity type only."""
    rows = await world.node.db.fetchall("SELECT inbox_url, payload FROM deliveries ORDER BY id")
    found = {row[0]: json.loads(row[1]) for row in rows}
    return {inbox: a for inbox, a in found.items() if kind is None or a["type"] == kind}


async def clear(world: World) -> None:
    """Forget queued rows, so the next step's rows stand alone."""
    await world.node.db.execute("DELETE FROM deliveries")


# --- posts ---------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "unlisted", "followers"])
async def test_posts_go_to_remote_followers(world: World, visibility: str):
    post = await world.posts.publish(world.alice, Draft("hello", visibility=visibility))
    sent = await queued(world)
    assert set(sent) == FOLLOWER_INBOXES  # bob and carol share one inbox; frank is pending
    create = sent[BOB_SHARED]
    assert create["type"] == "Create" and create["object"]["id"] == post.uri
    assert (PUBLIC in create["to"]) == (visibility == "public")
    assert (PUBLIC in create["cc"]) == (visibility == "unlisted")
    rows = await world.node.db.fetchall("SELECT post_id FROM deliveries")
    assert {row[0] for row in rows} == {post.id}


async def test_mentioned_accounts_are_added(world: World):
    await world.posts.publish(world.alice, Draft("hi @eve@three.test"))
    assert set(await queued(world)) == FOLLOWER_INBOXES | {EVE_INBOX}


async def test_direct_posts_go_to_the_mentioned_only(world: World):
    await world.posts.publish(world.alice, Draft("psst @eve@three.test", visibility="direct"))
    sent = await queued(world)
    assert set(sent) == {EVE_INBOX}
    assert sent[EVE_INBOX]["to"] == [world.eve.uri] and sent[EVE_INBOX]["cc"] == []


async def test_replies_reach_the_remote_parent_author(world: World):
    parent = await remote_post(world.node, world.eve)
    await world.posts.publish(world.alice, Draft("agreed", in_reply_to_id=parent))
    sent = await queued(world)
    assert set(sent) == FOLLOWER_INBOXES | {EVE_INBOX}
    assert sent[EVE_INBOX]["object"]["inReplyTo"] == f"{world.eve.uri}/statuses/{parent}"


async def test_nothing_is_queued_without_remote_audience(world: World):
    await world.posts.publish(world.lisa, Draft("only locals follow me"))
    assert await queued(world) == {}


async def test_edits_go_to_the_same_audience(world: World):
    post = await world.posts.publish(world.alice, Draft("hi @eve@three.test"))
    await clear(world)
    await world.posts.edit(world.alice.id, post.id, source="hi again @eve@three.test",
                           summary="", sensitive=False)
    sent = await queued(world)
    assert set(sent) == FOLLOWER_INBOXES | {EVE_INBOX}
    assert {a["type"] for a in sent.values()} == {"Update"}
    assert "hi again" in sent[DAVE_INBOX]["object"]["content"]


async def test_deletes_reach_everyone_who_got_the_post(world: World):
    post = await world.posts.publish(world.alice, Draft("oops @eve@three.test"))
    # dave unfollows afterwards: he still has the post and must drop it.
    await world.node.db.execute("DELETE FROM follows WHERE account_id = ?", (world.dave.id,))
    await world.posts.delete(world.alice.id, post.id)
    sent = await queued(world, "Delete")
    assert set(sent) == FOLLOWER_INBOXES | {EVE_INBOX}
    delete = sent[EVE_INBOX]
    assert delete["object"] == {"id": post.uri, "type": "Tombstone"}
    assert delete["to"] == [PUBLIC] and world.eve.uri in delete["cc"]


async def test_deleting_a_direct_post_tells_only_the_mentioned(world: World):
    post = await world.posts.publish(world.alice, Draft("@eve@three.test psst",
                                                         visibility="direct"))
    await world.posts.delete(world.alice.id, post.id)
    assert set(await queued(world, "Delete")) == {EVE_INBOX}


# --- boosts and likes --------------------------------------------------------------------


async def test_boost_and_unboost_of_a_remote_post(world: World):
    original = await remote_post(world.node, world.eve)
    await world.posts.boost(world.alice, original)
    sent = await queued(world, "Announce")
    assert set(sent) == FOLLOWER_INBOXES | {EVE_INBOX}
    announce = sent[EVE_INBOX]
    assert announce["object"] == f"{world.eve.uri}/statuses/{original}"
    await world.posts.boost(world.alice, original, on=False)
    undo = (await queued(world, "Undo"))[EVE_INBOX]
    assert undo["object"]["type"] == "Announce" and undo["object"]["id"] == announce["id"]
    assert set(await queued(world, "Undo")) == FOLLOWER_INBOXES | {EVE_INBOX}


async def test_like_and_unlike_go_to_the_author(world: World):
    post = await remote_post(world.node, world.eve)
    await world.posts.like(world.alice.id, post)
    likes = await queued(world, "Like")
    assert set(likes) == {EVE_INBOX}
    like = likes[EVE_INBOX]
    assert like["actor"] == world.node.urls.actor("alice")
    assert like["object"] == f"{world.eve.uri}/statuses/{post}"
    await world.posts.like(world.alice.id, post, on=False)
    undo = (await queued(world, "Undo"))[EVE_INBOX]
    assert {k: v for k, v in undo["object"].items() if k != "@context"} == {
        k: v for k, v in like.items() if k != "@context"
    }


async def test_likes_of_local_posts_stay_home(world: World):
    post = await world.posts.publish(world.lisa, Draft("local"))
    await world.posts.like(world.alice.id, post.id)
    assert await queued(world, "Like") == {}


async def test_remote_origin_events_are_ignored(world: World):
    mine = await world.posts.publish(world.alice, Draft("hello"))
    await clear(world)
    theirs = await remote_post(world.node, world.eve)
    # The incoming side publishes these for what remote people did.
    await world.events.publish(Liked(world.eve.id, mine.id))
    await world.events.publish(PostPublished(theirs, world.eve.id))
    assert await queued(world) == {}


# --- follows and blocks --------------------------------------------------------------------


async def test_follow_and_unfollow_a_remote_account(world: World):
    await world.relationships.follow(world.alice.id, world.eve.id)
    row = await world.node.db.fetchone(
        "SELECT id FROM follows WHERE account_id = ? AND target_account_id = ?",
        (world.alice.id, world.eve.id),
    )
    assert row is not None
    sent = await queued(world, "Follow")
    assert set(sent) == {EVE_INBOX}
    follow_activity = sent[EVE_INBOX]
    assert follow_activity["id"] == world.node.urls.follow(row["id"])
    assert follow_activity["object"] == world.eve.uri
    await world.relationships.unfollow(world.alice.id, world.eve.id)
    undo = (await queued(world, "Undo"))[EVE_INBOX]
    assert undo["object"]["type"] == "Follow" and undo["object"]["id"] == follow_activity["id"]


async def test_approving_a_remote_request_sends_accept_with_their_follow_id(world: World):
    their_follow = "https://three.test/follows/abc"
    await follow(world.node, world.eve, world.alice, "pending", uri=their_follow)
    await world.relationships.accept_request(world.alice.id, world.eve.id)
    accept = (await queued(world, "Accept"))[EVE_INBOX]
    assert accept["actor"] == world.node.urls.actor("alice")
    assert accept["object"] == {
        "id": their_follow, "type": "Follow", "actor": world.eve.uri,
        "object": world.node.urls.actor("alice"),
    }


async def test_rejecting_a_remote_request_sends_reject(world: World):
    await follow(world.node, world.eve, world.alice, "pending", uri="https://three.test/f/1")
    await world.relationships.reject_request(world.alice.id, world.eve.id)
    reject = (await queued(world, "Reject"))[EVE_INBOX]
    assert reject["object"]["type"] == "Follow"
    assert reject["object"]["actor"] == world.eve.uri
    assert reject["object"]["object"] == world.node.urls.actor("alice")


async def test_block_and_unblock_a_remote_account(world: World):
    await world.relationships.follow(world.alice.id, world.dave.id)
    await clear(world)
    await world.relationships.block(world.alice.id, world.dave.id)
    # One inbox: the Undo{Follow} (block ends the follow) and the Block share it.
    rows = await world.node.db.fetchall("SELECT payload FROM deliveries WHERE inbox_url = ?",
                                        (DAVE_INBOX,))
    types = sorted(json.loads(r[0])["type"] for r in rows)
    assert types == ["Block", "Undo"]
    block = next(json.loads(r[0]) for r in rows if json.loads(r[0])["type"] == "Block")
    assert block["object"] == world.dave.uri
    await clear(world)
    await world.relationships.unblock(world.alice.id, world.dave.id)
    # The queued Block was cleared above, so the Undo embeds a rebuilt one for the same target.
    undo = (await queued(world, "Undo"))[DAVE_INBOX]
    assert undo["object"]["type"] == "Block" and undo["object"]["object"] == world.dave.uri


async def test_unblock_embeds_the_block_that_was_sent(world: World):
    await world.relationships.block(world.alice.id, world.eve.id)
    block = (await queued(world, "Block"))[EVE_INBOX]
    await world.relationships.unblock(world.alice.id, world.eve.id)
    undo = (await queued(world, "Undo"))[EVE_INBOX]
    assert undo["object"]["id"] == block["id"]


# --- the account ------------------------------------------------------------------------


async def test_profile_update_goes_to_followers(world: World):
    await world.outbox.profile_updated(world.alice)
    sent = await queued(world, "Update")
    assert set(sent) == FOLLOWER_INBOXES
    person = sent[DAVE_INBOX]["object"]
    assert person["type"] == "Person" and person["id"] == world.node.urls.actor("alice")
    assert person["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")


async def test_account_deletion_reaches_followers_and_every_inbox_used(world: World):
    await world.posts.publish(world.alice, Draft("hi @eve@three.test", visibility="direct"))
    await world.outbox.account_deleted(world.alice)
    sent = await queued(world, "Delete")
    assert set(sent) == FOLLOWER_INBOXES | {EVE_INBOX}
    assert sent[EVE_INBOX]["object"] == world.node.urls.actor("alice")


# --- the transactional outbox ------------------------------------------------------------


async def entries(world: World) -> list[tuple[str, str, int]]:
    """(event, state, attempts) of the outbox table's entries."""
    rows = await world.node.db.fetchall("SELECT event, state, attempts FROM outbox ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


async def test_a_change_keeps_its_event_in_its_own_transaction(world: World):
    """What a crash between the commit and the queueing leaves: the entry, then the rows."""
    silent = EventBus()  # kept like the node's bus, but nobody drains it: a crash after commit
    silent.keep(PostPublished)
    posts = PostService(world.node.db, world.node.settings, world.node.clock, silent,
                        MediaStore(world.node.settings.media_dir))  # fmt: skip
    post = await posts.publish(world.alice, Draft("committed, then the process died"))
    assert await queued(world) == {}
    assert await entries(world) == [("PostPublished", "pending", 0)]
    assert await world.outbox.drain() == 1  # what the sweep does after the restart
    assert set(await queued(world, "Create")) == FOLLOWER_INBOXES
    assert (await queued(world, "Create"))[DAVE_INBOX]["object"]["id"] == post.uri
    assert await entries(world) == []


async def test_a_change_that_fails_keeps_nothing_and_publishes_nothing(world: World):
    published: list[object] = []

    async def record(event: object) -> None:
        published.append(event)

    world.events.subscribe(PostPublished, record)
    with pytest.raises(RuntimeError):
        async with world.events.change(world.node.db) as change:
            change.emit(PostPublished(new_id(), world.alice.id))
            raise RuntimeError("the change failed")
    assert await entries(world) == []
    assert published == []


async def test_an_entry_becomes_rows_once_whoever_drains_it(world: World):
    """Two outboxes (two processes, or a sweep racing a publish) claim each entry once."""
    other = Outbox(world.node.db, world.node.settings, world.node.serializer, world.node.keys,
                   world.posts, world.outbox.delivery)  # fmt: skip
    silent = EventBus()
    silent.keep(PostPublished)
    posts = PostService(world.node.db, world.node.settings, world.node.clock, silent,
                        MediaStore(world.node.settings.media_dir))  # fmt: skip
    for n in range(5):
        await posts.publish(world.alice, Draft(f"post {n}"))
    drained = await asyncio.gather(world.outbox.drain(), other.drain(), world.outbox.drain())
    assert sum(drained) == 5  # each entry claimed by one drain only
    rows = await world.node.db.fetchall("SELECT activity_id, inbox_url FROM deliveries")
    assert len(rows) == 5 * len(FOLLOWER_INBOXES)
    assert len(set(rows)) == len(rows)
    assert await entries(world) == []


async def test_an_entry_that_cannot_be_expanded_is_retried_then_kept_as_failed(world: World):
    await world.node.db.execute(
        "INSERT INTO outbox (id, event, fields, next_attempt_at, created_at)"
        " VALUES (?, 'PostPublished', '{\"post_id\": \"not a number\"}', 0, 0)",
        (new_id(),),
    )
    assert await world.outbox.drain() == 0
    assert await entries(world) == [("PostPublished", "pending", 1)]
    await world.outbox.drain()
    assert await entries(world) == [("PostPublished", "pending", 1)]  # not before its pause
    for _ in range(MAX_EXPANSION_ATTEMPTS):
        world.node.clock.advance(7 * 24 * 3600)
        await world.outbox.drain()
    assert await entries(world) == [("PostPublished", "failed", MAX_EXPANSION_ATTEMPTS)]
    assert await queued(world) == {}


# --- two real nodes ----------------------------------------------------------------------


def wire_outgoing(node: Any) -> DeliveryQueue:
    """Plug the outgoing side into a running node of the incoming side's fixtures.

    Replies the inbox handlers send (Accept) go through the same queue.
    """
    app = node.app
    queue = DeliveryQueue(
        node.db, node.settings, node.clock, Signer(node.db, app[KEYRING], node.clock),
        FetchSettings(allow_private_addresses=True, timeout_s=5), app[INBOX].handle,
        rng=random.Random(3),
    )
    Outbox(node.db, node.settings, node.serializer, app[KEYRING], app[POSTS], queue).subscribe(
        app[EVENTS]
    )
    node.deliver = queue.enqueue
    return queue


async def delivery_states(node: Any) -> list[tuple[str, str, int | None]]:
    """(activity type, state, last status) of a node's deliveries."""
    rows = await node.db.fetchall("SELECT payload, state, last_status FROM deliveries ORDER BY id")
    return [(json.loads(r[0])["type"], r[1], r[2]) for r in rows]


async def test_two_nodes_follow_post_and_delete(node_a, node_b):
    queue_a, queue_b = wire_outgoing(node_a), wire_outgoing(node_b)
    try:
        alice, bob = await node_a.user("alice"), await node_b.user("bob")
        alice_on_b = await node_b.resolver.actor(node_a.actor("alice"))

        # bob@B follows alice@A: Follow goes out, A accepts, the Accept comes back.
        await node_b.app[RELATIONSHIPS].follow(bob.id, alice_on_b.id)
        assert await queue_b.run_due() == 1
        assert await node_a.process() == 1
        assert await queue_a.run_due() == 1
        assert await node_b.process() == 1
        assert await delivery_states(node_b) == [("Follow", "delivered", 202)]
        assert await delivery_states(node_a) == [("Accept", "delivered", 202)]
        state = await node_b.db.fetchvalue(
            "SELECT state FROM follows WHERE account_id = ?", (bob.id,)
        )
        assert state == "accepted"

        # alice posts: B receives and stores it; then she deletes it, and B drops it.
        post = await node_a.app[POSTS].publish(alice, Draft("hello from A"))
        assert await queue_a.run_due() == 1
        assert await node_b.process() == 1
        content = await node_b.db.fetchvalue(
            "SELECT content_html FROM posts WHERE uri = ?", (post.uri,)
        )
        assert "hello from A" in content
        await node_a.app[POSTS].delete(alice.id, post.id)
        assert await queue_a.run_due() == 1
        assert await node_b.process() == 1
        deleted = await node_b.db.fetchvalue(
            "SELECT deleted_at FROM posts WHERE uri = ?", (post.uri,)
        )
        assert deleted is not None
        assert (await delivery_states(node_a))[1:] == [
            ("Create", "delivered", 202), ("Delete", "delivered", 202),
        ]
    finally:
        await queue_a.close()
        await queue_b.close()
