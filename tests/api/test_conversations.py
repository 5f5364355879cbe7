"""Direct conversations through the client API: list, pages, read, remove, privacy."""

from __future__ import annotations

from conftest import create_user

from api.conftest import in_thread, mastodon_for, token_for
from xnode.api.conversations import conversation_entities
from xnode.web.state import DMS, RELATIONSHIPS


async def _people(app):
    return [await create_user(app, n) for n in ("alice", "bob", "carol", "dave")]


async def test_mastodon_py_lists_reads_and_pages(client, app, api_as):
    alice, bob, carol, _dave = await _people(app)
    await app[RELATIONSHIPS].follow(alice.id, bob.id)  # bob lands in alice's inbox
    with_bob = await app[DMS].start(bob.account, "@alice", "hi alice")
    with_carol = await app[DMS].start(carol.account, "@alice", "a stranger writes")  # request
    group = await app[DMS].start(alice.account, "@bob @dave", "all of us")
    masto = await mastodon_for(client, await token_for(app, alice, "read write"))
    listed = await in_thread(masto.conversations)
    assert [str(c.id) for c in listed] == [
        str(group.conversation_id), str(with_carol.conversation_id),
        str(with_bob.conversation_id)]  # fmt: skip
    first = listed[2]
    assert first.unread is True and [a.acct for a in first.accounts] == ["bob"]
    assert str(first.last_status.id) == str(with_bob.id)
    assert first.last_status.visibility == "direct"
    assert sorted(a.acct for a in listed[0].accounts) == ["bob", "dave"]
    assert listed[0].unread is False  # alice wrote the last message herself
    read = await in_thread(masto.conversations_read, first.id)
    assert read.unread is False and str(read.id) == str(first.id)
    # Pages of two, then back.
    page = await in_thread(masto.conversations, limit=2)
    rest = await in_thread(masto.fetch_next, page)
    assert [str(c.id) for c in [*page, *rest]] == [str(c.id) for c in listed]
    back = await in_thread(masto.fetch_previous, rest)
    assert [str(c.id) for c in back] == [str(c.id) for c in page]
    # A newer message moves the conversation to the top and makes it unread.
    reply = await app[DMS].send(bob.account, with_bob.conversation_id, "still there?")
    top = (await in_thread(masto.conversations))[0]
    assert str(top.id) == str(with_bob.conversation_id) and top.unread is True
    assert str(top.last_status.id) == str(reply.id)
    # Removing takes it off alice's list only.
    api = await api_as(alice, "read write")
    assert await api.delete(f"/api/v1/conversations/{with_carol.conversation_id}") == {}
    assert str(with_carol.conversation_id) not in [
        c["id"] for c in await api.get("/api/v1/conversations")]
    await api.delete(f"/api/v1/conversations/{with_carol.conversation_id}", expect=404)
    await api.post(f"/api/v1/conversations/{with_carol.conversation_id}/read", expect=404)
    carols = await (await api_as(carol, "read")).get("/api/v1/conversations")
    assert [c["id"] for c in carols] == [str(with_carol.conversation_id)]
    # Removing is not declining: carol can still write, and her next message brings the
    # conversation back to alice's list (as in Mastodon).
    again = await app[DMS].send(carol.account, with_carol.conversation_id, "me again")
    back_again = {c["id"]: c for c in await api.get("/api/v1/conversations")}
    assert back_again[str(with_carol.conversation_id)]["last_status"]["id"] == str(again.id)


