"""The direct-message rules (no HTTP): placement, requests, policies, blocks, reads, reactions."""

from __future__ import annotations

import pytest
from conftest import create_user

from xnode.dms.service import DirectMessages, check_emoji, parse_handles
from xnode.errors import Forbidden, InvalidInput, NotFound
from xnode.events import ReactionChanged
from xnode.posts.service import Draft
from xnode.web.state import CLOCK, DB, EVENTS, POSTS, RELATIONSHIPS, SETTINGS


@pytest.fixture
async def people(app):
    return [(await create_user(app, name)).account for name in ("alice", "bob", "carol", "dan")]


@pytest.fixture
def dms(app) -> DirectMessages:
    return DirectMessages(app[DB], app[SETTINGS], app[CLOCK], app[EVENTS], app[POSTS])


def test_handles_are_parsed_strictly():
    assert [h.key for h in parse_handles("@bob, carol@other.example  @Bob")] == [
        "bob", "carol@other.example",
    ]
    for bad in ("", "   ", "bob smith!", "@", "http://x.example/@bob", "<b>"):
        with pytest.raises(InvalidInput):
            parse_handles(bad)


def test_reactions_must_be_emoji():
    assert check_emoji(" 👍 ") == "👍"
    for bad in ("", "ok", "<b>", "👍 👍", "🎉" * 20):
        with pytest.raises(InvalidInput):
            check_emoji(bad)


async def test_first_message_from_a_stranger_is_a_request(app, dms, people):
    alice, bob, _, _ = people
    sent = await dms.start(alice, "@bob", "hello bob")
    assert sent.conversation_id is not None and sent.visibility == "direct"
    # The sender sees it in the inbox, the recipient in Requests.
    assert [c.id for c in await dms.conversations(alice.id)] == [sent.conversation_id]
    assert await dms.conversations(bob.id) == []
    [request] = await dms.conversations(bob.id, "request")
    assert request.unread == 1 and [a.username for a in request.participants] == ["alice"]
    assert await dms.unread_summary(bob.id) == (0, 1)
    # Answering accepts it.
    await dms.send(bob, sent.conversation_id, "hi alice")
    assert [c.id for c in await dms.conversations(bob.id)] == [sent.conversation_id]
    assert await dms.unread_summary(alice.id) == (1, 0)


async def test_people_one_follows_land_in_the_inbox(app, dms, people):
    alice, bob, _, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    sent = await dms.start(alice, "bob", "hi")
    [conversation] = await dms.conversations(bob.id)
    assert conversation.id == sent.conversation_id and conversation.state == "accepted"


async def test_messages_to_the_same_people_share_one_conversation(app, dms, people):
    alice, bob, _, _ = people
    one = await dms.start(alice, "@bob", "1")
    two = await dms.start(alice, "@bob", "2")
    group = await dms.start(alice, "@bob @carol", "group")
    assert one.conversation_id == two.conversation_id != group.conversation_id
    # A direct post from the ordinary compose form files into the same conversation.
    post = await app[POSTS].publish(alice, Draft("@bob from compose", visibility="direct"))
    assert post.conversation_id == one.conversation_id
    # Replying to a message keeps its conversation even with another audience.
    reply = await app[POSTS].publish(
        bob, Draft("@alice only", visibility="direct", in_reply_to_id=group.id)
    )
    assert reply.conversation_id == group.conversation_id


async def test_declined_requests_are_hidden_and_accept_moves_them(app, dms, people):
    alice, bob, carol, _ = people
    first = await dms.start(alice, "@bob", "hi")
    await dms.set_state(bob.id, first.conversation_id, "declined")
    assert await dms.conversations(bob.id, "request") == []
    assert await dms.unread_summary(bob.id) == (0, 0)
    second = await dms.start(carol, "@bob", "hi")
    await dms.set_state(bob.id, second.conversation_id, "accepted")
    assert [c.id for c in await dms.conversations(bob.id)] == [second.conversation_id]
    with pytest.raises(InvalidInput):
        await dms.set_state(bob.id, second.conversation_id, "maybe")


async def test_policy_and_blocks_refuse_before_anything_is_stored(app, dms, people):
    alice, bob, carol, _ = people
    count = "SELECT COUNT(*) FROM posts"
    await dms.set_policy(bob.id, "nobody")
    with pytest.raises(Forbidden, match="nobody"):
        await dms.start(alice, "@bob", "hi")
    await dms.set_policy(bob.id, "following")
    with pytest.raises(Forbidden, match="people they follow"):
        await dms.start(alice, "@bob", "hi")
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    assert (await dms.start(alice, "@bob", "hi")).conversation_id is not None
    await app[RELATIONSHIPS].block(carol.id, alice.id)
    with pytest.raises(Forbidden):
        await dms.start(alice, "@carol", "hi")
    with pytest.raises(Forbidden):
        await dms.start(carol, "@alice", "hi")
    assert await app[DB].fetchvalue(count) == 1
    with pytest.raises(InvalidInput):
        await dms.set_policy(bob.id, "friends")


async def test_a_group_member_who_blocks_the_sender_stops_receiving(app, dms, people):
    alice, bob, carol, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    group = await dms.start(alice, "@bob @carol", "hello both")
    await app[RELATIONSHIPS].block(carol.id, alice.id)
    later = await dms.send(alice, group.conversation_id, "only bob now")
    with pytest.raises(NotFound):
        await app[POSTS].view(carol.id, later.id)
    assert (await app[POSTS].view(bob.id, later.id)).post.id == later.id


