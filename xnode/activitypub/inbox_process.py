"""The inbox queue processed in a second process (setting ``inbox_process``).

One Python process uses one core. With this setting, ``xnode serve`` starts a
second process that owns the inbox: the serving (web) process verifies each
POST and hands the activity over a socket pair; the inbox process writes it to
``inbox_queue``, answers once that write is committed (the 202 still means
"stored"), and runs the handlers. Only one process writes the inbox's rows:
SQLite has one write lock, and a first design where both processes wrote
(the web process the queue rows, the worker the posts) was slower than one
process, each waiting on the other's lock (docs/benchmarks.md).

What the inbox process does that the web process must know comes back on the
same socket: events that open browser tabs show (a new message, a notification)
and "deliveries were queued" (an Accept for a Follow), so that the web
process's delivery worker sends them at once. It runs only under load
(:mod:`xnode.activitypub.helper_pool`): while it is not running, or down, the
web process writes the queue rows and handles them itself; it is restarted
after a pause if it dies.

The protocol is JSON lines. Web to inbox: first ``{"start": ...}`` (the
settings), then ``{"n": N, "queue": {...}}``, ``{"wake": "inbox"}``,
``{"tabs": bool}`` (whether tabs are open: then new public posts are relayed
too) and ``{"go": true}`` (handle the queue now: the web process's worker has
stopped; until then rows are only stored). Inbox to web: ``{"ready": true}``,
``{"ack": N, "queued": bool}``, ``{"event": NAME, "fields": {...}}`` and
``{"wake": "delivery"}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from xnode.activitypub.delivery import process_owner
from xnode.child_process import (
    ChildProcess,
    connect_to_parent,
    encode_line,
    serving_process,
    settings_from_message,
    settings_message,
)
from xnode.events import EventBus, PostEdited, PostPublished, event_fields, event_from
from xnode.live.feeds import LIVE_EVENTS
from xnode.settings import Settings
from xnode.store import conversations as conversation_store
from xnode.store import inbox_queue
from xnode.store.database import Database

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0

RELAYED_EVENTS: dict[str, type] = {kind.__name__: kind for kind in LIVE_EVENTS}


def encode_event(event: object) -> bytes:
    """One line carrying a relayed event."""
    return encode_line({"event": type(event).__name__, "fields": event_fields(event)})


def decode_event(message: dict[str, Any]) -> object | None:
    """The event a line carries (None for an unknown or malformed one)."""
    name = str(message.get("event"))
    return event_from(name, message.get("fields")) if name in RELAYED_EVENTS else None


# --- the web process's side -------------------------------------------------------------

INBOX_PROCESS_ROLE = "inbox-inbox"
"""The inbox process's role in its queue claims' owner (``setup_federation`` with role
"inbox": :func:`xnode.activitypub.delivery.process_owner`)."""


async def _release_claims(db: Database, owner: str) -> None:
    """The inbox process exited: end its claims, so that this process's worker (or, after a
    restart, the inbox process again) takes its unfinished items at once, not when their
    lease (10 minutes) runs out. A clean stop leaves none; a crash, or a batch still running
    when it was stopped (and so terminated), does. PostgreSQL only: on SQLite nothing is
    claimed."""
    if db.dialect == "postgres":
        released = await inbox_queue.release(db, owner)
        if released:
            log.info("the inbox process left %d items claimed: released", released)


class InboxProcessLink:
    """Runs the inbox process and talks to it (in the web process)."""

    def __init__(
        self,
        settings: Settings,
        live: EventBus,
        wake_delivery: Callable[[], None],
        *,
        db: Database | None = None,
    ) -> None:
        """Describe the link; nothing runs before :meth:`start`.

        Args:
            settings: The node's settings (sent to the inbox process).
            live: Where relayed events are published (for open tabs).
            wake_delivery: Called when the inbox process queued deliveries.
            db: Where the inbox process's state is reported.
        """
        self.settings = settings
        self.live = live
        self.wake_delivery = wake_delivery
        self._pending: dict[int, asyncio.Future[bool | None]] = {}
        self._next = 0
        self.on_ready: Callable[[], None] | None = None
        """Called when the inbox process is ready (its worker waits for :meth:`go`)."""
        self.on_down: Callable[[], None] | None = None
        """Called when it stops being ready (it died, or was stopped)."""
        self.tabs_open: Callable[[], bool] = lambda: False
        """Whether this process has open tabs (then new public posts are relayed too)."""
        self._child = ChildProcess(
            "inbox process", "inbox-process", settings_message(settings), self._received,
            on_down=self._down, db=db, process=serving_process(settings),
        )  # fmt: skip
        self._child.on_ready = self._ready
        if db is not None:
            self._child.on_exited = functools.partial(
                _release_claims, db, process_owner(settings, INBOX_PROCESS_ROLE)
            )

    @property
    def child(self) -> ChildProcess:
        """The supervised process (its state, starts, crashes)."""
        return self._child

    @property
    def given_up(self) -> bool:
        """Whether the inbox process crashed too often and this process does its work."""
        return self._child.given_up

    @property
    def running(self) -> bool:
        """Whether the inbox process is kept running (started and not stopped)."""
        return self._child.running

    @property
    def ready(self) -> bool:
        """Whether the inbox process is up and taking activities."""
        return self._child.ready

    @property
    def starts(self) -> int:
        """How many times the inbox process was started."""
        return self._child.starts

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        """The inbox process now (or last) running."""
        return self._child.process

    def start(self) -> None:
        """Start (and keep restarting) the inbox process."""
        self._child.start()

    async def stop(self) -> None:
        """Stop the inbox process: it finishes the batch it is on and exits."""
        await self._child.stop()

    def go(self) -> None:
        """Let the inbox process handle the queue (this process's worker has stopped)."""
        self._child.send({"go": True})

    def set_tabs(self, open_now: bool) -> None:
        """Tell the inbox process whether open tabs would show new public posts."""
        self._child.send({"tabs": open_now})

    def _ready(self) -> None:
        self._child.send({"tabs": self.tabs_open()})
        if self.on_ready is not None:
            self.on_ready()

    async def enqueue(self, **fields: Any) -> bool | None:
        """Have the inbox process store an activity; None if it cannot right now.

        Returns whether the activity was new (False: its id was seen before),
        once the row is committed. None means the caller stores it itself.
        """
        if not self._child.ready:
            return None
        self._next += 1
        number = self._next
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        try:
            if not self._child.send({"n": number, "queue": fields}):
                return None
            return await asyncio.wait_for(future, ACK_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            self._pending.pop(number, None)

    def wake(self) -> None:
        """Tell the inbox process that rows were queued without it."""
        if self._child.ready:
            self._child.send({"wake": "inbox"})

    def _down(self) -> None:
        # Whoever waits for an answer stores the activity itself.
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        if self.on_down is not None:
            self.on_down()

    async def _received(self, message: dict[str, Any]) -> None:
        if "ack" in message:
            future = self._pending.get(message["ack"])
            if future is not None and not future.done():
                future.set_result(message.get("queued"))
        elif "event" in message:
            event = decode_event(message)
            if event is not None:
                await self.live.publish(event)
        elif message.get("wake") == "delivery":
            self.wake_delivery()


# --- the inbox process -------------------------------------------------------------------


async def serve_inbox_process(fd: int) -> None:
    """The inbox process's main loop: until the web process closes the socket."""
    from xnode.activitypub.delivery import DELIVERY
    from xnode.activitypub.inbox import INBOX
    from xnode.activitypub.inbox import run_forever as run_inbox
    from xnode.ids import new_id
    from xnode.web.app import create_app
    from xnode.web.state import CLOCK, DB, EVENTS

    reader, writer, first = await connect_to_parent(fd)
    settings = settings_from_message(first)
    app = create_app(settings, role="inbox")

    def send(message: bytes) -> None:
        if not writer.is_closing():
            writer.write(message)

    tabs = False  # whether the web process has open tabs

    async def relay(event: object) -> None:
        # New public posts matter to open tabs ("1 new post") and streams, edits to
        # streams; while none is open, the posts of a busy inbox are not worth a line
        # each. Messages always are.
        if not tabs and isinstance(event, PostEdited):
            return
        if not tabs and isinstance(event, PostPublished) and (
            await conversation_store.conversation_id_of(app[DB], event.post_id) is None
        ):
            return
        send(encode_event(event))

    for kind in RELAYED_EVENTS.values():
        app[EVENTS].subscribe(kind, relay)
    wake_sent = False

    def deliveries_queued() -> None:
        # At most one wake-up a loop iteration, however many rows were queued.
        nonlocal wake_sent
        if not wake_sent:
            wake_sent = True
            asyncio.get_running_loop().call_soon(flush_wake)

    def flush_wake() -> None:
        nonlocal wake_sent
        wake_sent = False
        send(encode_line({"wake": "delivery"}))

    app[DELIVERY].on_queued = deliveries_queued
    runner = web.AppRunner(app)
    await runner.setup()  # opens the database
    db, clock, processor = app[DB], app[CLOCK], app[INBOX]
    tasks: set[asyncio.Task[None]] = set()
    # The queue is handled once the serving process says "go": its own worker
    # has stopped by then, so no item is handled by both at once.
    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None

    async def store(number: int, fields: dict[str, Any]) -> None:
        try:
            queued = await inbox_queue.enqueue_activity(
                db, new_id(), activity_id=fields["activity_id"], actor_uri=fields["actor_uri"],
                signer_key_id=fields["signer_key_id"], payload=fields["payload"],
                now=clock.now(),
            )  # fmt: skip
        except Exception:
            log.exception("could not queue %s", fields.get("activity_id"))
            send(encode_line({"ack": number, "queued": None}))
            return
        send(encode_line({"ack": number, "queued": queued}))
        if queued:
            processor.wake()

    send(encode_line({"ready": True}))
    try:
        while line := await reader.readline():
            message = json.loads(line)
            if "queue" in message:
                # Each in its own task: the writes of many requests share a commit.
                task = asyncio.create_task(store(message["n"], message["queue"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif message.get("wake") == "inbox":
                processor.wake()
            elif "tabs" in message:
                tabs = bool(message["tabs"])
            elif message.get("go") and worker is None:
                worker = asyncio.create_task(run_inbox(app, stop), name="inbox-worker")
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if worker is not None:
            # Finish the batch in progress, so that whoever takes over starts clean.
            stop.set()
            processor.wake()
            await asyncio.gather(worker, return_exceptions=True)
        await runner.cleanup()
