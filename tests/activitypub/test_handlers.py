"""What each activity type does to the database, delivered signed from a second real node."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Node, activity, create, follow_accepted, note, post_activity

from xnode.accounts.models import Account
from xnode.activitypub.urls import PUBLIC
from xnode.events import FollowChanged
from xnode.posts.service import Draft
from xnode.store import posts as post_store
from xnode.web.state import DMS, EVENTS, POSTS, RELATIONSHIPS


@pytest.fixture
async def alice(node_a: Node) -> Account:
    """alice, a local user of node a."""
    return await node_a.user("alice")


@pytest.fixture
async def bob(node_a: Node, node_b: Node) -> Account:
    """bob of node b, as node a knows him."""
    await node_b.user("bob")
    return await node_a.resolver.actor(node_b.actor("bob"))


async def receive(node_a: Node, node_b: Node, doc: dict[str, Any], username: str = "bob") -> dict:
    """Deliver ``doc`` signed by ``username``@b to node a, process it, return its queue row."""
    account = await node_b.resolver.known_account(node_b.actor(username))
    assert account is not None
    response = await post_activity(node_a, doc, await node_b.key(account))
    assert response.status == 202, await response.text()
    await node_a.process()
    row = await node_a.db.fetchone("SELECT * FROM inbox_queue ORDER BY id DESC LIMIT 1")
    assert row["state"] == "done", row["last_error"]
    return dict(row)


def refused(row: dict) -> bool:
    return (row["last_error"] or "").startswith("refused:")


async def notifications(node: Node, account: Account) -> list[tuple[str, int]]:
    rows = await node.db.fetchall(
        "SELECT type, from_account_id FROM notifications WHERE account_id = ? ORDER BY id",
        (account.id,),
    )
    return [(row[0], row[1]) for row in rows]


async def follow_state(node: Node, follower: Account, target: Account) -> str | None:
    return await node.db.fetchvalue(
        "SELECT state FROM follows WHERE account_id = ? AND target_account_id = ?",
        (follower.id, target.id),
    )


# --- follows --------------------------------------------------------------------------------


async def test_follow_is_accepted_and_answered(node_a, node_b, alice, bob):
    follow = activity("Follow", bob.uri, node_a.actor("alice"))
    await receive(node_a, node_b, follow)
    row = await node_a.db.fetchone("SELECT * FROM follows WHERE account_id = ?", (bob.id,))
    assert row["state"] == "accepted" and row["uri"] == follow["id"]
    assert await notifications(node_a, alice) == [("follow", bob.id)]
    (sent,) = node_a.sent
    assert sent.activity["type"] == "Accept" and sent.sender.id == alice.id
    assert sent.activity["object"]["id"] == follow["id"]
    assert [r.id for r in sent.recipients] == [bob.id]


async def test_follow_of_a_locked_account_waits_for_approval(node_a, node_b, bob):
    alice = await node_a.user("carla", locked=1)
    await receive(node_a, node_b, activity("Follow", bob.uri, node_a.actor("carla")))
    assert await follow_state(node_a, bob, alice) == "pending"
    assert await notifications(node_a, alice) == [("follow_request", bob.id)]
    assert node_a.sent == []
    await node_a.app[RELATIONSHIPS].accept_request(alice.id, bob.id)
    assert await follow_state(node_a, bob, alice) == "accepted"


async def test_follow_from_a_blocked_account_is_rejected(node_a, node_b, alice, bob):
    await node_a.app[RELATIONSHIPS].block(alice.id, bob.id)
    await receive(node_a, node_b, activity("Follow", bob.uri, node_a.actor("alice")))
    assert await follow_state(node_a, bob, alice) is None
    assert [s.activity["type"] for s in node_a.sent] == ["Reject"]


async def test_undo_follow_embedded_or_by_id(node_a, node_b, alice, bob):
    follow = activity("Follow", bob.uri, node_a.actor("alice"))
    await receive(node_a, node_b, follow)
    await receive(node_a, node_b, activity("Undo", bob.uri, follow))
    assert await follow_state(node_a, bob, alice) is None
    assert await notifications(node_a, alice) == []
    again = activity("Follow", bob.uri, node_a.actor("alice"))
    await receive(node_a, node_b, again)
    await receive(node_a, node_b, activity("Undo", bob.uri, again["id"]))
    assert await follow_state(node_a, bob, alice) is None


async def test_two_nodes_follow_and_accept_over_http(node_a, node_b, alice):
    """bob@b follows alice@a; a's Accept travels back signed and b records it."""
    bob_b = await node_b.user("bob")
    alice_on_b = await node_b.resolver.actor(node_a.actor("alice"))
    await node_b.app[RELATIONSHIPS].follow(bob_b.id, alice_on_b.id)
    await node_b.db.execute("UPDATE follows SET state = 'pending'")
    follow_id = await node_b.db.fetchvalue("SELECT id FROM follows")
    follow = node_b.serializer.follow(bob_b, follow_id, alice_on_b)
    node_a.deliver_for_real = True
    response = await post_activity(node_a, follow, await node_b.key(bob_b))
    assert response.status == 202
    await node_a.process()
    assert await node_b.process() == 1
    assert await node_b.db.fetchvalue("SELECT state FROM follows") == "accepted"


