"""The streaming API over a real WebSocket and real server-sent events.

Privacy tests never wait for a message "not to come": after the post that must not arrive,
a public post that must arrive is published, and the next message has to be that one (so
the test fails at once, not by timeout, when a filter is missing).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from conftest import create_user

from api.conftest import token_for
from xnode.accounts.models import User
from xnode.api.auth import OAUTH
from xnode.api.stream_hub import STREAMS
from xnode.posts.service import Draft, ImageUpload
from xnode.web.state import DMS, POSTS, RELATIONSHIPS

WAIT_S = 5.0


async def ws_open(client: TestClient, token: str | None, query: str = "",
                  **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.ws_connect(f"/api/v1/streaming{query}", headers=headers, **kwargs)


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), WAIT_S)
    assert message.type == WSMsgType.TEXT, message
    return json.loads(message.data)


async def next_update(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message that is not a notification (mentions also notify)."""
    while True:
        message = await next_message(ws)
        if message["event"] != "notification":
            return message


async def subscribed(client: TestClient, app: Any, ws: Any, count: int = 1) -> None:
    """Wait until the server has taken the frames sent so far (subscriptions)."""
    for _ in range(int(WAIT_S / 0.01)):
        conns = app[STREAMS].connections
        if sum(len(c.subscriptions) for c in conns) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscription not taken")


def png() -> bytes:
    """A small PNG image."""
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(out, "PNG")
    return out.getvalue()


async def publish(app: Any, user: User, text: str, visibility: str = "public") -> int:
    post = await app[POSTS].publish(user.account, Draft(text, visibility=visibility))
    return post.id


async def people(app: Any) -> tuple[User, User, User]:
    """alice follows bob; carol follows nobody."""
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    carol = await create_user(app, "carol")
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    return alice, bob, carol


async def test_health_and_authentication(client, app):
    alice = await create_user(app, "alice")
    response = await client.get("/api/v1/streaming/health")
    assert response.status == 200 and await response.text() == "OK"
    # Every stream needs a token (Mastodon since 4.2), public ones included.
    response = await client.get("/api/v1/streaming/public")
    assert response.status == 401
    response = await client.get("/api/v1/streaming/user",
                                headers={"Authorization": "Bearer nonsense"})
    assert response.status == 401
    # Without read or read:statuses the user stream is refused; read:notifications gives
    # user:notification only.
    write_only = await token_for(app, alice, "write")
    response = await client.get("/api/v1/streaming/user",
                                headers={"Authorization": f"Bearer {write_only}"})
    assert response.status == 401
    assert (await response.json())["error"] == "Access token does not have the required scopes"
    notes = await token_for(app, alice, "read:notifications")
    response = await client.get("/api/v1/streaming/direct",
                                headers={"Authorization": f"Bearer {notes}"})
    assert response.status == 401
    # An app's own token may read public streams, never a person's.
    app_token = await token_for(app, None, "read")
    response = await client.get("/api/v1/streaming/user",
                                headers={"Authorization": f"Bearer {app_token}"})
    assert response.status == 422
    ws = await ws_open(client, app_token, "?stream=user")
    error = await next_message(ws)
    assert error == {"error": "This stream requires an authenticated user", "status": 422}
    await ws.close()


async def test_followed_public_post_reaches_user_and_public_streams(client, app):
    alice, bob, _ = await people(app)
    token = await token_for(app, alice, "read")
    ws = await ws_open(client, token, "?stream=user")
    await ws.send_json({"type": "subscribe", "stream": "public"})
    await subscribed(client, app, ws, 2)
    post_id = await publish(app, bob, "hello from bob")
    got = [await next_message(ws), await next_message(ws)]
    assert sorted(m["stream"][0] for m in got) == ["public", "user"]
    for message in got:
        assert message["event"] == "update"
        assert isinstance(message["payload"], str)  # a JSON string, as Mastodon sends
        status = json.loads(message["payload"])
        assert status["id"] == str(post_id)
        assert status["account"]["username"] == "bob"
        assert "hello from bob" in status["content"]
        assert status["favourited"] is False and status["visibility"] == "public"
    await ws.close()


