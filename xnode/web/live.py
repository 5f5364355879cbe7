"""The live WebSocket of every signed-in page: ``/live`` (and ``/messages/live``, its
first address, which open tabs of an older page still use).

One socket per tab, handed to the hub (``xnode/live/hub.py``). Frames from the tab
are JSON objects dispatched by their ``type``; a malformed or refused frame closes
the socket (1003), so a misbehaving script learns at once rather than being ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from federation import json_text
from xnode.live.hub import BadFrame
from xnode.web.state import LIVE, SETTINGS
from xnode.web.visitor import visitor_of

MAX_LIVE_FRAME_BYTES = 16 * 1024
"""A tab's frames are small (typing now; SDP offers, the largest to come, stay under 16 KB)."""
LIVE_HEARTBEAT_S = 30.0

_CLOSING: set[asyncio.Future[None]] = set()

# Open live sockets, closed on shutdown so the server does not wait for them.
LIVE_SOCKETS = web.AppKey("live_sockets", weakref.WeakSet[web.WebSocketResponse])


def origin_allowed(request: web.Request) -> bool:
    """Whether a WebSocket's ``Origin`` is this node (stops cross-site socket hijacking).

    Browsers always send ``Origin`` on WebSocket handshakes; its absence means
    a non-browser client, which cannot ride on a visitor's cookies.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    base = urlsplit(request.app[SETTINGS].base_url)
    parts = urlsplit(origin)
    if (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower()):
        return True
    # The host the browser connected to (as the CSRF check does): a page served
    # from another host name carries its own origin, never ours.
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


async def live_socket(request: web.Request) -> web.StreamResponse:
    """The WebSocket that pushes what a signed-in tab shows live, and takes its frames."""
    user = visitor_of(request).user
    if user is None:
        raise web.HTTPUnauthorized(text="Log in to receive live updates.")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="Cross-site WebSocket refused.")
    socket = web.WebSocketResponse(heartbeat=LIVE_HEARTBEAT_S, max_msg_size=MAX_LIVE_FRAME_BYTES)
    await socket.prepare(request)
    hub = request.app[LIVE]
    request.app[LIVE_SOCKETS].add(socket)
    try:
        await hub.connect(user.id, socket)
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            try:
                await hub.receive(user.account, json_text.loads(message.data), socket)
            except (ValueError, RecursionError) as exc:  # BadFrame is a ValueError
                reason = str(exc) if isinstance(exc, BadFrame) else "not JSON"
                await socket.close(
                    code=WSCloseCode.UNSUPPORTED_DATA, message=reason.encode()[:120]
                )
                break
    finally:
        request.app[LIVE_SOCKETS].discard(socket)
        # Shielded: the server may cancel this handler as the connection drops, and what
        # the tab's closing sets off (a call it held ends for the others) must still run.
        closing = asyncio.ensure_future(hub.closed(user.id, socket))
        _CLOSING.add(closing)  # held until done: a shielded task nobody holds may vanish
        closing.add_done_callback(_CLOSING.discard)
        await asyncio.shield(closing)
    return socket


async def _close_live_sockets(app: web.Application) -> None:
    sockets = app[LIVE_SOCKETS]
    for socket in list(sockets):
        with contextlib.suppress(Exception):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def add_routes(app: web.Application) -> None:
    """Register the live socket."""
    app[LIVE_SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_live_sockets)
    app.router.add_get("/live", live_socket, name="live")
    app.router.add_get("/messages/live", live_socket, name="messages_live")
