"""Deliveries sent by helper processes (setting ``delivery_processes``).

One event loop sends at most about 1,300 signed deliveries a second on the
reference machine: each costs about 0.6 ms of Python (aiohttp's request, the
signature base, the outcome) besides the RSA signature, and the GIL keeps that
on one core (docs/benchmarks.md). With ``delivery_processes = N`` the serving
process only queues deliveries; N helper processes send them, each the rows
of its own hosts (``xnode.store.shards``: the shard of a host modulo N), so
every host is still served by one process under one per-host limit and one
circuit breaker.

They run only under load (:mod:`xnode.activitypub.helper_pool`): a delivery
process starts sending on ``{"go": true}``, once the serving process has
stopped sending itself, and finishes its sends in flight when told to stop.
The serving process wakes every delivery process when rows are queued (a
``{"wake": "delivery"}`` line); each reads its own due rows and writes its own
outcomes, in batches, so the processes rarely wait for each other's write
lock. A delivery process that dies is restarted after a second; the rows it
was sending are still ``pending`` and go out again (receivers drop the
duplicate by activity id).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from federation.http import DEFAULT_TIMEOUT_S
from xnode.accounts.models import Account
from xnode.activitypub.delivery import DeliveryQueue, fetch_settings_for, process_owner
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.child_process import (
    ChildProcess,
    connect_to_parent,
    encode_line,
    serving_process,
    settings_from_message,
    settings_message,
)
from xnode.clock import SystemClock
from xnode.settings import Settings
from xnode.store import deliveries as delivery_store
from xnode.store.database import Database, database_for

log = logging.getLogger(__name__)

FINISH_TIMEOUT_S = 2 * DEFAULT_TIMEOUT_S + 5.0
"""How long a stopping delivery process waits for its sends in flight: longer than one
send can take (two POSTs when double-knocking, each within the HTTP client's deadline),
and its outcome write. A send cut short here stays pending and is released, and the
serving process, sending again, would send it at once: twice, if the peer had taken it."""


async def _release_claims(db: Database, owner: str) -> None:
    """A delivery process exited: end its claims, so that its rows go out at once (sent
    by it again after a restart, or by the serving process if it was given up on) rather
    than when their lease (5 minutes) runs out. A clean stop leaves none (its worker
    releases them); a crash, or sends still running when it was terminated, do."""
    released = await delivery_store.release(db, owner)
    if released:
        log.info("%s left %d deliveries claimed: released", owner, released)


class DeliveryProcesses:
    """The delivery processes, seen from the serving process."""

    def __init__(self, settings: Settings, count: int, *, db: Database | None = None) -> None:
        """Describe the processes; nothing runs before :meth:`start`.

        Args:
            settings: The node's settings (sent to each process).
            count: How many delivery processes.
            db: Where their states are reported.
        """
        self.children = [
            ChildProcess(
                f"delivery process {k + 1}/{count}", "delivery-process",
                {**settings_message(settings), "shard": [k, count]}, self._received, db=db,
                process=serving_process(settings),
            )
            for k in range(count)
        ]  # fmt: skip
        self.on_ready: Callable[[int], None] | None = None
        """Called with k when delivery process k is ready (its worker waits for :meth:`go`)."""
        self.on_given_up: Callable[[], None] | None = None
        """Called when one of them crashed too often (this process must send everything)."""
        for k, child in enumerate(self.children):
            child.on_ready = functools.partial(self._ready, k)
            child.on_given_up = self._given_up
            if db is not None:
                owner = process_owner(settings, f"deliveries-{k}of{count}")
                child.on_exited = functools.partial(_release_claims, db, owner)

    def start(self) -> None:
        """Start every delivery process (each is restarted if it dies)."""
        for child in self.children:
            child.start()

    async def stop(self) -> None:
        """Stop them all: each ends its sends in flight (they stay pending) and exits."""
        await asyncio.gather(*(child.stop() for child in self.children))

    @property
    def ready(self) -> bool:
        """Whether every delivery process is up."""
        return all(child.ready for child in self.children)

    @property
    def running(self) -> bool:
        """Whether they are kept running (started and not stopped)."""
        return any(child.running for child in self.children)

    @property
    def given_up(self) -> bool:
        """Whether one of them crashed too often and was given up on."""
        return any(child.given_up for child in self.children)

    def go(self, k: int | None = None) -> None:
        """Let delivery process ``k`` (None: every one) send its shard."""
        for n, child in enumerate(self.children):
            if k is None or n == k:
                child.send({"go": True})

    def wake(self) -> None:
        """Tell every delivery process that rows were queued or made due."""
        for child in self.children:
            child.send({"wake": "delivery"})

    def _ready(self, k: int) -> None:
        if self.on_ready is not None:
            self.on_ready(k)

    def _given_up(self) -> None:
        if self.on_given_up is not None:
            self.on_given_up()

    async def _received(self, message: dict[str, Any]) -> None:
        log.debug("unexpected message from a delivery process: %r", message)


async def _no_local_deliveries(activity: dict[str, Any], sender: Account) -> None:
    # Only the serving and inbox processes queue (and so hand activities to
    # local recipients); a delivery process only sends what is queued.
    raise RuntimeError("a delivery process does not queue activities")


async def serve_delivery_process(fd: int) -> None:
    """A delivery process's main loop: send its shard's due rows until the socket closes."""
    reader, writer, first = await connect_to_parent(fd)
    settings = settings_from_message(first)
    k, count = (int(n) for n in first["shard"])
    clock = SystemClock()
    db = database_for(settings.database)
    await db.open()
    keys = KeyRing(db, Urls(settings.base_url), clock)
    queue = DeliveryQueue(
        db, settings, clock, Signer(db, keys, clock), fetch_settings_for(settings),
        _no_local_deliveries, shard=(k, count),
    )  # fmt: skip
    # Sending starts on "go": until then the serving process sends, and a row must
    # never be in flight in two processes (one sender per host).
    worker: asyncio.Task[None] | None = None
    writer.write(encode_line({"ready": True}))
    try:
        while line := await reader.readline():
            message = json.loads(line)
            if message.get("go") and worker is None:
                worker = asyncio.create_task(queue.run_forever(), name="deliveries")
            elif message.get("wake") == "delivery":
                queue.wake()
    finally:
        if worker is not None:
            # Let the sends in flight finish and be recorded, so that nothing is sent
            # twice when the serving process takes over (a crash is another matter).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINISH_TIMEOUT_S):
                    await queue.pause()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await queue.close()
        await db.close()