async def test_accept_and_reject_of_our_follows(node_a, node_b, alice, bob):
    seen: list[FollowChanged] = []

    async def record(event: FollowChanged) -> None:
        seen.append(event)

    node_a.app[EVENTS].subscribe(FollowChanged, record)
    await follow_accepted(node_a.app, alice.id, bob.id)
    await node_a.db.execute("UPDATE follows SET state = 'pending'")
    follow_id = await node_a.db.fetchvalue("SELECT id FROM follows")
    ours = node_a.serializer.follow(alice, follow_id, bob)
    # An Accept from someone else does not count.
    await node_b.user("mallory")
    mallory = await node_a.resolver.actor(node_b.actor("mallory"))
    row = await receive(node_a, node_b, activity("Accept", mallory.uri, ours), "mallory")
    assert refused(row) and await follow_state(node_a, alice, bob) == "pending"
    await receive(node_a, node_b, activity("Accept", bob.uri, ours["id"]))
    assert await follow_state(node_a, alice, bob) == "accepted"
    await receive(node_a, node_b, activity("Reject", bob.uri, {**ours, "id": None}))
    assert await follow_state(node_a, alice, bob) is None
    assert [(e.follower_id, e.state) for e in seen[-2:]] == [(alice.id, "accepted"),
                                                             (alice.id, "rejected")]  # fmt: skip


# --- posts ------------------------------------------------------------------------------------


async def test_create_from_a_followed_account_is_stored(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    doc = note(bob.uri, "<p>hi <img src=x onerror=alert(1)></p>")
    await receive(node_a, node_b, create(doc))
    post = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (doc["id"],))
    assert post["account_id"] == bob.id and post["visibility"] == "public" and not post["local"]
    assert "onerror" not in post["content_html"] and "<img" not in post["content_html"]


async def test_create_nobody_here_cares_about_is_ignored(node_a, node_b, alice, bob):
    doc = note(bob.uri)
    row = await receive(node_a, node_b, create(doc))
    assert not refused(row)
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts WHERE uri = ?", (doc["id"],)) == 0


async def test_direct_message_reaches_only_its_addressee(node_a, node_b, alice, bob):
    carol = await node_a.user("carol")
    doc = note(bob.uri, "<p>psst</p>", to=[node_a.actor("alice")], cc=[],
               tag=[{"type": "Mention", "href": node_a.actor("alice")}])  # fmt: skip
    await receive(node_a, node_b, create(doc))
    row = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (doc["id"],))
    assert row["visibility"] == "direct"
    post = await post_store.get_post(node_a.db, row["id"])
    posts = node_a.app[POSTS]
    assert await posts.hydrate(alice.id, [post]) and not await posts.hydrate(carol.id, [post])
    assert await notifications(node_a, alice) == [("mention", bob.id)]
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts_fts") == 0


