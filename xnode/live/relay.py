"""Live events between serving processes: what one process did reaches tabs open on another.

Several ``xnode serve`` processes can serve one node on PostgreSQL (issue 18). A tab's
WebSocket (and a client's stream) is held by one of them, but the DM it must show may be
sent through another. Each process publishes the events open tabs care about
(:data:`xnode.live.feeds.LIVE_EVENTS`) on a PostgreSQL channel, ``NOTIFY`` with a JSON
payload naming the sending process; every process ``LISTEN``\\s and publishes the events
of the *other* processes on a bus of its own (``relayed``) that the live feeds and the
client API's streams subscribe to. That bus is separate from the process's main bus on
purpose: an event heard from elsewhere must reach open tabs only, not run this process's
services again (notifications, federation), and must never be sent back out.

On SQLite one process serves, ``notify``/``listen`` are no-ops, and nothing is wired.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from xnode.events import EventBus, event_fields, event_from
from xnode.live.feeds import LIVE_EVENTS
from xnode.store.database import Database

log = logging.getLogger(__name__)

CHANNEL = "xnode_live"
MAX_PAYLOAD_BYTES = 7_900
"""PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; live events carry ids, far
less, but one that does not fit is dropped with a warning rather than failing its sender."""
_LIVE_NAMES = {kind.__name__ for kind in LIVE_EVENTS}


class LiveRelay:
    """Sends this process's live events to the other serving processes, and publishes
    theirs on :attr:`relayed`."""

    def __init__(self, db: Database, relayed: EventBus, process_id: str | None = None) -> None:
        """``relayed``: where other processes' events are published (for open tabs only)."""
        self.db = db
        self.relayed = relayed
        # Unique per run (not per config): a payload from this very process must be told
        # apart from a restarted process's, whose tabs are all new.
        self.process_id = process_id or secrets.token_hex(8)
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self.sent = 0
        self.received = 0

    def subscribe(self, events: EventBus) -> None:
        """Send the live events published on ``events`` to the other processes."""
        for kind in LIVE_EVENTS:
            events.subscribe(kind, self._send)

    async def _send(self, event: object) -> None:
        payload = json.dumps(
            {"from": self.process_id, "event": type(event).__name__,
             "fields": event_fields(event)},
            ensure_ascii=False, separators=(",", ":"),
        )  # fmt: skip
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            log.warning("live event %s too large to relay (%d bytes)", type(event).__name__,
                        len(payload))  # fmt: skip
            return
        await self.db.notify(CHANNEL, payload)
        self.sent += 1

    async def start(self) -> None:
        """Listen to the other processes (the database must be open)."""
        self._publisher = asyncio.create_task(self._publish_forever(), name="live-relay")
        await self.db.listen(CHANNEL, self._heard)

    async def stop(self) -> None:
        """Stop publishing what is heard."""
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None

    def _heard(self, payload: str) -> None:
        # Called by the listening connection, outside any task: the events are published
        # by one task, in the order they were heard (a message before its deletion).
        try:
            message: Any = json.loads(payload)
        except ValueError:
            log.warning("unreadable live relay payload: %.200r", payload)
            return
        if not isinstance(message, dict) or message.get("from") == self.process_id:
            return  # ours: already published here
        name = message.get("event")
        event = event_from(name, message.get("fields")) if name in _LIVE_NAMES else None
        if event is None:
            log.warning("unknown live event relayed: %.200r", payload)
            return
        self.received += 1
        self._inbox.put_nowait(event)

    async def _publish_forever(self) -> None:
        while True:
            event = await self._inbox.get()
            await self.relayed.publish(event)  # a failing subscriber is logged by the bus
