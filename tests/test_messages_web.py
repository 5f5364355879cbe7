"""Direct messages through the web UI: inbox, requests, conversation, buttons, live socket."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from conftest import create_user, csrf_from, login
from test_media import png_bytes

from xnode.live.hub import LiveHub
from xnode.web.state import DB, DMS, LIVE, RELATIONSHIPS

CONVERSATION_PATH = re.compile(r"^/messages/(\d+)#m(\d+)$")
BUBBLE = re.compile(r'<article class="message[^"]*"\s+id="m(\d+)" data-id="\d+">')
NAV_MESSAGES_BADGE = re.compile(r'class="badge badge-messages" aria-label="(\d+) conversations')
File = tuple[str, bytes, str]


@pytest.fixture
async def people(client, app, aiohttp_client) -> tuple[dict[str, Any], dict[str, Any]]:
    """alice (logged in on ``client``), bob and carol, each logged in with their own client.

    bob and carol follow alice, so her messages land in their inboxes, not in Requests.
    """
    accounts: dict[str, Any] = {}
    clients: dict[str, Any] = {"alice": client}
    for name in ("alice", "bob", "carol"):
        accounts[name] = (await create_user(app, name)).account
        if name != "alice":
            clients[name] = await aiohttp_client(client.server)
        await login(clients[name], name)
    for name in ("bob", "carol"):
        await app[RELATIONSHIPS].follow(accounts[name].id, accounts["alice"].id)
    return accounts, clients


async def submit(
    client, path: str, fields: dict[str, str], files: list[tuple[str, File]] | None = None,
    *, token: str | None = None, token_page: str = "/messages/new", json_reply: bool = False,
) -> aiohttp.ClientResponse:
    """POST a multipart form the way a browser does (CSRF token from ``token_page``)."""
    form = aiohttp.FormData(default_to_multipart=True)
    if token is None:
        token = await csrf_from(client, token_page)
    if token:
        form.add_field("csrf_token", token)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, data, content_type) in files or []:
        form.add_field(name, data, filename=filename, content_type=content_type)
    headers = {"Accept": "application/json"} if json_reply else {}
    return await client.post(path, data=form, allow_redirects=False, headers=headers)


async def start(client, to: str, source: str, **kwargs: Any) -> tuple[int, int]:
    """Send a first message through /messages/new; return (conversation id, message id)."""
    response = await submit(client, "/messages/new", {"to": to, "source": source}, **kwargs)
    assert response.status == 303, await response.text()
    match = CONVERSATION_PATH.match(response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match[1]), int(match[2])


async def send(client, conversation_id: int, source: str, **fields: str) -> int:
    """Send in a conversation through its form; return the message id."""
    path = f"/messages/{conversation_id}"
    response = await submit(client, path, {"source": source, **fields}, token_page="/messages")
    assert response.status == 303, await response.text()
    match = CONVERSATION_PATH.match(response.headers["Location"])
    assert match and int(match[1]) == conversation_id
    return int(match[2])


async def page(client, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    assert response.status == status, (path, response.status)
    return await response.text()


async def count(app, table: str) -> int:
    return await app[DB].fetchvalue(f"SELECT COUNT(*) FROM {table}")


# --- starting, lists, requests --------------------------------------------------------------


async def test_start_by_handle_and_the_recipient_sees_it_unread(app, people):
    _, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqx hello bob")
    assert f'id="m{message}"' in await page(clients["alice"], f"/messages/{conversation}")

    inbox = await page(clients["bob"], "/messages")
    assert f'href="/messages/{conversation}"' in inbox
    assert "zqx hello bob" in inbox
    assert '<span class="badge badge-messages">1<span class="visually-hidden"> unread' in inbox
    assert NAV_MESSAGES_BADGE.search(inbox)[1] == "1"

    view = await page(clients["bob"], f"/messages/{conversation}")
    assert "zqx hello bob" in view
    # Reading the conversation clears its count, on that very page too.
    assert NAV_MESSAGES_BADGE.search(view) is None
    assert 'badge-messages">1' not in await page(clients["bob"], "/messages")
    assert await app[DMS].unread_in(people[0]["bob"].id, conversation) == 0


async def test_several_recipients_and_the_same_people_continue_the_conversation(people):
    _, clients = people
    first, _ = await start(clients["alice"], "bob, @carol", "zqx to both")
    again, _ = await start(clients["alice"], "@carol @bob", "zqx again")
    assert again == first
    for name in ("bob", "carol"):
        body = await page(clients[name], f"/messages/{first}")
        assert "zqx to both" in body and "zqx again" in body


async def test_anonymous_visitors_are_sent_to_log_in(client, people):
    client.session.cookie_jar.clear()  # the fixture logged alice in on `client`
    for path in ("/messages", "/messages/requests", "/messages/new", "/messages/1"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login")


async def test_stranger_lands_in_requests_accept_moves_it(app, people):
    _, clients = people
    # alice does not follow bob: his message waits in her Requests.
    conversation, _ = await start(clients["bob"], "@alice", "zqx may I ask")
    assert f"/messages/{conversation}" not in await page(clients["alice"], "/messages")
    assert "Requests (1)" in await page(clients["alice"], "/messages")
    requests = await page(clients["alice"], "/messages/requests")
    assert f"/messages/{conversation}/accept" in requests and "zqx may I ask" in requests
    view = await page(clients["alice"], f"/messages/{conversation}")
    assert f'action="/messages/{conversation}/accept"' in view

    response = await submit(
        clients["alice"], f"/messages/{conversation}/accept", {}, token_page="/messages"
    )
    assert response.status == 303
    assert f"/messages/{conversation}" in await page(clients["alice"], "/messages")
    assert f"/messages/{conversation}/accept" not in await page(
        clients["alice"], "/messages/requests"
    )


async def test_decline_hides_the_request(people):
    _, clients = people
    conversation, _ = await start(clients["bob"], "@alice", "zqx spam")
    response = await submit(
        clients["alice"], f"/messages/{conversation}/decline", {}, token_page="/messages"
    )
    assert response.status == 303
    assert f"/messages/{conversation}" not in await page(clients["alice"], "/messages/requests")
    assert f"/messages/{conversation}" not in await page(clients["alice"], "/messages")


@pytest.mark.parametrize("policy", ["nobody", "following"])
async def test_dm_policy_refuses_with_403_and_stores_nothing(app, people, policy):
    _, clients = people
    response = await submit(
        clients["alice"], "/settings/messages", {"dm_policy": policy},
        token_page="/settings/account",
    )
    assert response.status == 303
    assert f'value="{policy}" selected' in await page(clients["alice"], "/settings/account")
    before = await count(app, "posts")
    response = await submit(clients["bob"], "/messages/new", {"to": "@alice", "source": "zqx hi"})
    assert response.status == 403
    body = await response.text()
    assert "only accepts messages from" in body and "zqx hi" in body  # the input is kept
    assert await count(app, "posts") == before
    assert await count(app, "conversations") == 0


async def test_block_refuses(app, people):
    accounts, clients = people
    await app[RELATIONSHIPS].block(accounts["alice"].id, accounts["bob"].id)
    response = await submit(clients["bob"], "/messages/new", {"to": "@alice", "source": "zqx x"})
    assert response.status == 403
    assert await count(app, "conversations") == 0


async def test_unknown_handle_is_422_and_keeps_the_input(app, people):
    _, clients = people
    response = await submit(
        clients["alice"], "/messages/new", {"to": "@bob @nobody_here", "source": "zqx kept"}
    )
    assert response.status == 422
    body = await response.text()
    assert "Could not find @nobody_here" in body
    assert 'value="@bob @nobody_here"' in body and "zqx kept" in body
    assert await count(app, "posts") == 0


async def test_oversize_text_is_refused(app, people):
    _, clients = people
    response = await submit(clients["alice"], "/messages/new", {"to": "@bob", "source": "x" * 6000})
    assert response.status == 422
    assert await count(app, "posts") == 0


async def test_non_image_attachment_is_refused(app, people):
    _, clients = people
    files = [("images", ("notes.txt", b"not an image at all", "text/plain"))]
    response = await submit(
        clients["alice"], "/messages/new", {"to": "@bob", "source": "zqx file"}, files
    )
    assert response.status == 422, await response.text()
    assert await count(app, "posts") == 0
    assert await count(app, "media_attachments") == 0


async def test_image_with_alt_text(app, people):
    _, clients = people
    files = [
        ("images", ("", b"", "application/octet-stream")),  # an unchosen first file input
        ("images", ("cat.png", png_bytes((30, 20)), "image/png")),
    ]
    response = await submit(
        clients["alice"], "/messages/new",
        {"to": "@bob", "source": "zqx look", "alt0": "ignored", "alt1": "A grey cat"}, files,
    )
    assert response.status == 303, await response.text()
    conversation = int(CONVERSATION_PATH.match(response.headers["Location"])[1])
    body = await page(clients["bob"], f"/messages/{conversation}")
    assert 'alt="A grey cat"' in body


# --- in a conversation ----------------------------------------------------------------------


async def test_reply_to_quotes_the_message(people):
    _, clients = people
    conversation, first = await start(clients["alice"], "@bob", "zqx question?")
    await send(clients["alice"], conversation, "zqx and another thing")
    form = await page(clients["bob"], f"/messages/{conversation}?reply_to={first}")
    assert f'name="reply_to" value="{first}"' in form
    answer = await send(clients["bob"], conversation, "zqx answer", reply_to=str(first))
    body = await page(clients["alice"], f"/messages/{conversation}")
    bubble = body[body.index(f'id="m{answer}"'):]
    assert f'href="#m{first}">Replying to alice' in bubble


async def test_send_answers_the_latest_message_in_the_conversations_context(people, app):
    """Other servers thread a DM by inReplyTo and context: Send sets both (issue 15)."""
    _, clients = people
    conversation, first = await start(clients["alice"], "@bob", "zqx hello")
    answer = await send(clients["bob"], conversation, "zqx hi there")
    again = await send(clients["alice"], conversation, "zqx how are you?")
    rows = await app[DB].fetchall(
        "SELECT id, in_reply_to_id, context FROM posts WHERE conversation_id = ?",
        (conversation,),
    )
    posts = {row["id"]: row for row in rows}
    assert posts[answer]["in_reply_to_id"] == first
    assert posts[again]["in_reply_to_id"] == answer
    uri = await app[DB].fetchvalue("SELECT uri FROM conversations WHERE id = ?", (conversation,))
    assert uri and {row["context"] for row in posts.values()} == {uri}
    # Answering the message right above needs no quote.
    body = await page(clients["alice"], f"/messages/{conversation}")
    assert "Replying to" not in body


async def test_delete_own_message_leaves_a_tombstone(people):
    _, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqx oops")
    # bob cannot delete alice's message.
    response = await submit(
        clients["bob"], f"/messages/{conversation}/messages/{message}/delete", {},
        token_page="/messages",
    )
    assert response.status in (403, 404)
    response = await submit(
        clients["alice"], f"/messages/{conversation}/messages/{message}/delete", {},
        token_page="/messages",
    )
    assert response.status == 303
    body = await page(clients["bob"], f"/messages/{conversation}")
    assert "zqx oops" not in body
    assert f'id="m{message}"' in body and "Message deleted" in body


async def test_reactions_add_and_remove(people):
    _, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqx react to me")
    path = f"/messages/{conversation}/messages/{message}/react"
    response = await submit(clients["bob"], path, {"emoji": "🎉"}, token_page="/messages")
    assert response.status == 303
    assert "🎉 1" in await page(clients["alice"], f"/messages/{conversation}")
    response = await submit(
        clients["alice"], path, {"emoji": "🎉"}, token_page="/messages", json_reply=True
    )
    assert response.status == 200
    reply = await response.json()
    assert reply["id"] == message and "🎉 2" in reply["html"]
    response = await submit(
        clients["bob"], path, {"emoji": "🎉", "undo": "1"}, token_page="/messages"
    )
    assert response.status == 303
    assert "🎉 1" in await page(clients["bob"], f"/messages/{conversation}")
    response = await submit(clients["bob"], path, {"emoji": "lol"}, token_page="/messages")
    assert response.status == 422


async def test_json_send_answers_with_the_bubble(people):
    _, clients = people
    conversation, _ = await start(clients["alice"], "@bob", "zqx start")
    response = await submit(
        clients["bob"], f"/messages/{conversation}", {"source": "zqx via fetch"},
        token_page="/messages", json_reply=True,
    )
    assert response.status == 200
    reply = await response.json()
    assert reply["conversation"] == conversation
    assert f'id="m{reply["id"]}"' in reply["html"] and "zqx via fetch" in reply["html"]
    response = await submit(
        clients["bob"], f"/messages/{conversation}", {"source": ""},
        token_page="/messages", json_reply=True,
    )
    assert response.status == 422
    assert "error" in await response.json()


async def test_read_marker(app, people):
    accounts, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqx one")
    await send(clients["alice"], conversation, "zqx two")
    bob = accounts["bob"].id
    assert await app[DMS].unread_in(bob, conversation) == 2
    response = await submit(
        clients["bob"], f"/messages/{conversation}/read", {"up_to": str(message)},
        token_page="/messages", json_reply=True,
    )
    assert response.status == 204
    assert await app[DMS].unread_in(bob, conversation) == 1
    response = await submit(
        clients["bob"], f"/messages/{conversation}/read", {}, token_page="/messages"
    )
    assert response.status == 303
    assert await app[DMS].unread_in(bob, conversation) == 0


async def test_older_messages_are_paged(app, people):
    accounts, clients = people
    conversation, first = await start(clients["alice"], "@bob", "zqx message 0")
    for i in range(1, 45):
        await app[DMS].send(accounts["alice"], conversation, f"zqx message {i}")
    body = await page(clients["bob"], f"/messages/{conversation}")
    shown = BUBBLE.findall(body)
    assert len(shown) == 40 and "zqx message 44" in body and "zqx message 0<" not in body
    assert [int(i) for i in shown] == sorted(int(i) for i in shown)  # oldest first
    older = re.search(r'href="(/messages/\d+\?before=\d+)" rel="prev">Older messages', body)
    assert older
    body = await page(clients["bob"], older[1].replace("&amp;", "&"))
    assert f'id="m{first}"' in body and "zqx message 4<" in body
    assert "Older messages" not in body and "Newest messages" in body


async def test_outsiders_never_see_the_conversation(app, people):
    _, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqxsecret hidden words #zqxtag")
    carol = clients["carol"]
    await page(carol, f"/messages/{conversation}", 404)
    await page(carol, "/messages/999999", 404)
    response = await submit(
        carol, f"/messages/{conversation}", {"source": "zqx intrude"}, token_page="/messages"
    )
    assert response.status == 404
    response = await submit(
        carol, f"/messages/{conversation}/messages/{message}/react", {"emoji": "👍"},
        token_page="/messages",
    )
    assert response.status == 404
    for path in (
        "/", "/local", "/federated", "/@alice", "/@bob", "/search?q=zqxsecret",
        "/tags/zqxtag", "/@alice/feed.atom", "/@alice/feed.rss", "/notifications", "/messages",
    ):
        response = await carol.get(path)
        assert "hidden words" not in await response.text(), path
    anonymous = clients["carol"]
    anonymous.session.cookie_jar.clear()
    for path in ("/", "/local", "/@alice", "/@alice/feed.atom", "/tags/zqxtag"):
        response = await anonymous.get(path)
        assert "hidden words" not in await response.text(), path


async def test_posts_without_csrf_token_are_refused(app, people):
    _, clients = people
    conversation, message = await start(clients["alice"], "@bob", "zqx start")
    for path, fields in [
        ("/messages/new", {"to": "@bob", "source": "zqx forged"}),
        (f"/messages/{conversation}", {"source": "zqx forged"}),
        (f"/messages/{conversation}/messages/{message}/delete", {}),
        (f"/messages/{conversation}/messages/{message}/react", {"emoji": "👍"}),
        (f"/messages/{conversation}/read", {}),
        (f"/messages/{conversation}/accept", {}),
        ("/settings/messages", {"dm_policy": "nobody"}),
    ]:
        response = await submit(clients["alice"], path, fields, token="")
        assert response.status == 403, path
        forged = await submit(clients["alice"], path, fields, token="forged-token")
        assert forged.status == 403, path
    assert "zqx forged" not in await page(clients["bob"], f"/messages/{conversation}")
    assert f'id="m{message}"' in await page(clients["bob"], f"/messages/{conversation}")
    assert await app[DMS].policy(people[0]["alice"].id) == "everyone"


async def test_profile_has_a_message_button_for_others_only(people):
    _, clients = people
    assert 'href="/messages/new?to=%40alice"' in await page(clients["bob"], "/@alice")
    assert "/messages/new?to=" not in await page(clients["alice"], "/@alice")
    form = await page(clients["bob"], "/messages/new?to=%40alice")
    assert 'value="@alice"' in form


# --- live socket ---------------------------------------------------------------------------


async def frame_of(socket, kind: str, timeout: float = 3.0) -> dict[str, Any]:
    """The next frame of a type, skipping the others (unread counts arrive often)."""
    while True:
        message = await asyncio.wait_for(socket.receive(), timeout)
        assert message.type == WSMsgType.TEXT, message
        frame = json.loads(message.data)
        if frame["type"] == kind:
            return frame


async def closed(socket) -> bool:
    """Whether the server closes the socket (after whatever frames it still sends)."""
    while True:
        message = await socket.receive(timeout=3)
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED):
            return True


async def test_live_message_typing_and_unread(app, people):
    _, clients = people
    conversation, _ = await start(clients["alice"], "@bob", "zqx first")
    alice_ws = await clients["alice"].ws_connect("/live")
    bob_ws = await clients["bob"].ws_connect("/live")
    # Its first address, which tabs of an older page still use.
    carol_ws = await clients["carol"].ws_connect("/messages/live")
    unread = await frame_of(bob_ws, "unread")
    assert unread["messages"] == 1
    await frame_of(alice_ws, "unread")
    await frame_of(carol_ws, "unread")

    await alice_ws.send_json({"type": "typing", "conversation": str(conversation)})
    typing = await frame_of(bob_ws, "typing")
    assert typing["conversation"] == conversation and typing["name"] == "alice"

    message = await send(clients["alice"], conversation, "zqx live hello")
    pushed = await frame_of(bob_ws, "message")
    assert pushed["id"] == message and pushed["conversation"] == conversation
    assert "zqx live hello" in pushed["html"] and f'id="m{message}"' in pushed["html"]
    assert not pushed["mine"]

    # carol is not a member: her typing reaches nobody, and nothing reaches her.
    await carol_ws.send_json({"type": "typing", "conversation": conversation})
    await alice_ws.send_json({"type": "typing", "conversation": "nonsense"})
    assert await closed(alice_ws)
    with pytest.raises(asyncio.TimeoutError):
        await frame_of(bob_ws, "typing", timeout=0.5)
    with pytest.raises(asyncio.TimeoutError):
        await frame_of(carol_ws, "message", timeout=0.3)
    # Frames are small: a big one closes the socket.
    await carol_ws.send_str(json.dumps({"type": "typing", "conversation": "1" * 20_000}))
    assert await closed(carol_ws)
    for socket in (alice_ws, bob_ws, carol_ws):
        await socket.close()
    await asyncio.sleep(0.05)
    assert app[LIVE].connection_count == 0


@pytest.mark.parametrize(
    "frame", ['{"type": "call-offer"}', '["typing"]', '{"conversation": 1}', "not json"]
)
async def test_a_frame_of_no_known_type_closes_the_socket(people, frame):
    _, clients = people
    socket = await clients["bob"].ws_connect("/live")
    await frame_of(socket, "unread")
    await socket.send_str(frame)
    assert await closed(socket)
    assert socket.close_code == 1003


def test_each_frame_type_has_one_handler():
    hub = LiveHub()

    async def handler(account, frame, tab):  # pragma: no cover - never called
        pass

    hub.on_frame("typing", handler)
    with pytest.raises(ValueError, match="already"):
        hub.on_frame("typing", handler)


async def test_live_socket_needs_a_session_and_our_origin(client, people):
    _, clients = people
    response = await clients["bob"].get(
        "/messages/live", headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await clients["bob"].ws_connect(
            "/messages/live", headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403
    same_origin = str(clients["bob"].make_url("/")).rstrip("/")
    socket = await clients["bob"].ws_connect("/live", headers={"Origin": same_origin})
    await frame_of(socket, "unread")
    await socket.close()
    configured = await clients["bob"].ws_connect(
        "/messages/live", headers={"Origin": "http://xnode.test"}
    )
    await configured.close()

    anonymous = clients["carol"]
    anonymous.session.cookie_jar.clear()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anonymous.ws_connect("/messages/live")
    assert refused.value.status == 401


async def test_open_sockets_do_not_block_shutdown(app, people):
    _, clients = people
    socket = await clients["bob"].ws_connect("/messages/live")
    await frame_of(socket, "unread")
    await asyncio.wait_for(app.shutdown(), 5)
    assert await closed(socket)