async def test_a_dm_without_context_gets_one_that_our_answers_keep(node_a, node_b, alice, bob):
    """A remote message with no context opens a conversation with an id of ours; alice's
    answers carry it and answer bob's message, so his server threads them (issue 15)."""
    doc = note(bob.uri, "<p>no context here</p>", to=[node_a.actor("alice")], cc=[],
               tag=[{"type": "Mention", "href": node_a.actor("alice")}])  # fmt: skip
    doc.pop("context", None)
    doc.pop("conversation", None)
    await receive(node_a, node_b, create(doc))
    row = await node_a.db.fetchone(
        "SELECT p.conversation_id, c.uri FROM posts p JOIN conversations c"
        " ON c.id = p.conversation_id WHERE p.uri = ?", (doc["id"],),
    )
    assert row["uri"] == f"{node_a.base}/contexts/{row['conversation_id']}"
    dms = node_a.app[DMS]
    for text in ("first answer", "second answer"):
        await dms.send(alice, row["conversation_id"], text)
    sent = [json.loads(r[0]) for r in await node_a.db.fetchall(
        "SELECT payload FROM deliveries WHERE payload LIKE '%answer%' ORDER BY id")]  # fmt: skip
    notes = [a["object"] for a in sent]
    assert [n["context"] for n in notes] == [row["uri"], row["uri"]]
    assert notes[0]["inReplyTo"] == doc["id"]
    assert notes[1]["inReplyTo"] == notes[0]["id"]


async def test_chat_message_is_a_direct_note(node_a, node_b, alice, bob):
    doc = note(bob.uri, "<p>chat</p>", to=[node_a.actor("alice")], cc=[], type="ChatMessage")
    await receive(node_a, node_b, create(doc))
    row = await node_a.db.fetchone("SELECT visibility FROM posts WHERE uri = ?", (doc["id"],))
    assert row["visibility"] == "direct"