async def test_token_in_query_and_in_the_subprotocol(client, app):
    alice, bob, _ = await people(app)
    token = await token_for(app, alice, "read:statuses")
    ws = await client.ws_connect(f"/api/v1/streaming?stream=user&access_token={token}")
    await subscribed(client, app, ws)
    by_protocol = await client.ws_connect("/api/v1/streaming?stream=user",
                                          protocols=(token,))
    assert by_protocol.protocol == token  # echoed in the handshake, as browsers require
    await subscribed(client, app, by_protocol, 2)
    post_id = await publish(app, bob, "via the query")
    assert json.loads((await next_message(ws))["payload"])["id"] == str(post_id)
    assert json.loads((await next_message(by_protocol))["payload"])["id"] == str(post_id)
    await ws.close()
    await by_protocol.close()


async def test_followers_only_post_reaches_followers_user_stream_only(client, app):
    alice, bob, carol = await people(app)
    follower = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    await follower.send_json({"type": "subscribe", "stream": "public"})
    stranger = await ws_open(client, await token_for(app, carol, "read"), "?stream=public")
    await stranger.send_json({"type": "subscribe", "stream": "user"})
    await subscribed(client, app, follower, 4)
    private_id = await publish(app, bob, "for my followers", "followers")
    message = await next_message(follower)
    assert message["stream"] == ["user"]
    assert json.loads(message["payload"])["id"] == str(private_id)
    assert json.loads(message["payload"])["visibility"] == "private"
    sentinel = await publish(app, bob, "for everyone")
    # The follower's public stream and the stranger's streams get the public post next,
    # never the followers-only one.
    got = [await next_message(follower), await next_message(follower)]
    assert sorted(m["stream"][0] for m in got) == ["public", "user"]
    assert {json.loads(m["payload"])["id"] for m in got} == {str(sentinel)}
    message = await next_message(stranger)
    assert message["stream"] == ["public"]
    assert json.loads(message["payload"])["id"] == str(sentinel)
    await follower.close()
    await stranger.close()


async def test_unlisted_post_stays_out_of_public_streams(client, app):
    _, bob, carol = await people(app)
    ws = await ws_open(client, await token_for(app, carol, "read"), "?stream=public")
    await subscribed(client, app, ws)
    await publish(app, bob, "quietly", "unlisted")
    sentinel = await publish(app, bob, "loudly")
    assert json.loads((await next_message(ws))["payload"])["id"] == str(sentinel)
    await ws.close()


async def test_blocked_and_muted_authors_never_reach_the_blocker(client, app):
    alice, bob, carol = await people(app)
    dave = await create_user(app, "dave")
    await app[RELATIONSHIPS].follow(alice.id, carol.id)
    await app[RELATIONSHIPS].follow(alice.id, dave.id)
    await app[RELATIONSHIPS].block(alice.id, bob.id)  # ends alice's follow of bob too
    await app[RELATIONSHIPS].set_mute(alice.id, carol.id, True)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=public")
    await ws.send_json({"type": "subscribe", "stream": "user"})
    await ws.send_json({"type": "subscribe", "stream": "hashtag", "tag": "news"})
    await subscribed(client, app, ws, 3)
    await publish(app, bob, "blocked #news")
    await publish(app, carol, "muted #news")
    sentinel = await publish(app, dave, "fine #news")
    got = [await next_message(ws) for _ in range(3)]
    assert sorted(m["stream"][0] for m in got) == ["hashtag", "public", "user"]
    assert {json.loads(m["payload"])["id"] for m in got} == {str(sentinel)}
    await ws.close()


async def test_the_blocked_side_does_not_see_the_blocker_either(client, app):
    alice, bob, carol = await people(app)
    await app[RELATIONSHIPS].block(bob.id, carol.id)  # bob blocks carol
    ws = await ws_open(client, await token_for(app, carol, "read"), "?stream=public")
    await subscribed(client, app, ws)
    await publish(app, bob, "carol may not see this")
    sentinel = await publish(app, alice, "anyone may")
    assert json.loads((await next_message(ws))["payload"])["id"] == str(sentinel)
    await ws.close()


async def test_hashtag_streams(client, app):
    alice, bob, _ = await people(app)
    ws = await ws_open(client, await token_for(app, alice, "read"),
                       "?stream=hashtag&tag=Cats")
    await ws.send_json({"type": "subscribe", "stream": "hashtag:local", "tag": "dogs"})
    await subscribed(client, app, ws, 2)
    await publish(app, bob, "nothing tagged here")
    cats = await publish(app, bob, "look #cats")
    message = await next_message(ws)
    assert message["stream"] == ["hashtag", "Cats"]  # the tag as the client named it
    assert json.loads(message["payload"])["id"] == str(cats)
    await ws.send_json({"type": "unsubscribe", "stream": "hashtag", "tag": "cats"})
    await subscribed(client, app, ws, 1)
    await publish(app, bob, "more #cats")
    dogs = await publish(app, bob, "and #dogs")
    message = await next_message(ws)
    assert message["stream"] == ["hashtag:local", "dogs"]
    assert json.loads(message["payload"])["id"] == str(dogs)
    await ws.close()


