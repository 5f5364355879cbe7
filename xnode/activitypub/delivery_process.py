"""Deliveries sent by helper processes (setting ``delivery_processes``).

One event loop sends at most about 1,300 signed deliveries a second on the
reference machine: each costs about 0.6 ms of Python (aiohttp's request, the
signature base, the outcome) besides the RSA signature, and the GIL keeps that
on one core (docs/benchmarks.md). With ``delivery_processes = N`` the serving
process only queues deliveries; N helper processes send them, each the rows
of its own hosts (``xnode.store.shards``: the shard of a host modulo N), so
every host is still served by one process under one per-host limit and one
circuit breaker.

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
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from xnode.accounts.models import Account
from xnode.activitypub.delivery import DeliveryQueue, fetch_settings_for
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.child_process import (
    ChildProcess,
    connect_to_parent,
    encode_line,
    settings_from_message,
    settings_message,
)
from xnode.clock import SystemClock
from xnode.settings import Settings
from xnode.store.database import Database
from xnode.store.shards import Shard

log = logging.getLogger(__name__)

class DeliveryProcesses:
    """The delivery processes, seen from the serving process."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        db: Database | None = None,
        sender_here: Callable[[Shard], DeliveryQueue] | None = None,
    ) -> None:
        """Describe the processes; nothing runs before :meth:`start`.

        Args:
            settings: The node's settings (sent to each process).
            count: How many delivery processes.
            db: Where their states are reported.
            sender_here: Makes a queue for one shard, to run in this process when
                that shard's delivery process keeps crashing and is given up on.
        """
        self.sender_here = sender_here
        self.children = [
            ChildProcess(
                f"delivery process {k + 1}/{count}", "delivery-process",
                {**settings_message(settings), "shard": [k, count]}, self._received, db=db,
            )
            for k in range(count)
        ]  # fmt: skip
        # Shards whose process was given up on: the queue sending them from here.
        self._here: dict[int, tuple[DeliveryQueue, asyncio.Task[None]]] = {}
        for k, child in enumerate(self.children):
            child.on_given_up = functools.partial(self._take_over, k)

    def start(self) -> None:
        """Start every delivery process (each is restarted if it dies)."""
        for child in self.children:
            child.start()

    async def stop(self) -> None:
        """Stop them all: each ends its sends in flight (they stay pending) and exits."""
        await asyncio.gather(*(child.stop() for child in self.children))
        for _, task in self._here.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in self._here.values()), return_exceptions=True)

    @property
    def ready(self) -> bool:
        """Whether every delivery process is up."""
        return all(child.ready for child in self.children)

    @property
    def given_up(self) -> list[int]:
        """The shards whose delivery process crashed too often (this process sends them)."""
        return sorted(self._here)

    def wake(self) -> None:
        """Tell every delivery process (or the queue standing in for it) that rows were
        queued or made due."""
        for k, child in enumerate(self.children):
            if k in self._here:
                self._here[k][0].wake()
            else:
                child.send({"wake": "delivery"})

    def _take_over(self, k: int) -> None:
        """Send shard ``k`` from this process: its delivery process is given up on."""
        if self.sender_here is None or k in self._here:
            return
        queue = self.sender_here((k, len(self.children)))
        task = asyncio.create_task(queue.run_forever(), name=f"deliveries-shard-{k}")
        self._here[k] = (queue, task)

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
    db = Database(settings.database_path)
    await db.open()
    keys = KeyRing(db, Urls(settings.base_url), clock)
    queue = DeliveryQueue(
        db, settings, clock, Signer(db, keys, clock), fetch_settings_for(settings),
        _no_local_deliveries, shard=(k, count),
    )  # fmt: skip
    worker = asyncio.create_task(queue.run_forever(), name="deliveries")
    writer.write(encode_line({"ready": True}))
    try:
        while line := await reader.readline():
            if json.loads(line).get("wake") == "delivery":
                queue.wake()
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await db.close()


def processes_ctx(
    processes: DeliveryProcesses,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: the delivery processes run while the application serves."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        processes.start()
        yield
        await processes.stop()

    return ctx