async def test_unknown_handles_and_limits(app, dms, people):
    alice, _, _, _ = people
    with pytest.raises(InvalidInput, match="Could not find @nobody"):
        await dms.start(alice, "@bob @nobody", "hi")
    with pytest.raises(InvalidInput, match="yourself"):
        await dms.start(alice, "@alice", "hi")
    with pytest.raises(InvalidInput, match="at most 32"):
        await dms.start(alice, " ".join(f"@u{i}" for i in range(40)), "hi")
    with pytest.raises(InvalidInput, match="5,000"):
        await dms.start(alice, "@bob", "x" * 5001)
    assert await app[DB].fetchvalue("SELECT COUNT(*) FROM posts") == 0
    assert await app[DB].fetchvalue("SELECT COUNT(*) FROM conversations") == 0


async def test_outsiders_cannot_read_send_react_or_mark(app, dms, people):
    alice, _, carol, _ = people
    sent = await dms.start(alice, "@bob", "secret")
    conversation = sent.conversation_id
    assert conversation is not None
    for attempt in (
        dms.page(carol.id, conversation),
        dms.send(carol, conversation, "let me in"),
        dms.react(carol, sent.id, "👍"),
        dms.mark_read(carol.id, conversation),
        dms.participants(carol.id, conversation),
        dms.delete(carol.id, sent.id),
    ):
        with pytest.raises(NotFound):
            await attempt
    with pytest.raises(NotFound):
        await app[POSTS].view(carol.id, sent.id)


async def test_read_markers_reactions_replies_and_deletion(app, dms, people):
    alice, bob, _, _ = people
    changes: list[ReactionChanged] = []

    async def record(event: ReactionChanged) -> None:
        changes.append(event)

    app[EVENTS].subscribe(ReactionChanged, record)
    first = await dms.start(alice, "@bob", "one")
    conversation = first.conversation_id
    assert conversation is not None
    second = await dms.send(alice, conversation, "two")
    assert await dms.unread_in(bob.id, conversation) == 2
    await dms.mark_read(bob.id, conversation, up_to_id=first.id)
    assert await dms.unread_in(bob.id, conversation) == 1
    await dms.mark_read(bob.id, conversation)
    assert await dms.unread_in(bob.id, conversation) == 0
    # Markers never move back.
    await dms.mark_read(bob.id, conversation, up_to_id=first.id)
    assert await dms.unread_in(bob.id, conversation) == 0

    reply = await dms.send(bob, conversation, "re: one", reply_to_id=first.id)
    await dms.react(bob, second.id, "🎉")
    await dms.react(alice, second.id, "🎉")
    await dms.react(alice, second.id, "🎉")  # twice is once
    page = await dms.page(alice.id, conversation)
    assert [m.id for m in page.messages] == [first.id, second.id, reply.id]
    by_id = {m.id: m for m in page.messages}
    assert by_id[reply.id].reply_to is not None and by_id[reply.id].reply_to.post.id == first.id
    [party] = by_id[second.id].reactions
    assert (party.emoji, party.count, party.mine) == ("🎉", 2, True)
    await dms.react(alice, second.id, "🎉", on=False)
    [party] = (await dms.message(alice.id, second.id)).reactions
    assert (party.count, party.mine) == (1, False)
    assert [(c.emoji, c.undone) for c in changes] == [("🎉", False), ("🎉", False), ("🎉", True)]

    with pytest.raises(Forbidden):
        await dms.delete(bob.id, first.id)
    await dms.delete(alice.id, first.id)
    page = await dms.page(bob.id, conversation)
    assert [m.is_deleted for m in page.messages] == [True, False, False]
    with pytest.raises(NotFound):
        await dms.react(bob, first.id, "👍")
    with pytest.raises(NotFound):
        await dms.send(bob, conversation, "x", reply_to_id=999)


async def test_history_pages_newest_last(app, dms, people):
    alice, bob, _, _ = people
    first = await dms.start(alice, "@bob", "m0")
    conversation = first.conversation_id
    assert conversation is not None
    for i in range(1, 45):
        await dms.send(alice, conversation, f"m{i}")
    latest = await dms.page(bob.id, conversation)
    assert len(latest.messages) == 40 and latest.older_than is not None
    assert latest.messages[-1].view.post.source == "m44"
    older = await dms.page(bob.id, conversation, before_id=latest.older_than)
    assert [m.view.post.source for m in older.messages] == [f"m{i}" for i in range(5)]
    assert older.older_than is None


async def test_dms_never_reach_timelines_or_search(app, dms, people):
    from xnode.web.state import SEARCH, TIMELINES

    alice, bob, _, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await dms.start(alice, "@bob", "secretword")
    assert (await app[TIMELINES].home(bob.id)).items == []
    assert (await app[TIMELINES].profile(bob.id, alice.id)).items == []
    assert (await app[SEARCH].search(bob.id, "secretword")).posts == []


async def test_deleting_a_message_removes_its_reactions_as_a_remote_delete_does(
    app, dms, people
):
    # A local delete and a Delete from another server take one path
    # (PostService._remove): the reactions go with the message either way.
    alice, bob, _, _ = people
    sent = await dms.start(alice, "@bob", "one")
    await dms.react(bob, sent.id, "🎉")
    assert (await dms.message(alice.id, sent.id)).reactions
    await dms.delete(alice.id, sent.id)
    remaining = await app[DB].fetchvalue(
        "SELECT COUNT(*) FROM reactions WHERE post_id = ?", (sent.id,)
    )
    assert remaining == 0
    [tombstone] = (await dms.page(bob.id, sent.conversation_id)).messages
    assert tombstone.is_deleted and tombstone.reactions == ()
