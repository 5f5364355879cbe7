"""Direct-message conversations across three complete nodes over real HTTP and signatures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import signed_headers
from live_nodes import LiveNode, eventually, remote_post, start_node

from xnode.accounts.models import Account
from xnode.activitypub.delivery import DELIVERY
from xnode.activitypub.endpoints import KEYRING
from xnode.activitypub.urls import PUBLIC
from xnode.dms.service import DirectMessages
from xnode.errors import Forbidden, NotFound
from xnode.web.state import CLOCK, DB, EVENTS, POSTS, RELATIONSHIPS, SEARCH, SETTINGS, TIMELINES


def dms_of(node: LiveNode) -> DirectMessages:
    return DirectMessages(node[DB], node[SETTINGS], node[CLOCK], node[EVENTS], node[POSTS])


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[tuple[LiveNode, LiveNode, LiveNode]]:
    started = [await start_node(tmp_path, name) for name in ("a", "b", "c")]
    yield started[0], started[1], started[2]
    for node in reversed(started):
        await node.server.close()


async def sent_payload(node: LiveNode, activity_id: str) -> dict[str, Any]:
    row = await node[DB].fetchone(
        "SELECT payload FROM deliveries WHERE activity_id = ?", (activity_id,)
    )
    assert row is not None, f"nothing queued for {activity_id}"
    return json.loads(row[0])


async def conversation_of(node: LiveNode, uri: str) -> int:
    row = await eventually(lambda: remote_post(node, uri))
    assert row["conversation_id"] is not None
    return int(row["conversation_id"])


async def test_one_to_one_request_reply_reactions_read_and_delete(three):
    a, b, _ = three
    alice, bob = await a.user("alice"), await b.user("bob")
    dms_a, dms_b = dms_of(a), dms_of(b)

    # alice writes to bob@B by handle (WebFinger), from a conversation.
    first = await dms_a.start(alice, f"@bob@{b.domain}", "hello bob")
    activity = await sent_payload(a, f"{first.uri}/activity")
    note = activity["object"]
    assert activity["type"] == "Create" and note["type"] == "Note"
    bob_uri = f"http://{b.domain}/users/bob"
    assert activity["to"] == [bob_uri] and activity.get("cc", []) == []
    assert note["to"] == [bob_uri] and PUBLIC not in json.dumps(activity)
    assert {"type": "Mention", "href": bob_uri} in [
        {k: t[k] for k in ("type", "href")} for t in note["tag"]
    ]
    assert note["context"] == note["conversation"]

    # On B it is a request for bob (he does not follow alice), unread.
    conversation_b = await conversation_of(b, first.uri)
    assert [c.id for c in await dms_b.conversations(bob.id, "request")] == [conversation_b]
    assert await dms_b.unread_in(bob.id, conversation_b) == 1

    # bob answers from his side: it lands in alice's conversation, with the same context.
    reply = await dms_b.send(bob, conversation_b, "hi alice", reply_to_id=None)
    conversation_a = await conversation_of(a, reply.uri)
    assert conversation_a == first.conversation_id
    reply_note = (await sent_payload(b, f"{reply.uri}/activity"))["object"]
    assert reply_note["context"] == note["context"]
    assert [c.state for c in await dms_b.conversations(bob.id)] == ["accepted"]

    # Reactions travel as EmojiReact / Undo both ways.
    first_on_b = await remote_post(b, first.uri)
    await dms_b.react(bob, first_on_b["id"], "👍")

    async def reacted_on_a() -> bool:
        message = await dms_a.message(alice.id, first.id)
        return message is not None and [r.emoji for r in message.reactions] == ["👍"]

    await eventually(reacted_on_a)
    await dms_b.react(bob, first_on_b["id"], "👍", on=False)

    async def unreacted_on_a() -> bool:
        message = await dms_a.message(alice.id, first.id)
        return message is not None and message.reactions == ()

    await eventually(unreacted_on_a)
    reply_on_a = await remote_post(a, reply.uri)
    await dms_a.react(alice, reply_on_a["id"], "❤️")

    async def reacted_on_b() -> bool:
        message = await dms_b.message(bob.id, reply.id)
        return message is not None and [r.emoji for r in message.reactions] == ["❤️"]

    await eventually(reacted_on_b)

    # Read markers are per node and per member.
    assert await dms_a.unread_in(alice.id, conversation_a) == 1
    await dms_a.mark_read(alice.id, conversation_a)
    assert await dms_a.unread_in(alice.id, conversation_a) == 0

    # Deleting a message removes it for everyone.
    await dms_a.delete(alice.id, first.id)

    async def gone_on_b() -> bool:
        row = await remote_post(b, first.uri)
        return row["deleted_at"] is not None

    await eventually(gone_on_b)
    page = await dms_b.page(bob.id, conversation_b)
    assert [m.is_deleted for m in page.messages] == [True, False]


async def test_group_conversation_across_three_nodes(three):
    a, b, c = three
    alice, carol = await a.user("alice"), await a.user("carol")
    bob, dave = await b.user("bob"), await c.user("dave")
    dms_a, dms_b, dms_c = dms_of(a), dms_of(b), dms_of(c)

    started = await dms_a.start(alice, f"@carol @bob@{b.domain} dave@{c.domain}", "hi all")
    conversation_b = await conversation_of(b, started.uri)
    conversation_c = await conversation_of(c, started.uri)
    # Every node knows every participant, including the ones on the third node.
    names_b = sorted(a.acct for a in await dms_b.participants(bob.id, conversation_b))
    assert names_b == sorted([f"alice@{a.domain}", f"carol@{a.domain}", f"dave@{c.domain}"])
    assert await dms_a.unread_in(carol.id, started.conversation_id) == 1

    # dave answers from C: bob on B and alice and carol on A get it in the same conversation.
    answer = await dms_c.send(dave, conversation_c, "hello from C")
    assert await conversation_of(b, answer.uri) == conversation_b
    assert await conversation_of(a, answer.uri) == started.conversation_id
    for member in (alice, carol):
        assert (await a[POSTS].view(member.id, (await remote_post(a, answer.uri))["id"]))

    # carol answers locally on A: no HTTP to herself, but B and C receive it.
    local = await dms_a.send(carol, started.conversation_id, "carol here")
    assert await conversation_of(b, local.uri) == conversation_b
    assert await conversation_of(c, local.uri) == conversation_c


async def test_policies_blocks_and_outsiders_across_nodes(three):
    a, b, _ = three
    alice = await a.user("alice")
    bob, eve = await b.user("bob"), await b.user("eve")
    dms_a, dms_b = dms_of(a), dms_of(b)

    # bob accepts messages from nobody: alice's node cannot know, so the message
    # arrives on B but is never shown to bob.
    await dms_b.set_policy(bob.id, "nobody")
    refused = await dms_a.start(alice, f"@bob@{b.domain}", "let me in")
    row = await eventually(lambda: remote_post(b, refused.uri))
    with pytest.raises(NotFound):
        await b[POSTS].view(bob.id, row["id"])
    assert await dms_b.conversations(bob.id) == []
    assert await dms_b.conversations(bob.id, "request") == []
    assert await dms_b.unread_summary(bob.id) == (0, 0)

    # eve allows everyone; a third person on B and on A cannot see her conversation.
    secret = await dms_a.start(alice, f"@eve@{b.domain}", "secretword for eve")
    secret_on_b = await eventually(lambda: remote_post(b, secret.uri))
    assert (await b[POSTS].view(eve.id, secret_on_b["id"])).post.uri == secret.uri
    carl = await a.user("carl")
    for node, viewer, post_id in ((b, bob, secret_on_b["id"]), (a, carl, secret.id)):
        with pytest.raises(NotFound):
            await node[POSTS].view(viewer.id, post_id)
        assert (await node[SEARCH].search(viewer.id, "secretword")).posts == []
        assert (await node[TIMELINES].federated(viewer.id)).items == []
    conversation_b = secret_on_b["conversation_id"]
    with pytest.raises(NotFound):
        await dms_b.page(bob.id, conversation_b)

    # A signed fetch of the DM: the addressee's key gets it, another person's does not.
    async def fetch_as(account: Account) -> int:
        key = (await b[KEYRING].for_account(account)).rsa
        headers = signed_headers("GET", secret.uri, None, key)
        async with aiohttp.ClientSession() as session, session.get(
            secret.uri, headers=headers
        ) as response:
            return response.status

    assert await fetch_as(eve) == 200
    assert await fetch_as(bob) in (403, 404)

    # eve blocks alice: alice's node learns it (Block) and refuses to send.
    alice_on_b = await b.remote(f"alice@{a.domain}")
    await b[RELATIONSHIPS].block(eve.id, alice_on_b.id)
    eve_on_a = await a.remote(f"eve@{b.domain}")

    async def block_known() -> bool:
        return (await a[RELATIONSHIPS].relationship(alice.id, eve_on_a.id)).blocked_by

    await eventually(block_known)
    with pytest.raises(Forbidden):
        await dms_a.send(alice, secret.conversation_id, "still there?")
    # A new conversation including eve is refused before anything is stored.
    with pytest.raises(Forbidden):
        await dms_a.start(alice, f"@eve@{b.domain} @bob@{b.domain}", "group with eve")
    assert await a[DB].fetchvalue(
        "SELECT COUNT(*) FROM posts WHERE source = 'group with eve'"
    ) == 0


async def test_chat_message_from_pleroma_joins_the_conversation(three):
    a, b, _ = three
    alice, bob = await a.user("alice"), await b.user("bob")
    dms_a = dms_of(a)
    bob_on_a = await a.remote(f"bob@{b.domain}")
    await a[RELATIONSHIPS].follow(alice.id, bob_on_a.id)

    async def following() -> bool:
        return (await a[RELATIONSHIPS].relationship(alice.id, bob_on_a.id)).following

    await eventually(following)  # so the chat lands in alice's inbox, not in Requests
    alice_on_b = await b.remote(f"alice@{a.domain}")

    # A Pleroma-style ChatMessage: addressed in ``to`` only, no Mention tag, no context.
    base = f"http://{b.domain}/users/bob"
    chat = {
        "@context": ["https://www.w3.org/ns/activitystreams",
                     "https://litepub.social/litepub/context.jsonld"],
        "id": f"{base}/chat/1/activity", "type": "Create", "actor": base,
        "to": [alice_on_b.uri],
        "object": {
            "id": f"{base}/chat/1", "type": "ChatMessage", "attributedTo": base,
            "to": [alice_on_b.uri], "content": "chat hello",
            "published": "2026-11-25T10:00:00Z",
        },
    }  # fmt: skip
    await b[DELIVERY].enqueue(chat, bob, [alice_on_b])
    conversation = await conversation_of(a, f"{base}/chat/1")
    [summary] = await dms_a.conversations(alice.id)
    assert summary.id == conversation and summary.unread == 1
    # alice's answer goes back as a direct Note to bob.
    answer = await dms_a.send(alice, conversation, "hi from the chat")
    assert (await sent_payload(a, f"{answer.uri}/activity"))["to"] == [base]
    assert await eventually(lambda: remote_post(b, answer.uri))
