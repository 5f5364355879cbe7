"""Client API: streaming, as Mastodon's streaming server speaks it.

Two transports, the same streams and events:

- WebSocket at ``GET /api/v1/streaming``: the first stream from ``?stream=`` (``&tag=``),
  more with ``{"type": "subscribe", "stream": "hashtag", "tag": "x"}`` and fewer with
  ``"unsubscribe"``; each message is ``{"stream": [...], "event": ..., "payload": ...}``
  where ``payload`` is a JSON *string* (a status id for ``delete``). A bad frame is
  answered with ``{"error": ..., "status": 400}``; the socket stays open.
- Server-sent events at ``/api/v1/streaming/user``, ``/user/notification``, ``/public``
  (``/local``, ``/remote``; ``?only_media=true``), ``/hashtag?tag=`` (``/local``),
  ``/direct``, and ``/api/v1/streaming?stream=``: ``event: update`` / ``data: payload``,
  with a ``:thump`` comment every 30 s.

Streams: ``user`` (the home timeline's new and edited posts, deletions, and notifications
when the token may read them), ``user:notification``, ``public``, ``public:local``,
``public:remote`` (each also ``:media``), ``hashtag``, ``hashtag:local`` and ``direct``
(``conversation`` events). ``GET /api/v1/streaming/health`` answers ``OK``.

Who gets what follows the pages' rules (``xnode/timelines.py``, ``xnode/posts/visibility.py``):
the user stream carries what the home timeline shows (own posts and those of accounts
followed, never direct ones, nothing of a muted author, nothing across a block); public
and hashtag streams carry public posts only (not boosts; not silenced servers' posts on
the federated ones), minus blocked and muted authors; direct posts go only to their
conversation's members, as ``conversation`` events. A boost is also withheld from those
who mute or block the original's author.

Authentication: as Mastodon since 4.2, every stream needs a working token (an app's own
token will do for public and hashtag streams); ``user`` and ``direct`` need ``read`` or
``read:statuses``, ``user:notification`` needs ``read`` or ``read:notifications``.
Revoking a token (``TokensRevoked``) closes its streams at once.

Cost: nothing happens on an event while nobody is connected. With clients connected, one
event costs a handful of reads for the whole audience (``xnode/live/stream_audience.py``),
one serialisation per distinct set of viewer facts (for a new post: the author's, and
everyone else's), and one write per subscribed stream and client. Events are handled in
order by one task, so a publisher never waits for the fan-out; a client that stops
reading is cut off once 4 MB wait for it, never slowing the others. Each person's
standing is checked again every 30 s (a suspension is announced by no event).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from xnode.api.auth import caller_of
from xnode.api.stream_hub import (
    HEARTBEAT_S,
    MAX_FRAME_BYTES,
    PUBLIC_STREAMS,
    STREAMS,
    Connection,
    StreamError,
    StreamHub,
    ws_frame,
)
from xnode.web.state import EVENTS, LIVE

log = logging.getLogger(__name__)


# --- handlers ----------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _caller(request: web.Request) -> tuple[int, int | None, tuple[str, ...]] | web.Response:
    caller = caller_of(request)
    if caller is None:
        return _error(401, "Missing access token")
    user = caller.user
    return caller.token.id, (user.id if user is not None else None), caller.token.scopes


async def health(request: web.Request) -> web.Response:
    """``GET /api/v1/streaming/health``: the streaming API is up."""
    return web.Response(text="OK", headers={"Access-Control-Allow-Origin": "*"})


async def streaming(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/streaming``: a WebSocket (or, without an upgrade, SSE of ``?stream=``)."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return await _sse(request, request.query.get("stream"), request.query.get("tag"))
    found = _caller(request)
    if isinstance(found, web.Response):
        return found
    token_id, user_id, scopes = found
    hub = request.app[STREAMS]
    # A browser passes the token as the subprotocol: echoed back, as the handshake needs.
    offered = request.headers.get("Sec-WebSocket-Protocol")
    protocols = [p.strip() for p in offered.split(",")] if offered else []
    ws = web.WebSocketResponse(
        protocols=protocols, heartbeat=HEARTBEAT_S, compress=False,
        max_msg_size=MAX_FRAME_BYTES,
    )  # fmt: skip
    await ws.prepare(request)
    conn = Connection(hub, request, ws, token_id, user_id, scopes)
    hub.add(conn)
    try:
        if "stream" in request.query:
            await _subscribe_or_say(hub, conn, "subscribe", request.query.get("stream"),
                                    request.query.get("tag"))  # fmt: skip
        async for message in ws:
            if conn.closed:
                break
            if message.type != WSMsgType.TEXT:
                await _say(conn, StreamError("Frames must be JSON text"))
                continue
            await _frame(hub, conn, message.data)
    finally:
        hub.close(conn, "closed")
    return ws


async def _frame(hub: StreamHub, conn: Connection, data: str) -> None:
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        await _say(conn, StreamError("Invalid JSON"))
        return
    if not isinstance(frame, dict):
        await _say(conn, StreamError("Frames must be JSON objects"))
        return
    await _subscribe_or_say(hub, conn, frame.get("type"), frame.get("stream"), frame.get("tag"))


async def _subscribe_or_say(
    hub: StreamHub, conn: Connection, kind: object, stream: object, tag: object
) -> None:
    try:
        if kind == "subscribe":
            hub.subscribe(conn, stream, tag)
        elif kind == "unsubscribe":
            hub.unsubscribe(conn, stream, tag)
        else:
            raise StreamError("Unknown message type")
    except StreamError as exc:
        await _say(conn, exc)


async def _say(conn: Connection, error: StreamError) -> None:
    await conn.send(ws_frame(json.dumps({"error": error.message, "status": error.status})))


_SSE_PATHS = {
    "user": "user", "user/notification": "user:notification", "public": "public",
    "public/local": "public:local", "public/remote": "public:remote", "hashtag": "hashtag",
    "hashtag/local": "hashtag:local", "direct": "direct",
}  # fmt: skip


def _sse_handler(name: str) -> Callable[[web.Request], Any]:
    async def sse(request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/streaming/<stream>``: one stream as server-sent events."""
        stream = name
        if stream in PUBLIC_STREAMS and request.query.get("only_media", "").lower() in (
            "1", "true",
        ):
            stream += ":media"
        return await _sse(request, stream, request.query.get("tag"))

    return sse