async def test_create_of_someone_elses_note_is_refused(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    forged = note(node_b.actor("carol"), to=[node_a.actor("alice")])
    row = await receive(node_a, node_b, activity("Create", bob.uri, forged))
    assert refused(row)
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts") == 0


async def test_question_is_stored_read_only_and_votes_ignored(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    question = note(bob.uri, "<p>Tea or coffee?</p>", type="Question", oneOf=[
        {"type": "Note", "name": "Tea", "replies": {"type": "Collection", "totalItems": 3}},
        {"type": "Note", "name": "Coffee"},
    ])  # fmt: skip
    await receive(node_a, node_b, create(question))
    row = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (question["id"],))
    assert row["kind"] == "question" and "Tea (3)" in row["content_html"]
    vote = note(bob.uri, "", name="Tea", inReplyTo=question["id"], to=[node_a.actor("alice")])
    await receive(node_a, node_b, create(vote))
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts") == 1


async def test_update_edits_a_post_and_refreshes_profiles(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    doc = note(bob.uri, "<p>v1</p>")
    await receive(node_a, node_b, create(doc))
    await receive(node_a, node_b, activity("Update", bob.uri, {**doc, "content": "<p>v2</p>"}))
    row = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (doc["id"],))
    assert row["content_html"] == "<p>v2</p>" and row["edited_at"]
    assert [e.content_html for e in await post_store.list_edits(node_a.db, row["id"])] == [
        "<p>v1</p>"
    ]
    person = json.loads(await (await node_b.client.get(
        "/users/bob", headers={"Accept": "application/activity+json"})).text())  # fmt: skip
    person["name"] = "Bobby"
    await receive(node_a, node_b, activity("Update", bob.uri, person))
    assert (await node_a.resolver.actor(bob.uri)).display_name == "Bobby"
    row = await receive(node_a, node_b, activity("Update", bob.uri, {**person, "id": alice.uri}))
    assert refused(row)


async def test_delete_of_a_post_and_of_an_actor(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    await node_a.app[RELATIONSHIPS].follow(bob.id, alice.id)
    first, second = note(bob.uri), note(bob.uri)
    await receive(node_a, node_b, create(first))
    await receive(node_a, node_b, create(second))
    await node_b.user("carol")
    row = await receive(node_a, node_b, activity("Delete", node_b.actor("carol"), first["id"]),
                        "carol")  # fmt: skip
    assert refused(row)
    tombstone = {"id": first["id"], "type": "Tombstone"}
    await receive(node_a, node_b, activity("Delete", bob.uri, tombstone))
    deleted = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (first["id"],))
    assert deleted["deleted_at"] and deleted["content_html"] == ""
    await receive(node_a, node_b, activity("Delete", bob.uri, bob.uri, to=[PUBLIC]))
    gone = await node_a.resolver.known_account(bob.uri)
    assert gone is not None and gone.is_deleted
    assert await node_a.db.fetchvalue(
        "SELECT COUNT(*) FROM posts WHERE account_id = ? AND deleted_at IS NULL", (bob.id,)
    ) == 0
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM follows") == 0


async def test_like_reaction_and_their_undo(node_a, node_b, alice, bob):
    post = await node_a.app[POSTS].publish(alice, Draft(source="like me"))
    like = activity("Like", bob.uri, post.uri)
    await receive(node_a, node_b, like)
    assert (await post_store.get_post(node_a.db, post.id)).likes_count == 1
    assert await notifications(node_a, alice) == [("like", bob.id)]
    await receive(node_a, node_b, activity("Undo", bob.uri, like))
    assert (await post_store.get_post(node_a.db, post.id)).likes_count == 0
    assert await notifications(node_a, alice) == []
    react = activity("Like", bob.uri, post.uri, content="🍮", _misskey_reaction="🍮")
    await receive(node_a, node_b, react)
    assert (await post_store.get_post(node_a.db, post.id)).likes_count == 0
    assert await node_a.db.fetchvalue("SELECT emoji FROM reactions") == "🍮"
    await receive(node_a, node_b, activity("Undo", bob.uri, react["id"]))
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM reactions") == 0


async def test_emoji_react(node_a, node_b, alice, bob):
    post = await node_a.app[POSTS].publish(alice, Draft(source="react"))
    react = activity("EmojiReact", bob.uri, post.uri, content="🔥")
    await receive(node_a, node_b, react)
    assert await node_a.db.fetchvalue("SELECT emoji FROM reactions") == "🔥"
    await receive(node_a, node_b, activity("Undo", bob.uri, react))
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM reactions") == 0


async def test_interactions_with_posts_one_cannot_see_are_refused(node_a, node_b, alice, bob):
    secret = await node_a.app[POSTS].publish(alice, Draft(source="s", visibility="followers"))
    for kind in ("Like", "Announce"):
        row = await receive(node_a, node_b, activity(kind, bob.uri, secret.uri, to=[PUBLIC]))
        assert refused(row), kind
    await node_a.app[RELATIONSHIPS].follow(bob.id, alice.id)
    row = await receive(node_a, node_b, activity("Announce", bob.uri, secret.uri, to=[PUBLIC]))
    assert refused(row)  # followers-only posts are never boostable
    await receive(node_a, node_b, activity("Like", bob.uri, secret.uri))
    assert (await post_store.get_post(node_a.db, secret.id)).likes_count == 1


async def test_announce_and_undo(node_a, node_b, alice, bob):
    post = await node_a.app[POSTS].publish(alice, Draft(source="boost me"))
    announce = activity("Announce", bob.uri, post.uri, to=[PUBLIC], cc=[bob.followers_url])
    await receive(node_a, node_b, announce)
    boost = await node_a.db.fetchone("SELECT * FROM posts WHERE reblog_of_id = ?", (post.id,))
    assert boost["account_id"] == bob.id and boost["uri"] == announce["id"]
    assert boost["visibility"] == "public"
    assert (await post_store.get_post(node_a.db, post.id)).reblogs_count == 1
    assert await notifications(node_a, alice) == [("boost", bob.id)]
    await receive(node_a, node_b, announce)  # a second delivery changes nothing
    await receive(node_a, node_b, activity("Undo", bob.uri, announce))
    assert (await post_store.get_post(node_a.db, post.id)).reblogs_count == 0
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts WHERE reblog_of_id = ?",
                                      (post.id,)) == 0  # fmt: skip


