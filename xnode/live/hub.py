"""Open tabs per local account: frames out to them, frames in dispatched by type.

The hub knows nothing of messages or calls. Features push with :meth:`LiveHub.send`
and register for the frames a tab may send with :meth:`LiveHub.on_frame`; a frame
of an unregistered type, or one its handler refuses, closes that tab's socket
(the web layer, ``xnode/web/live.py``, does the closing).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from xnode.accounts.models import Account

log = logging.getLogger(__name__)

FrameHandler = Callable[[Account, Mapping[str, Any], "Socket"], Awaitable[None]]
"""Handles one frame the tab (the socket) of ``account`` sent; raises :class:`BadFrame` to
refuse it."""
ConnectHandler = Callable[[int], Awaitable[None]]
DisconnectHandler = Callable[[int, "Socket"], Awaitable[None]]


class BadFrame(ValueError):
    """A frame from a tab that is malformed, unknown, or not this account's to send."""


def frame_id(frame: Mapping[str, Any], key: str) -> int:
    """The id a frame names under ``key`` (tabs send ids as strings: they pass 2**53).

    Raises:
        BadFrame: absent, or not a positive 63-bit id.
    """
    value = frame.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not (isinstance(value, str) and value.isascii() and value.isdigit()
            and 0 < len(value) <= 19 and 0 < int(value) < 2**63):  # fmt: skip
        raise BadFrame(f"{key}: an id")
    return int(value)


class Socket(Protocol):
    """What the hub needs of an aiohttp ``WebSocketResponse``."""

    @property
    def closed(self) -> bool: ...

    async def send_json(self, data: Any) -> None: ...


class LiveHub:
    """Open sockets per local account."""

    def __init__(self) -> None:
        self._sockets: dict[int, set[Socket]] = defaultdict(set)
        self._handlers: dict[str, FrameHandler] = {}
        self._on_connect: list[ConnectHandler] = []
        self._on_disconnect: list[DisconnectHandler] = []
        # Called with True when the first tab opens and False when the last one closes
        # (the inbox process relays public posts only while someone could see them).
        self.on_tabs: Callable[[bool], None] | None = None

    # --- registration ------------------------------------------------------------------

    def on_frame(self, kind: str, handler: FrameHandler) -> None:
        """Hand frames ``{"type": kind, ...}`` from tabs to ``handler`` (one per type)."""
        if kind in self._handlers:
            raise ValueError(f"frames of type {kind!r} already have a handler")
        self._handlers[kind] = handler

    def on_connect(self, handler: ConnectHandler) -> None:
        """Call ``handler(account_id)`` when a tab has just opened (to send it a first state)."""
        self._on_connect.append(handler)

    def on_disconnect(self, handler: DisconnectHandler) -> None:
        """Call ``handler(account_id, socket)`` when a tab has closed (a call it held ends)."""
        self._on_disconnect.append(handler)

    async def closed(self, account_id: int, socket: Socket) -> None:
        """A tab's socket closed: forget it and tell those who care."""
        self.disconnect(account_id, socket)
        for handler in self._on_disconnect:
            try:
                await handler(account_id, socket)
            except Exception:
                log.exception("a live disconnect handler failed")

    # --- sockets -----------------------------------------------------------------------

    async def connect(self, account_id: int, socket: Socket) -> None:
        """Start pushing to a newly opened tab, and give it what it must know first."""
        self.attach(account_id, socket)
        for handler in self._on_connect:
            await handler(account_id)

    def attach(self, account_id: int, socket: Socket) -> None:
        """Count a tab as open, without the first frames (helpers and tests)."""
        first = not self._sockets
        self._sockets[account_id].add(socket)
        if first and self.on_tabs is not None:
            self.on_tabs(True)

    def disconnect(self, account_id: int, socket: Socket) -> None:
        """Stop pushing to a closed tab."""
        sockets = self._sockets.get(account_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[account_id]
                if not self._sockets and self.on_tabs is not None:
                    self.on_tabs(False)

    @property
    def has_tabs(self) -> bool:
        """Whether any tab is open."""
        return bool(self._sockets)

    def is_connected(self, account_id: int) -> bool:
        """Whether the account has an open tab."""
        return bool(self._sockets.get(account_id))

    @property
    def connected_accounts(self) -> list[int]:
        """The accounts with an open tab."""
        return list(self._sockets)

    @property
    def connection_count(self) -> int:
        """Open sockets in total."""
        return sum(len(s) for s in self._sockets.values())

    async def send(self, account_id: int, frame: Mapping[str, Any]) -> None:
        """Push one frame to every open tab of an account (closed ones are dropped)."""
        for socket in list(self._sockets.get(account_id, ())):
            if socket.closed:
                self.disconnect(account_id, socket)
                continue
            try:
                await socket.send_json(frame)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("dropping a live socket of %d: %s", account_id, exc)
                self.disconnect(account_id, socket)

    async def receive(self, account: Account, frame: object, socket: Socket) -> None:
        """Dispatch a frame the tab ``socket`` of ``account`` sent.

        Raises:
            BadFrame: not an object with a known ``type``, or refused by its handler.
        """
        if not isinstance(frame, dict):
            raise BadFrame("a frame is a JSON object")
        kind = frame.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise BadFrame(f"unknown frame type {kind!r}")
        await handler(account, frame, socket)