async def _sse(request: web.Request, name: str | None, tag: str | None) -> web.StreamResponse:
    found = _caller(request)
    if isinstance(found, web.Response):
        return found
    token_id, user_id, scopes = found
    hub = request.app[STREAMS]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*",
    })  # fmt: skip
    conn = Connection(hub, request, response, token_id, user_id, scopes)
    try:
        key, prefix = hub.check(conn, name, tag)  # before anything is sent
    except StreamError as exc:
        return _error(exc.status, exc.message)
    response.force_close()  # the connection ends with the stream
    await response.prepare(request)
    conn.done = asyncio.get_running_loop().create_future()
    hub.add(conn)
    hub.attach(conn, key, prefix)
    try:
        await conn.send(b":)\n")
        await conn.done
    finally:
        hub.close(conn, "closed")
    return response


# --- wiring ------------------------------------------------------------------------------


async def _start(app: web.Application) -> None:
    hub = app[STREAMS]
    hub.subscribe_to(app[EVENTS])
    hub.watch_accounts(app[EVENTS])
    _join_inbox_process(app, hub)


def _join_inbox_process(app: web.Application, hub: StreamHub) -> None:
    """With an inbox process, what it did comes back on its own bus (for open tabs): the
    streams listen there too, and count as open tabs for its relaying of public posts."""
    from xnode.activitypub.inbox import INBOX_LINK

    link = app.get(INBOX_LINK)
    if link is None:
        return
    hub.subscribe_to(link.live)
    tabs = app[LIVE]
    link.tabs_open = lambda: tabs.has_tabs or bool(hub.connections)
    tabs.on_tabs = lambda open_now: link.set_tabs(open_now or bool(hub.connections))
    hub.on_active = lambda active: link.set_tabs(active or tabs.has_tabs)


async def _stop(app: web.Application) -> None:
    app[STREAMS].close_all()


def add_routes(app: web.Application) -> None:
    """Register the streaming endpoints."""
    app[STREAMS] = StreamHub(app)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    app.router.add_get("/api/v1/streaming/health", health)
    app.router.add_get("/api/v1/streaming", streaming)
    for path, name in _SSE_PATHS.items():
        app.router.add_get(f"/api/v1/streaming/{path}", _sse_handler(name))