async def test_announce_of_a_remote_post_fetches_it_from_its_server(
    node_a, node_b, make_node, alice, bob
):
    node_c = await make_node("c")
    carol_c = await node_c.user("carol")
    original = await node_c.app[POSTS].publish(carol_c, Draft(source="carol's words"))
    await follow_accepted(node_a.app, alice.id, bob.id)
    # Mastodon embeds other servers' posts in boosts: bob's server cannot vouch for carol's.
    fake = {"id": original.uri, "type": "Note", "attributedTo": node_c.actor("carol"),
            "content": "<p>words carol never wrote</p>", "to": [PUBLIC]}  # fmt: skip
    await receive(node_a, node_b, activity("Announce", bob.uri, fake, to=[PUBLIC]))
    stored = await node_a.db.fetchone("SELECT * FROM posts WHERE uri = ?", (original.uri,))
    assert "carol's words" in stored["content_html"]
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts WHERE reblog_of_id = ?",
                                      (stored["id"],)) == 1  # fmt: skip


# --- accounts -----------------------------------------------------------------------------------


async def test_block_ends_follows_quietly(node_a, node_b, alice, bob):
    await follow_accepted(node_a.app, alice.id, bob.id)
    await node_a.app[RELATIONSHIPS].follow(bob.id, alice.id)
    block = activity("Block", bob.uri, node_a.actor("alice"))
    await receive(node_a, node_b, block)
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM follows") == 0
    row = await node_a.db.fetchone("SELECT * FROM blocks")
    assert (row["account_id"], row["target_account_id"], row["uri"]) == (bob.id, alice.id,
                                                                          block["id"])  # fmt: skip
    # The ended follow takes its notification, as an unfollow does; nothing tells of the block.
    assert await notifications(node_a, alice) == []
    await receive(node_a, node_b, activity("Undo", bob.uri, block))
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM blocks") == 0


async def test_move_moves_local_followers(node_a, node_b, alice, bob):
    bob2_b = await node_b.user("bob2")
    await node_b.db.execute("UPDATE accounts SET also_known_as = ? WHERE id = ?",
                            (json.dumps([bob.uri]), bob2_b.id))  # fmt: skip
    await follow_accepted(node_a.app, alice.id, bob.id)
    seen: list[FollowChanged] = []

    async def record(event: FollowChanged) -> None:
        seen.append(event)

    node_a.app[EVENTS].subscribe(FollowChanged, record)
    await node_b.user("eve")
    liar = node_b.actor("eve")  # does not name bob in alsoKnownAs
    row = await receive(node_a, node_b, activity("Move", bob.uri, bob.uri, target=liar))
    assert refused(row)
    await receive(node_a, node_b, activity("Move", bob.uri, bob.uri, target=node_b.actor("bob2")))
    bob2 = await node_a.resolver.actor(node_b.actor("bob2"))
    assert await follow_state(node_a, alice, bob) is None
    assert await follow_state(node_a, alice, bob2) is not None
    assert (await node_a.resolver.known_account(bob.uri)).moved_to_account_id == bob2.id
    # The outbox turns these into Undo{Follow} and Follow; the new follow waits for an Accept.
    assert [(e.target_id, e.state) for e in seen] == [(bob.id, "removed"),
                                                      (bob2.id, "pending")]  # fmt: skip


async def test_flag_files_a_report(node_a, node_b, alice, bob):
    post = await node_a.app[POSTS].publish(alice, Draft(source="rude"))
    flag = activity("Flag", bob.uri, [node_a.actor("alice"), post.uri], content="Spam!")
    await receive(node_a, node_b, flag)
    report = await node_a.db.fetchone("SELECT * FROM reports")
    assert report["reporter_account_id"] == bob.id and report["target_account_id"] == alice.id
    assert json.loads(report["post_ids"]) == [post.id] and report["comment"] == "Spam!"
    row = await receive(node_a, node_b, activity("Flag", bob.uri, ["https://x.example/u"]))
    assert refused(row)


async def test_unknown_types_are_ignored(node_a, node_b, alice, bob):
    row = await receive(node_a, node_b, activity("Dance", bob.uri, node_a.actor("alice")))
    assert row["last_error"] is None