async def test_only_members_see_a_conversation(client, app, api_as):
    alice, bob, carol, _ = await _people(app)
    sent = await app[DMS].start(bob.account, "@alice", "just for alice")
    conversation = sent.conversation_id
    carol_api = await api_as(carol, "read write")
    assert await carol_api.get("/api/v1/conversations") == []
    await carol_api.post(f"/api/v1/conversations/{conversation}/read", expect=404)
    await carol_api.delete(f"/api/v1/conversations/{conversation}", expect=404)
    assert len(await (await api_as(alice, "read")).get("/api/v1/conversations")) == 1
    # The streaming helper's entities: members only, from ids or summaries.
    assert await conversation_entities(app, carol.id, [conversation]) == []
    [entity] = await conversation_entities(app, alice.id, [conversation])
    assert entity["id"] == str(conversation) and entity["unread"] is True
    assert [a["acct"] for a in entity["accounts"]] == ["bob"]
    assert entity["last_status"]["id"] == str(sent.id)
    # Scopes: reading needs read:statuses, reading it up and removing write:conversations.
    await (await api_as(alice, "read:notifications")).get("/api/v1/conversations", expect=403)
    readonly = await api_as(alice, "read:statuses")
    await readonly.get("/api/v1/conversations")
    await readonly.post(f"/api/v1/conversations/{conversation}/read", expect=403)
    writer = await api_as(alice, "write:conversations")
    assert (await writer.post(f"/api/v1/conversations/{conversation}/read"))["unread"] is False
    # Read for good, not just in that answer.
    assert (await conversation_entities(app, alice.id, [conversation]))[0]["unread"] is False
    await (await api_as(None, token=False)).get("/api/v1/conversations", expect=401)


async def test_a_deleted_last_message_shows_the_one_before(client, app, api_as):
    alice, bob, carol, _ = await _people(app)
    first = await app[DMS].start(bob.account, "@alice", "first")
    second = await app[DMS].send(bob.account, first.conversation_id, "oops")
    await app[DMS].delete(bob.id, second.id)
    [entity] = await (await api_as(alice, "read")).get("/api/v1/conversations")
    assert entity["last_status"]["id"] == str(first.id)
    # Several in one page, each falling back to its own newest live message; one whose
    # only message is gone has no last status left to show.
    other = await app[DMS].start(carol.account, "@alice", "hello")
    await app[DMS].send(carol.account, other.conversation_id, "oops too")
    gone = await app[DMS].start(carol.account, "@alice @bob", "soon gone")
    newest = await app[DMS].send(carol.account, other.conversation_id, "and again")
    await app[DMS].delete(carol.id, newest.id)
    await app[DMS].delete(carol.id, gone.id)
    listed = await conversation_entities(
        app, alice.id, [first.conversation_id, other.conversation_id, gone.conversation_id]
    )
    shown = {c["id"]: (c["last_status"] or {}).get("content") for c in listed}
    assert shown == {
        str(first.conversation_id): "<p>first</p>",
        str(other.conversation_id): "<p>oops too</p>",
        str(gone.conversation_id): None,
    }


async def test_bad_ids_and_limits(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read write")
    # A path id that cannot be ours names nothing (404, as on Mastodon and every other
    # endpoint here); a malformed query parameter is a validation error (422).
    await api.post("/api/v1/conversations/abc/read", expect=404)
    await api.delete("/api/v1/conversations/99999999999999999999", expect=404)
    await api.post("/api/v1/conversations/12345/read", expect=404)
    await api.delete("/api/v1/conversations/12345", expect=404)
    await api.get("/api/v1/conversations?max_id=x", expect=422)
    await api.get("/api/v1/conversations?limit=-5")
    assert await api.get("/api/v1/conversations?limit=99999") == []


async def test_a_direct_status_posted_through_the_api_starts_a_conversation(client, app):
    alice, bob, _, _ = await _people(app)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    alice_app = await mastodon_for(client, await token_for(app, alice, "read write"))
    bob_app = await mastodon_for(client, await token_for(app, bob, "read write"))
    sent = await in_thread(alice_app.status_post, "@bob zqx a private word", visibility="direct")
    [conversation] = await in_thread(bob_app.conversations)
    assert str(conversation.last_status.id) == str(sent.id) and conversation.unread is True
    assert [a.acct for a in conversation.accounts] == ["alice"]
    # Bob answers from his app, in the same conversation; alice sees it unread.
    answer = await in_thread(bob_app.status_post, "@alice zqx back", visibility="direct",
                             in_reply_to_id=conversation.last_status.id)  # fmt: skip
    [mine] = await in_thread(alice_app.conversations)
    assert str(mine.id) == str(conversation.id) and mine.unread is True
    assert str(mine.last_status.id) == str(answer.id)
