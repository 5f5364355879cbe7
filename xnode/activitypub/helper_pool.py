"""Helper processes started when the load needs them, and stopped when it is gone.

The inbox process and the delivery processes buy throughput with memory: each
is a Python process of about 40–45 MB (PSS). A node with one person on it
idles all day, and must fit a small machine (the whole node ≤ 100 MB PSS idle,
issue 15), so the serving process does all the work itself until the load
calls for more: then the helpers it is configured with (``inbox_process``,
``delivery_processes``) are started, take over, and are stopped again after
``helper_idle_stop_s`` seconds of quiet (0: start them at once, never stop).

Load is counted where it arrives, at no cost: activities accepted by the inbox
and deliveries queued or sent by this process. A rate over the start threshold
(or one fan-out big enough on its own) starts the helpers; a rate under a fifth
of it for the idle time stops them.

Handing over never lets two processes work on the same rows:

- inbox: the inbox process, once ready, waits; this process's inbox worker
  finishes its batch and stops; then the inbox process is told to go. When it
  stops (idle) or dies, this process's worker starts again.
- deliveries: the delivery processes, once all ready, wait; this process stops
  claiming rows and waits for its sends in flight; then each is told to go
  (each sends its shard of the hosts). When they stop, this process sends again.
  A delivery process that keeps crashing is given up on: they all stop, and
  this process sends everything, for good (``xnode.child_process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from xnode.activitypub import inbox
from xnode.activitypub.delivery import DeliveryQueue
from xnode.activitypub.delivery_process import DeliveryProcesses
from xnode.activitypub.inbox import InboxProcessor
from xnode.activitypub.inbox_process import InboxProcessLink
from xnode.child_process import ChildProcess

log = logging.getLogger(__name__)

INBOX_START_PER_S = 50.0
"""Activities accepted per second (over RATE_WINDOW_S) that start the inbox process."""
DELIVERY_START_PER_S = 200.0
"""Deliveries queued or sent per second that start the delivery processes."""
DELIVERY_BURST_ROWS = 400
"""One fan-out this large starts the delivery processes at once."""
RATE_WINDOW_S = 2
IDLE_FRACTION = 0.2
"""Below this share of its start rate, a helper counts as idle."""
CHECK_INTERVAL_S = 1.0


class RateMeter:
    """Events per second over the last few seconds (one dict update per event)."""

    def __init__(self, window_s: int = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._buckets: dict[int, int] = {}

    def add(self, count: int = 1) -> None:
        """Count ``count`` events now."""
        second = int(time.monotonic())
        self._buckets[second] = self._buckets.get(second, 0) + count
        if len(self._buckets) > 4 * self.window_s:
            oldest = second - self.window_s
            self._buckets = {s: n for s, n in self._buckets.items() if s > oldest}

    def rate(self) -> float:
        """Events per second over the window (the current second included)."""
        now = int(time.monotonic())
        total = sum(n for s, n in self._buckets.items() if now - self.window_s < s <= now)
        return total / self.window_s


class HelperPool:
    """Starts, hands work to, and stops the serving process's helper processes."""

    def __init__(
        self,
        app: web.Application,
        processor: InboxProcessor,
        queue: DeliveryQueue,
        *,
        link: InboxProcessLink | None,
        senders: DeliveryProcesses | None,
        idle_stop_s: float,
    ) -> None:
        """Describe the pool; :meth:`run` does the work.

        Args:
            app: The serving application (its inbox worker runs here when needed).
            processor: This process's inbox processor.
            queue: This process's delivery queue (paused while delivery processes send).
            link: The inbox process, if ``inbox_process`` is set.
            senders: The delivery processes, if ``delivery_processes`` is set.
            idle_stop_s: Quiet seconds before helpers stop; 0 keeps them running.
        """
        self.app = app
        self.processor = processor
        self.queue = queue
        self.link = link
        self.senders = senders
        self.idle_stop_s = idle_stop_s
        self.inbox_rate = RateMeter()
        self.delivery_rate = RateMeter()
        self._inbox_quiet_since = time.monotonic()
        self._delivery_quiet_since = time.monotonic()
        self._inbox_here: asyncio.Task[None] | None = None
        self._inbox_stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # one hand-over at a time
        if link is not None:
            link.on_ready = lambda: self._spawn(self._inbox_to_process())
            link.on_down = self._inbox_down
        if senders is not None:
            senders.on_ready = self._sender_ready
            senders.on_given_up = lambda: self._spawn(self._senders_given_up())

    @property
    def inbox_here(self) -> bool:
        """Whether this process's inbox worker is running (no inbox process has the queue)."""
        return self._inbox_here is not None and not self._inbox_here.done()

    # --- load, counted on the hot paths ----------------------------------------------

    def inbox_work(self, count: int = 1) -> None:
        """Activities accepted: start the inbox process if the rate calls for it."""
        self.inbox_rate.add(count)
        link = self.link
        if link is not None and not link.running and not link.given_up and (
            self.inbox_rate.rate() >= INBOX_START_PER_S
        ):
            self._start_inbox()

    def delivery_work(self, count: int) -> None:
        """Deliveries queued or sent: start the delivery processes if the load calls for it."""
        self.delivery_rate.add(count)
        senders = self.senders
        if senders is not None and not senders.running and not senders.given_up and (
            count >= DELIVERY_BURST_ROWS or self.delivery_rate.rate() >= DELIVERY_START_PER_S
        ):
            self._start_senders()

    # --- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: the inbox worker here, helpers as the load asks."""
        self._ensure_inbox_here()
        if self.idle_stop_s <= 0:
            self._start_inbox()
            self._start_senders()
        else:
            for child in self._children():
                await child.report_idle()
        try:
            while True:
                await asyncio.sleep(CHECK_INTERVAL_S)
                if self.idle_stop_s > 0:
                    await self._stop_idle_helpers()
        finally:
            await self._shutdown()

    def _children(self) -> list[ChildProcess]:
        found = [] if self.link is None else [self.link.child]
        return found + ([] if self.senders is None else list(self.senders.children))

    async def _stop_idle_helpers(self) -> None:
        now = time.monotonic()
        if self.inbox_rate.rate() >= INBOX_START_PER_S * IDLE_FRACTION:
            self._inbox_quiet_since = now
        if self.delivery_rate.rate() >= DELIVERY_START_PER_S * IDLE_FRACTION:
            self._delivery_quiet_since = now
        link, senders = self.link, self.senders
        # Only helpers that are up and working are stopped for idleness: one still
        # starting (slow on a busy machine) has had no chance to work yet, and its idle
        # time counts from the hand-over (see _inbox_to_process).
        if link is not None and link.running and link.ready and (
            now - self._inbox_quiet_since >= self.idle_stop_s
        ):
            log.info("inbox process idle for %.0f s: stopping it", now - self._inbox_quiet_since)
            await link.stop()
            await link.child.report_idle()
        if senders is not None and senders.running and senders.ready and (
            now - self._delivery_quiet_since >= self.idle_stop_s
        ):
            log.info("delivery processes idle for %.0f s: stopping them",
                     now - self._delivery_quiet_since)  # fmt: skip
            await senders.stop()
            for child in senders.children:
                await child.report_idle()
            self.queue.resume()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.link is not None:
            await self.link.stop()
        if self.senders is not None:
            await self.senders.stop()
        if self._inbox_here is not None:
            self._inbox_here.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbox_here

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the inbox ----------------------------------------------------------------------

    def _start_inbox(self) -> None:
        if self.link is not None and not self.link.running and not self.link.given_up:
            log.info("starting the inbox process (%.0f activities/s)", self.inbox_rate.rate())
            self._inbox_quiet_since = time.monotonic()
            self.link.start()

    def _ensure_inbox_here(self) -> None:
        """Run the inbox worker in this process (no inbox process is handling the queue)."""
        if self._inbox_here is None or self._inbox_here.done():
            self._inbox_stop = asyncio.Event()
            self._inbox_here = asyncio.create_task(
                inbox.run_forever(self.app, self._inbox_stop), name="inbox-worker"
            )
        self.processor.wake()

    def _inbox_down(self) -> None:
        # Stopped or dead: its unfinished items are still pending; handle them here.
        self._ensure_inbox_here()

    async def _inbox_to_process(self) -> None:
        """The inbox process is ready: stop the worker here, then let it go."""
        async with self._lock:
            here = self._inbox_here
            if here is not None and not here.done():
                self._inbox_stop.set()
                self.processor.wake()
                await asyncio.gather(here, return_exceptions=True)
            self._inbox_here = None
            if self.link is not None and self.link.ready:
                # Idle time counts from the hand-over: a helper slow to start (a busy
                # machine) is not stopped before it has had a chance to work.
                self._inbox_quiet_since = time.monotonic()
                self.link.go()
            else:
                self._ensure_inbox_here()  # it went down meanwhile

    # --- deliveries ---------------------------------------------------------------------

    def _start_senders(self) -> None:
        senders = self.senders
        if senders is not None and not senders.running and not senders.given_up:
            log.info("starting the delivery processes (%.0f deliveries/s)",
                     self.delivery_rate.rate())  # fmt: skip
            self._delivery_quiet_since = time.monotonic()
            senders.start()

    def _sender_ready(self, k: int) -> None:
        assert self.senders is not None
        if self.queue.working:
            if self.senders.ready:
                self._spawn(self._deliveries_to_processes())
        else:
            self.senders.go(k)  # one came back after a crash; this process is not sending

    async def _deliveries_to_processes(self) -> None:
        """Every delivery process is ready: stop sending here, then let them go."""
        async with self._lock:
            senders = self.senders
            if senders is None or not senders.ready or not self.queue.working:
                return
            await self.queue.pause()
            self._delivery_quiet_since = time.monotonic()  # as for the inbox process
            senders.go()

    async def _senders_given_up(self) -> None:
        """One of them keeps crashing: stop them all and send everything from here."""
        assert self.senders is not None
        async with self._lock:
            await self.senders.stop()
            self.queue.resume()


HELPER_POOL = web.AppKey("ap_helper_pool", HelperPool)
"""The node's helper pool, when it has helpers configured."""


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: the pool (and through it the inbox worker) runs while serving."""
    task = asyncio.create_task(app[HELPER_POOL].run(), name="helper-pool")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