async def test_delete_and_status_update_events(client, app):
    alice, bob, _ = await people(app)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    await subscribed(client, app, ws)
    post_id = await publish(app, bob, "first version")
    assert (await next_message(ws))["event"] == "update"
    await app[POSTS].edit(bob.id, post_id, source="second version", summary="",
                         sensitive=False)
    message = await next_message(ws)
    assert message["event"] == "status.update"
    status = json.loads(message["payload"])
    assert "second version" in status["content"] and status["edited_at"]
    await app[POSTS].delete(bob.id, post_id)
    message = await next_message(ws)
    assert message == {"stream": ["user"], "event": "delete", "payload": str(post_id)}
    await ws.close()


async def test_boost_arrives_with_the_boosters_facts(client, app):
    alice, bob, carol = await people(app)
    original = await publish(app, carol, "worth sharing")
    await app[POSTS].like(alice.id, original)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    await subscribed(client, app, ws)
    await app[POSTS].boost(bob.account, original)
    status = json.loads((await next_message(ws))["payload"])
    assert status["reblog"]["id"] == str(original)
    assert status["account"]["username"] == "bob"
    assert status["favourited"] is True  # alice liked the original
    await ws.close()


async def test_sse_user_stream_and_heartbeat_format(client, app):
    alice, bob, _ = await people(app)
    token = await token_for(app, alice, "read")
    response = await client.get("/api/v1/streaming/user",
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert await asyncio.wait_for(response.content.readline(), WAIT_S) == b":)\n"
    post_id = await publish(app, bob, "over SSE")
    assert await asyncio.wait_for(response.content.readline(), WAIT_S) == b"event: update\n"
    data = await asyncio.wait_for(response.content.readline(), WAIT_S)
    assert data.startswith(b"data: ")
    assert json.loads(data[6:])["id"] == str(post_id)
    response.close()


async def test_sse_hashtag_needs_a_tag_and_public_local(client, app):
    alice, bob, _ = await people(app)
    headers = {"Authorization": f"Bearer {await token_for(app, alice, 'read')}"}
    response = await client.get("/api/v1/streaming/hashtag", headers=headers)
    assert response.status == 400
    response = await client.get("/api/v1/streaming/public/local", headers=headers)
    assert response.status == 200
    await asyncio.wait_for(response.content.readline(), WAIT_S)
    # Mastodon's other form: GET /api/v1/streaming?stream= without an upgrade is SSE too;
    # only_media leaves posts without images out.
    by_query = await client.get("/api/v1/streaming?stream=public", headers=headers)
    assert by_query.headers["Content-Type"].startswith("text/event-stream")
    await asyncio.wait_for(by_query.content.readline(), WAIT_S)
    media_only = await client.get("/api/v1/streaming/public?only_media=true",
                                  headers=headers)
    await asyncio.wait_for(media_only.content.readline(), WAIT_S)
    post_id = await publish(app, bob, "local and public")
    for stream in (response, by_query):
        assert await asyncio.wait_for(stream.content.readline(), WAIT_S) == b"event: update\n"
        data = await asyncio.wait_for(stream.content.readline(), WAIT_S)
        assert json.loads(data[6:])["id"] == str(post_id)
    # The media stream skipped that one: its next event is a post with an image.
    with_image = await app[POSTS].publish(bob.account, Draft(
        "a picture", images=[ImageUpload(png(), "a red square")]))  # fmt: skip
    assert await asyncio.wait_for(media_only.content.readline(), WAIT_S) == b"event: update\n"
    data = await asyncio.wait_for(media_only.content.readline(), WAIT_S)
    assert json.loads(data[6:])["id"] == str(with_image.id)
    for stream in (response, by_query, media_only):
        stream.close()


async def test_revoked_token_closes_its_streams_at_once(client, app):
    alice, bob, _ = await people(app)
    token = await token_for(app, alice, "read", app_name="Revoked app")
    other = await token_for(app, alice, "read", app_name="Kept app")
    ws = await ws_open(client, token, "?stream=user")
    kept = await ws_open(client, other, "?stream=user")
    sse = await client.get("/api/v1/streaming/user", headers={"Authorization": f"Bearer {token}"})
    await asyncio.wait_for(sse.content.readline(), WAIT_S)
    await subscribed(client, app, ws, 3)
    oauth = app[OAUTH]
    caller = await oauth.resolve(token)
    assert caller is not None
    await oauth.revoke_application(alice.id, caller[0].application_id)
    message = await asyncio.wait_for(ws.receive(), WAIT_S)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert await asyncio.wait_for(sse.content.read(), WAIT_S) == b""  # the response ended
    # The other app's stream goes on.
    post_id = await publish(app, bob, "still here")
    assert json.loads((await next_message(kept))["payload"])["id"] == str(post_id)
    await kept.close()
    # And the revoked token cannot open a new one.
    response = await client.get("/api/v1/streaming/user",
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


async def test_bad_frames_get_errors_and_the_socket_stays_open(client, app):
    alice, bob, _ = await people(app)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=nonsense")
    assert await next_message(ws) == {"error": "Unknown stream type", "status": 400}
    for frame, error in [
        ("{not json", "Invalid JSON"),
        ("[1, 2]", "Frames must be JSON objects"),
        (json.dumps({"type": "dance"}), "Unknown message type"),
        (json.dumps({"type": "subscribe", "stream": "hashtag"}), "No tag for stream provided"),
        (json.dumps({"type": "subscribe", "stream": "hashtag", "tag": {"x": 1}}),
         "No tag for stream provided"),
        (json.dumps({"type": "subscribe", "stream": ["user"]}), "Unknown stream type"),
        (json.dumps({"type": "unsubscribe", "stream": 7}), "Unknown stream type"),
    ]:
        await ws.send_str(frame)
        assert (await next_message(ws))["error"] == error
    await ws.send_bytes(b"\x00\x01")
    assert (await next_message(ws))["status"] == 400
    # Still working.
    await ws.send_json({"type": "subscribe", "stream": "user"})
    await subscribed(client, app, ws)
    post_id = await publish(app, bob, "after the noise")
    assert json.loads((await next_message(ws))["payload"])["id"] == str(post_id)
    # An oversized frame closes the socket (1009), and the node forgets it.
    await ws.send_str(json.dumps({"type": "subscribe", "stream": "x" * 8000}))
    message = await asyncio.wait_for(ws.receive(), WAIT_S)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    for _ in range(int(WAIT_S / 0.01)):
        if not app[STREAMS].connections:
            break
        await asyncio.sleep(0.01)
    assert not app[STREAMS].connections


async def test_direct_messages_only_on_members_direct_streams(client, app):
    alice, bob, carol = await people(app)
    await app[RELATIONSHIPS].follow(carol.id, bob.id)
    member = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    await member.send_json({"type": "subscribe", "stream": "direct"})
    outsider = await ws_open(client, await token_for(app, carol, "read"), "?stream=direct")
    await outsider.send_json({"type": "subscribe", "stream": "user"})
    await subscribed(client, app, member, 4)
    dm = await app[DMS].start(bob.account, "@alice", "a secret for alice")
    message = await next_update(member)
    assert message["stream"] == ["direct"] and message["event"] == "conversation"
    conversation = json.loads(message["payload"])
    assert "a secret for alice" in conversation["last_status"]["content"]
    sentinel = await publish(app, bob, "public again")
    # Never on the user stream (direct posts are in no timeline), never to carol.
    message = await next_update(member)
    assert message["stream"] == ["user"]
    assert json.loads(message["payload"])["id"] == str(sentinel) != str(dm.id)
    message = await next_message(outsider)
    assert message["stream"] == ["user"]
    assert json.loads(message["payload"])["id"] == str(sentinel)
    assert conversation["unread"] is True
    # Read (say, in another app): the member's direct stream hears it is read now.
    await app[DMS].mark_read(alice.id, dm.conversation_id)
    message = await next_update(member)
    assert message["stream"] == ["direct"] and message["event"] == "conversation"
    assert json.loads(message["payload"])["unread"] is False
    await member.close()
    await outsider.close()


async def test_notification_event(client, app):
    alice, bob, _ = await people(app)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=user:notification")
    statuses_only = await ws_open(client, await token_for(app, alice, "read:statuses"),
                                  "?stream=user")
    await subscribed(client, app, ws, 2)
    mine = await publish(app, alice, "like this please")
    await app[POSTS].like(bob.id, mine)
    message = await next_message(ws)
    assert message["stream"] == ["user:notification"] and message["event"] == "notification"
    notification = json.loads(message["payload"])
    assert notification["type"] == "favourite"
    assert notification["account"]["username"] == "bob"
    assert notification["status"]["id"] == str(mine)
    # A token without read:notifications gets its own post on the user stream, but not
    # the notification.
    message = await next_message(statuses_only)
    assert message["event"] == "update"
    sentinel = await publish(app, bob, "after the like")
    message = await next_message(statuses_only)
    assert message["event"] == "update"
    assert json.loads(message["payload"])["id"] == str(sentinel)
    await ws.close()
    await statuses_only.close()


async def test_nothing_is_queued_while_nobody_listens(client, app):
    _, bob, _ = await people(app)
    await publish(app, bob, "into the void")
    hub = app[STREAMS]
    assert not hub.connections and hub._worker is None and not hub._queue


async def test_posts_relayed_by_the_inbox_process_reach_streams(aiohttp_client, tmp_path, clock):
    """With an inbox process, remote posts come back on its own bus: streams listen there,
    and count as open tabs (so that it relays public posts while a stream is open)."""
    from conftest import make_settings

    from xnode.activitypub.inbox import INBOX_LINK
    from xnode.events import PostPublished
    from xnode.web.app import create_app

    node = create_app(make_settings(tmp_path / "relaying", inbox_process=True), clock=clock)
    client = await aiohttp_client(node)
    app = client.server.app
    alice, bob, _ = await people(app)
    post_id = await publish(app, bob, "as if it came from elsewhere")  # nobody listens yet
    link = app[INBOX_LINK]
    told: list[bool] = []
    link.set_tabs = told.append
    assert not link.tabs_open()
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    await subscribed(client, app, ws)
    assert link.tabs_open() and told == [True]
    await link.live.publish(PostPublished(post_id, bob.id))
    message = await next_message(ws)
    assert json.loads(message["payload"])["id"] == str(post_id)
    await ws.close()
    for _ in range(200):
        if told[-1] is False:
            break
        await asyncio.sleep(0.01)
    assert told == [True, False]


async def test_a_suspended_persons_streams_close_at_the_next_check(client, app):
    from xnode.web.state import ACCOUNTS

    alice, bob, _ = await people(app)
    ws = await ws_open(client, await token_for(app, alice, "read"), "?stream=user")
    kept = await ws_open(client, await token_for(app, bob, "read"), "?stream=public")
    await subscribed(client, app, ws, 2)
    await app[ACCOUNTS].set_suspended(alice.id, True)
    await app[STREAMS].recheck()  # what the 30-second heartbeat does
    message = await asyncio.wait_for(ws.receive(), WAIT_S)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert len(app[STREAMS].connections) == 1
    await kept.close()


async def test_mastodon_py_streams_the_user_timeline(addressed_client):
    """Mastodon.py's streaming client (SSE, found through the instance's streaming URL)."""
    from mastodon import StreamListener

    from api.conftest import in_thread, mastodon_for

    client = addressed_client
    app = client.server.app
    alice, bob, _ = await people(app)
    masto = await mastodon_for(client, await token_for(app, alice, "read"))
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[Any] = asyncio.Queue()

    notified: asyncio.Queue[Any] = asyncio.Queue()

    class Listener(StreamListener):
        def on_update(self, status: Any) -> None:
            loop.call_soon_threadsafe(got.put_nowait, status)

        def on_notification(self, notification: Any) -> None:
            loop.call_soon_threadsafe(notified.put_nowait, notification)

    handle = await in_thread(masto.stream_user, Listener(), run_async=True)
    try:
        await subscribed(client, app, None)
        post_id = await publish(app, bob, "to Mastodon.py")
        status = await asyncio.wait_for(got.get(), WAIT_S)
        assert str(status["id"]) == str(post_id)
        assert status["account"]["acct"] == "bob"
        await publish(app, bob, "@alice and you?")
        notification = await asyncio.wait_for(notified.get(), WAIT_S)
        assert notification["type"] == "mention"
        assert notification["account"]["acct"] == "bob"
    finally:
        # Its reading thread notices a close only when data comes: end the stream first.
        app[STREAMS].close_all()
        await in_thread(handle.close)
