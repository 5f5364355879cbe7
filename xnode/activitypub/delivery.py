"""The delivery queue: activities to other servers' inboxes, as rows with states, retried for days.

``enqueue`` turns (activity, recipients) into one row per inbox, shared inboxes
first, so a server with a thousand followers of ours gets one POST. The worker
(``run_forever``, or ``run_due`` in tests and tools) sends due rows with a
per-host and a global concurrency limit, through :class:`Signer`, and writes
each outcome back using the pure policy in :mod:`xnode.activitypub.retry`.

Throughput (issue 4): finding due rows fairly (a few per host) means ranking
every pending row, which costs tens of milliseconds with thousands pending, so
the worker reads up to ``PREFETCH`` due rows at a time into a ready list and
hands them out as slots free up. The list is short-lived: it is re-read when
new rows are queued, after ``READY_MAX_AGE_S``, and a host's entries are
dropped as soon as it fails, so the circuit breaker and Retry-After pauses
apply from the next read on. The sending account is cached briefly, and the
signer prepares each activity's body once per fan-out. Outcomes are written in
batches (``RECORD_DELAY_S``): a row whose answer came back but is not written
yet gives its slot up at once, and no read or hand-off takes it meanwhile.

Crash safety: a row becomes ``delivered`` only after a 2xx. A row that was
being sent when the process died is still ``pending`` and due, so it is sent
again on restart; receivers drop the duplicate by activity id.

Several processes (several ``xnode serve`` on one PostgreSQL database, or delivery
processes): every read of the queue claims the rows it returns for this process
(:func:`xnode.store.deliveries.due`, a lease of ``CLAIM_LEASE_S``), and rows queued
here for a hand-off are inserted already claimed, so each row is sent by one process.
The in-memory in-flight set keeps this process from sending its own claimed rows
twice. A process's id (``owner``) is stable across restarts (host, listen address,
shard), so a restarted process takes its old claims back at once instead of waiting
for their leases to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple

from aiohttp import web

import xnode
from federation.http import Fetcher, FetchError, FetchSettings, ForbiddenAddress, InvalidURL
from xnode import faults
from xnode.accounts.models import Account
from xnode.activitypub import retry
from xnode.activitypub.signing import Signer
from xnode.child_process import serving_process
from xnode.clock import Clock
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import deliveries as store
from xnode.store import domain_blocks
from xnode.store.database import Connection, Database
from xnode.store.deliveries import HostStatus, HostSummary, NewDelivery
from xnode.store.shards import Shard

log = logging.getLogger(__name__)

LocalInbox = Callable[[dict[str, Any], Account], Awaitable[None]]

PER_HOST_LIMIT = 4
GLOBAL_LIMIT = 32
MAX_IDLE_S = 60.0
"""Longest the worker sleeps without a wake-up (a safety net; enqueue wakes it)."""
ERROR_PAUSE_S = 5.0
PURGE_INTERVAL_S = 3600.0
PREFETCH = 512
"""Due rows read into the ready list at a time."""
SHARED_PREFETCH = 4 * 32
"""The same on PostgreSQL, where several processes may send: every row read is claimed, so
a process reads about what it can send soon (four rounds of ``GLOBAL_LIMIT``) and leaves
the rest of a fan-out to the others."""
WAKE_CHANNEL = "xnode_deliveries"
"""PostgreSQL: a process that queued rows for any process to send wakes the others here
(payload: its owner id), so they need not wait for their next look at the queue."""
READ_AHEAD_PER_HOST = 64
"""Rows per host in the ready list at most (the per-host limit applies when sending)."""
REREAD_MIN_S = 0.05
"""Least time between reads made only because the ready list waits for busy hosts."""
HANDOFF_MAX = 16
"""New rows up to this many go straight to the ready list instead of waiting for a read."""
RECENT_ATTEMPTS = 1024
"""Finished attempts remembered, so a handed-off row is never sent twice."""
RECORD_DELAY_S = 0.01
"""Outcomes are written together, at most this long after the first of a batch finished."""
RECORD_BATCH_MAX = 256
RECORD_TRIES = 3
"""Tries at writing a batch of outcomes (the transaction is all or nothing: safe to repeat)."""
RECORD_RETRY_PAUSE_S = 0.05
"""A batch of outcomes this large is written at once."""
BORN_CLAIMED_MAX = 10_000
"""Ids of rows inserted claimed whose queued() has not come (their transaction failed):
forgotten past this many."""
READY_MAX_AGE_S = 2.0
"""The ready list is re-read after this long, so admin changes (suspensions, retries) show."""
SENDER_CACHE_S = 5.0
"""How long a sending account's row is reused between deliveries (one fan-out, roughly)."""
CLAIM_LEASE_S = 300.0
"""How long a claimed row is this process's alone; a dead process's rows wait this long for
another process (unless it restarts: same owner).

No renewal is needed, unlike the inbox's batches (:data:`xnode.activitypub.inbox.CLAIM_RENEW_S`),
because nothing holds a claimed row for long: a read-ahead row is claimed again at each
re-read of the ready list (every ``READY_MAX_AGE_S`` while a slot frees up, and slots free
up as sends end); a row in flight is one signed POST, two when double-knocking, each
within the HTTP client's deadline (``federation.http.DEFAULT_TIMEOUT_S``, 10 s for the
whole exchange, redirects included), then waits ``RECORD_DELAY_S`` or so for its outcome
write. A minute at the very most, against a lease five times that."""
KEEP_FINISHED_S = 30 * 24 * 3600.0
"""Delivered and failed rows are kept this long, for the post page and for Undo lookups."""


class Planned(NamedTuple):
    """What queueing one activity takes (:meth:`DeliveryQueue.plan`): its rows, and
    whether local recipients get it handed over."""

    activity: dict[str, Any]
    sender: Account | None
    rows: tuple[NewDelivery, ...]
    local: bool


class _Answer(NamedTuple):
    """What one attempt came to, as :meth:`DeliveryQueue._record` writes it."""

    status: int | None
    error: str | None
    pause_s: float | None = None  # the pause the peer asked for (Retry-After)
    permanent: bool = False  # no retry can succeed
    learnt_scheme: str | None = None  # a signature scheme the host accepted, news to us


def fetch_settings_for(settings: Settings) -> FetchSettings:
    """The HTTP client settings for a node: its trust and address policy, our User-Agent.

    The User-Agent names the node's URL, as Mastodon's does, so a peer's admin
    who sees our traffic knows whom to contact.
    """
    return FetchSettings(
        allow_private_addresses=settings.allow_private_addresses,
        ca_file=settings.data_dir / settings.ca_file if settings.ca_file else None,
        user_agent=f"xnode/{xnode.__version__} (+{settings.base_url}/)",
    )


class DeliveryQueue:
    """Queues activities for remote inboxes and delivers them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        signer: Signer,
        fetch_settings: FetchSettings,
        local_inbox: LocalInbox,
        *,
        fetcher: Fetcher | None = None,
        rng: retry.Random | None = None,
        per_host_limit: int = PER_HOST_LIMIT,
        global_limit: int = GLOBAL_LIMIT,
        shard: Shard | None = None,
        owner: str | None = None,
    ) -> None:
        """Create the queue.

        Args:
            db: The node's database.
            settings: The node's settings.
            clock: Time source (tests pass a FakeClock).
            signer: Signs and sends one delivery.
            fetch_settings: Limits for the HTTP client made on first use.
            local_inbox: Processes an activity for local recipients in-process.
            fetcher: An HTTP client to use instead (tests map names to loopback).
            rng: Jitter source for the retry schedule.
            per_host_limit: Deliveries in flight per host at most.
            global_limit: Deliveries in flight in all at most.
            shard: Send only this delivery process's rows, k of n
                (``xnode.activitypub.delivery_process``); None: every row.
            owner: This process's id in row claims (default: :func:`process_owner`).
        """
        self.db = db
        self.settings = settings
        self.clock = clock
        self.signer = signer
        self.fetch_settings = fetch_settings
        self.local_inbox = local_inbox
        self.rng: retry.Random = rng or random.Random()
        self.per_host_limit = per_host_limit
        self.global_limit = global_limit
        self.shard = shard
        self.prefetch = SHARED_PREFETCH if db.dialect == "postgres" else PREFETCH
        self.owner = owner or process_owner(settings, "deliveries" if shard is None else
                                            f"deliveries-{shard[0]}of{shard[1]}")
        self._fetcher = fetcher
        self._owns_fetcher = fetcher is None
        self._working = False  # run_forever is running in this process
        self._paused = False  # the delivery processes send for now (pause())
        self._idle = asyncio.Event()  # set while nothing is in flight or unrecorded
        self._idle.set()
        self._wake = asyncio.Event()
        self._in_flight: dict[int, str] = {}  # delivery id -> host
        self._claim_lock = asyncio.Lock()
        # Due rows read ahead, in due order, not yet handed out: id -> (row, host failures).
        self._ready: dict[int, tuple[store.Delivery, int]] = {}
        self._ready_read_at = -float("inf")  # time.monotonic(): staleness is about real time
        self._ready_complete = True  # the last read found every due row
        # Called when rows were queued or made due: a process that queues but
        # does not send (the inbox process; the serving process when delivery
        # processes send) tells the sending processes this way.
        self.on_queued: Callable[[], None] | None = None
        # Called with how many rows were queued or sent here: the load that starts
        # the delivery processes (xnode.activitypub.helper_pool).
        self.on_load: Callable[[int], None] | None = None
        self._reread = True  # new rows were queued, or a test/tool asks for a fresh look
        self._attempted: deque[int] = deque(maxlen=RECENT_ATTEMPTS)
        self._unrecorded: set[int] = set()  # answered, outcome not written yet
        self._born_claimed: set[int] = set()  # inserted claimed, queued() not called yet
        self._outcomes: list[store.Outcome] = []  # the batch being gathered
        self._outcomes_written: asyncio.Future[None] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._senders: dict[int, tuple[float, Account]] = {}
        self._last_purge = 0.0
        self._answers = 0  # answers had, counted only for fault injection (crash tests)

    @property
    def working(self) -> bool:
        """Whether this process's worker is sending (not when delivery processes send)."""
        return self._working and not self._paused

    async def pause(self) -> None:
        """Stop sending (delivery processes take over): no new claims, and return once the
        sends in flight have been answered and their outcomes written."""
        self._paused = True
        # A read in progress finishes (its rows go in flight) before the wait below: its
        # rows must be sent and recorded here, not released under the sends.
        async with self._claim_lock:
            self._ready.clear()
            self._reread = True
        while self._in_flight or self._unrecorded:
            self._idle.clear()
            await self._idle.wait()
        await self._write_outcomes_now()
        # Rows read ahead but not sent: the processes taking over must not wait for
        # their leases.
        await store.release(self.db, self.owner)

    def resume(self) -> None:
        """Send again from this process (the delivery processes stopped)."""
        self._paused = False
        self.wake()

    @property
    def fetcher(self) -> Fetcher:
        """The HTTP client, made on first use (aiohttp wants a running loop)."""
        if self._fetcher is None:
            self._fetcher = Fetcher(self.fetch_settings)
        return self._fetcher

    async def close(self) -> None:
        """Close the HTTP client if the queue made it."""
        if self._owns_fetcher and self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    def wake(self) -> None:
        """Make the worker look for due deliveries now, here and where else it runs."""
        self._reread = True
        self._wake.set()
        if self.on_queued is not None:
            self.on_queued()

    async def _wake_others(self) -> None:
        """Tell the other serving processes' workers rows are due (PostgreSQL only)."""
        if self.db.dialect != "postgres":
            return
        try:
            await self.db.notify(WAKE_CHANNEL, self.owner)
        except Exception:
            # The rows are queued: the others find them at their next look anyway.
            log.exception("waking the other processes' delivery workers failed")

    def _heard_wake(self, owner: str) -> None:
        if owner != self.owner and self.working:
            self._reread = True
            self._wake.set()

    # --- queueing ------------------------------------------------------------------

    async def plan(
        self,
        activity: dict[str, Any],
        sender: Account | None,
        recipients: Iterable[Account],
        *,
        post_id: int | None = None,
        inboxes: Iterable[str] = (),
    ) -> Planned:
        """The delivery rows an activity needs (see :meth:`enqueue`), not written yet."""
        wanted: dict[str, None] = {}
        local = False
        for account in recipients:
            if account.is_local:
                local = local or sender is None or account.id != sender.id
            elif not account.is_deleted and not account.is_suspended and account.delivery_inbox:
                wanted[account.delivery_inbox] = None
        for inbox in inboxes:
            wanted[inbox] = None
        suspended = await domain_blocks.suspended_domains(self.db)
        payload = json.dumps(activity, ensure_ascii=False)
        rows = tuple(
            NewDelivery(activity["id"], sender.id if sender else None, post_id, inbox, payload)
            for inbox in wanted
            if not any(domain_blocks.domain_covers(d, store.host_of(inbox)) for d in suspended)
        )
        return Planned(activity, sender, rows, local)

    async def insert_planned(
        self, conn: Connection, planned: Sequence[Planned]
    ) -> dict[int, NewDelivery]:
        """Write planned rows inside the caller's transaction (an outbox claim's).

        Call :meth:`queued` with the result once the transaction has committed.
        """
        rows = [row for plan in planned for row in plan.rows]
        now = self.clock.now()
        claim = self._insert_claim(len(rows), now)
        added = await store.insert_rows(conn, rows, now, claim)
        if claim is not None:
            # What was decided here, for queued(): working may change before it runs.
            if len(self._born_claimed) > BORN_CLAIMED_MAX:
                self._born_claimed.clear()  # ids of transactions that never committed
            self._born_claimed.update(added)
        return added

    def _insert_claim(self, rows: int, now: float) -> store.Claim | None:
        """The claim rows are queued with when this process may hand them off itself.

        The hand-off (:meth:`_hand_off`) sends rows from memory, without a read that
        would claim them, so they are born claimed; a larger batch is left for any
        process's read (a fan-out is shared by every process sending).
        """
        if not self.working or self.shard is not None or rows > HANDOFF_MAX:
            return None
        return store.Claim(self.owner, now + CLAIM_LEASE_S)

    async def queued(
        self, added: dict[int, NewDelivery], planned: Sequence[Planned], *, resend: bool = False,
        claimed: bool | None = None,
    ) -> None:
        """After rows were committed: get them sent, and hand local recipients their copy.

        ``claimed``: whether the rows were inserted claimed by this process (default:
        as :meth:`insert_planned` decided for them); only such rows are handed off, and
        if this process stopped sending since, their claims are given up.
        """
        if claimed is None:
            # As insert_planned decided, not as it would decide now: this process may
            # have stopped sending in between (pause()).
            claimed = not self._born_claimed.isdisjoint(added)
            self._born_claimed.difference_update(added)
        if added and self.on_load is not None:
            self.on_load(len(added))
        if added:
            if resend or not claimed or not await self._hand_off(added, self.clock.now()):
                if claimed and not self.working:
                    # Queued claimed by this process, which has stopped sending since the
                    # claim was decided (pause(): the delivery processes took over), and
                    # whose release may have run before these rows were committed: give
                    # the claims up, or the rows would wait out the lease unsent.
                    await store.release_rows(self.db, self.owner, added)
                self.wake()
                await self._wake_others()
            elif self.on_queued is not None:
                self.on_queued()
        for plan in planned:
            if plan.local and plan.sender is not None:
                try:
                    await self.local_inbox(plan.activity, plan.sender)
                except Exception:
                    # The sender's action already succeeded; a local hiccup must not undo it.
                    log.exception("local delivery of %s failed", plan.activity.get("id"))

    async def enqueue(
        self,
        activity: dict[str, Any],
        sender: Account | None,
        recipients: Iterable[Account],
        *,
        post_id: int | None = None,
        inboxes: Iterable[str] = (),
        resend: bool = False,
    ) -> int:
        """Queue an activity for its recipients' servers.

        Remote recipients are reached at their shared inbox when they have one,
        else their own, one row per distinct inbox (re-queueing the same
        activity for the same inbox is a no-op). Servers under a ``suspend``
        block are skipped. Local recipients are handed to ``local_inbox`` once.

        Local people's own actions do not come here but through the outbox
        table (:mod:`xnode.activitypub.outbox`), which queues their rows in
        the transaction that claims the entry; this is for answers the inbox
        sends while handling an activity (an Accept), which the inbox queue
        runs again if the process dies first.

        Args:
            activity: The activity JSON; its ``id`` keys the rows.
            sender: The local account it is from (None: the instance actor).
            recipients: Accounts to reach, local or remote.
            post_id: The post it is about, for the author's delivery status.
            inboxes: Extra inbox URLs (e.g. everyone who got the original of a Delete).
            resend: Send again where this activity was already delivered (or given
                up on); without it, queueing an activity twice sends it once.

        Returns:
            How many new delivery rows were queued.
        """
        planned = await self.plan(activity, sender, recipients, post_id=post_id, inboxes=inboxes)
        now = self.clock.now()
        claim = None if resend else self._insert_claim(len(planned.rows), now)
        added = await store.insert_many(self.db, planned.rows, now, resend=resend, claim=claim)
        await self.queued(added, [planned], resend=resend, claimed=claim is not None)
        return len(added)

    async def _hand_off(self, fresh: dict[int, NewDelivery], now: float) -> bool:
        """Put just-queued rows on the ready list, sparing the worker a read of the queue.

        A DM or a reply goes to a few inboxes; reading the due rows back costs a
        reader round trip and, under load, several loop iterations before the
        send starts (issue 5). Only when the ready list holds every due row
        already (so order and limits stay exact), for a few rows, to hosts that
        are not paused. Returns False when the worker must read the queue instead.
        """
        if (
            not self.working  # no worker here to take them (other processes send)
            or self.shard is not None
            or len(fresh) > HANDOFF_MAX
            or not self._ready_complete
            or self._reread
            or self._claim_lock.locked()  # a read in progress would overwrite the list
        ):
            return False
        ready: dict[int, tuple[store.Delivery, int]] = {}
        for delivery_id, row in fresh.items():
            host = store.host_of(row.inbox_url)
            health = await store.host_health(self.db, host)
            if health is not None and any(
                until is not None and until > now
                for until in (health.circuit_open_until, health.retry_after_until)
            ):
                return False
            if (
                delivery_id in self._in_flight
                or delivery_id in self._unrecorded
                or delivery_id in self._attempted
            ):
                continue  # a read since the insert found it already
            delivery = store.Delivery(
                id=delivery_id, activity_id=row.activity_id,
                sender_account_id=row.sender_account_id, post_id=row.post_id,
                inbox_url=row.inbox_url, host=host, payload=row.payload, state="pending",
                attempts=0, next_attempt_at=now, last_status=None, last_error=None,
                created_at=now, delivered_at=None,
            )  # fmt: skip
            ready[delivery_id] = (delivery, health.consecutive_failures if health else 0)
        self._ready.update(ready)
        self._wake.set()
        return True

    # --- working -------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[store.Delivery]:
        """Pick due rows that fit the concurrency limits and mark them in flight."""
        async with self._claim_lock:
            if self._paused:  # checked under the lock: pause() takes it too
                return []
            room = min(limit, self.global_limit - len(self._in_flight))
            if room <= 0:
                return []
            reread = self._reread or time.monotonic() - self._ready_read_at > READY_MAX_AGE_S
            if reread:
                await self._read_ready()
            chosen = self._take_ready(room)
            if (
                len(chosen) < room
                and not self._ready_complete
                and time.monotonic() - self._ready_read_at >= REREAD_MIN_S
            ):
                # What is left waits for busy hosts, and the database holds more:
                # read again rather than leave slots idle.
                await self._read_ready()
                chosen += self._take_ready(room - len(chosen))
            return chosen

    def _take_ready(self, room: int) -> list[store.Delivery]:
        """Up to ``room`` read-ahead rows whose hosts have a free slot, now in flight."""
        load = Counter(self._in_flight.values())
        chosen: list[store.Delivery] = []
        for delivery_id, (delivery, host_failures) in list(self._ready.items()):
            if len(chosen) >= room:
                break
            cap = retry.host_concurrency(host_failures, self.per_host_limit)
            if load[delivery.host] >= cap:
                continue
            load[delivery.host] += 1
            del self._ready[delivery_id]
            self._in_flight[delivery.id] = delivery.host
            chosen.append(delivery)
        return chosen

    async def _read_ready(self) -> None:
        self._reread = False
        now = self.clock.now()
        candidates = await store.due(
            self.db, now, per_host=READ_AHEAD_PER_HOST, limit=self.prefetch,
            exclude=[*self._in_flight, *self._unrecorded], shard=self.shard,
            claim=store.Claim(self.owner, now + CLAIM_LEASE_S),
        )
        self._ready = {delivery.id: (delivery, failures) for delivery, failures in candidates}
        self._ready_read_at = time.monotonic()
        per_host = Counter(delivery.host for delivery, _ in candidates)
        # One query for the hosts' signature schemes instead of one per first contact.
        await self.signer.prime_schemes(list(per_host))
        # Complete only if nothing was cut off, neither by the limit nor per host.
        self._ready_complete = len(candidates) < self.prefetch and all(
            n < READ_AHEAD_PER_HOST for n in per_host.values()
        )

    def _drop_ready_host(self, host: str) -> None:
        """Forget a host's read-ahead rows (it failed: the next read applies its pause)."""
        self._ready = {k: v for k, v in self._ready.items() if v[0].host != host}

    async def run_due(self, limit: int = 100) -> int:
        """Send the deliveries due now (within the limits) and wait for them.

        Returns:
            How many deliveries were attempted.
        """
        self._reread = True  # callers (tests, tools) expect what is due right now
        claimed = await self._claim(limit)
        await asyncio.gather(*(self._attempt(d) for d in claimed))
        return len(claimed)

    async def run_forever(self, app: web.Application | None = None) -> None:
        """The worker: send due deliveries as they come, until cancelled.

        Meant as a background task started from the application's
        ``cleanup_ctx``; cancelling it cancels the sends in flight, which
        stay pending and go out after the restart.
        """
        tasks: set[asyncio.Task[None]] = set()
        self._working = True
        # The HTTP session now rather than at the first delivery: loading the
        # system's CA certificates takes tens of milliseconds, which would
        # otherwise delay the first fan-out after a start.
        _ = self.fetcher.session
        if self.db.dialect == "postgres":
            try:
                await self.db.listen(WAKE_CHANNEL, self._heard_wake)
            except Exception:
                log.exception("listening for other processes' deliveries failed (polling only)")

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._wake.set()  # a slot is free: more may fit now

        try:
            while True:
                # Cleared before looking, so a wake-up during the look is not lost.
                self._wake.clear()
                try:
                    for delivery in await self._claim(self.global_limit):
                        task = asyncio.create_task(self._attempt(delivery))
                        tasks.add(task)
                        task.add_done_callback(finished)
                    await self._purge_now_and_then()
                    # While sends are in flight, each one finishing wakes the loop;
                    # the next due time only matters once all is quiet.
                    if tasks:
                        pause = MAX_IDLE_S
                    elif not self._ready_complete:
                        pause = REREAD_MIN_S  # more is due; the last read was just now
                    else:
                        pause = await self._idle_s()
                except Exception:
                    log.exception("delivery worker iteration failed")
                    pause = ERROR_PAUSE_S
                # Not wait_for: in Python 3.11 it drops a cancellation that arrives
                # as the event fires, and shutdown would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
        finally:
            self._working = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._write_outcomes_now()
            # A clean stop hands its claims back: other processes need not wait for
            # the leases (the database may be gone already at shutdown: best effort).
            with contextlib.suppress(Exception):
                await store.release(self.db, self.owner)
            await self.close()

    async def _idle_s(self) -> float:
        now = self.clock.now()
        wake_at = await store.next_wake_at(self.db, now, self.shard)
        if wake_at is None:
            return MAX_IDLE_S
        return min(max(wake_at - now, 0.05), MAX_IDLE_S)

    async def _purge_now_and_then(self) -> None:
        now = self.clock.now()
        if now - self._last_purge >= PURGE_INTERVAL_S:
            self._last_purge = now
            purged = await store.purge_finished(self.db, now - KEEP_FINISHED_S)
            if purged:
                log.info("forgot %d finished deliveries", purged)

    async def _attempt(self, delivery: store.Delivery) -> None:
        """Send one delivery and write its outcome back."""
        try:
            answer = await self._send(delivery)
            if faults.enabled():
                self._answers += 1
                faults.point(f"after-sends:{self._answers}")
            if self.on_load is not None:
                self.on_load(1)
            # The slot is free once the peer has answered; until the outcome is
            # written the row stays out of reads, so it is not sent twice.
            self._unrecorded.add(delivery.id)
            self._in_flight.pop(delivery.id, None)
            self._wake.set()
            await self._record(delivery, answer)
        except Exception:
            # A database problem while recording: the row stays pending and is retried.
            log.exception("recording delivery %d failed", delivery.id)
        finally:
            self._in_flight.pop(delivery.id, None)
            self._unrecorded.discard(delivery.id)
            self._attempted.append(delivery.id)
            if not self._in_flight and not self._unrecorded:
                self._idle.set()

    async def _send(self, delivery: store.Delivery) -> _Answer:
        """What one attempt came to (nothing here raises)."""
        if await domain_blocks.url_is_suspended(self.db, delivery.inbox_url):
            # A suspension cancels what is queued when it is made, and planning skips
            # suspended servers, but planning reads a cache (up to a second old, or until
            # another process's NOTIFY arrives): rows queued in that moment end here.
            return _Answer(None, "the server is suspended on this node", permanent=True)
        sender = None
        if delivery.sender_account_id is not None:
            sender = await self._sender(delivery.sender_account_id)
            if sender is None:
                return _Answer(None, "the sending account no longer exists", permanent=True)
        try:
            result = await self.signer.post_payload(
                self.fetcher, sender, delivery.inbox_url, delivery.payload
            )
        except (InvalidURL, ForbiddenAddress) as exc:
            return _Answer(None, str(exc), permanent=True)  # no retry makes this URL acceptable
        except (json.JSONDecodeError, UnicodeError) as exc:
            # A payload that cannot be read or encoded never will be: no retries.
            return _Answer(None, f"the queued activity cannot be sent: {exc!r}", permanent=True)
        except FetchError as exc:
            return _Answer(None, str(exc) or type(exc).__name__)
        except Exception as exc:
            log.exception("delivery %d to %s crashed", delivery.id, delivery.inbox_url)
            return _Answer(None, f"internal error: {exc!r}")
        ok = 200 <= result.status < 300
        return _Answer(
            result.status, None if ok else f"HTTP {result.status}", result.retry_after_s,
            learnt_scheme=result.scheme if result.learnt else None,
        )

    async def _sender(self, account_id: int) -> Account | None:
        """The sending account, reused for ``SENDER_CACHE_S``; a fan-out asks a lot.."""
        now = time.monotonic()
        cached = self._senders.get(account_id)
        if cached is not None and now - cached[0] < SENDER_CACHE_S:
            return cached[1]
        account = await account_store.get_account(self.db, account_id)
        if len(self._senders) > 1000:
            self._senders.clear()  # bounded; only recent senders matter
        if account is not None:
            self._senders[account_id] = (now, account)
        return account

    async def _record(self, delivery: store.Delivery, answer: _Answer) -> None:
        status, error, pause = answer.status, answer.error, answer.pause_s
        now = self.clock.now()
        attempts = delivery.attempts + 1
        outcome = "permanent" if answer.permanent else retry.classify(status)
        next_at = delivery.next_attempt_at
        if outcome == "delivered":
            state = "delivered"
        elif outcome == "permanent":
            state = "failed"
        elif retry.gives_up(attempts):
            state, error = "failed", f"{error} (gave up after {attempts} attempts)"
        else:
            state, next_at = "pending", retry.schedule(attempts, now, self.rng, pause)
        if status is not None and not retry.counts_against_host(status):
            host_up: bool | None = True
        elif outcome == "retry":
            host_up = False
        else:
            host_up = None  # e.g. a refused address: says nothing about the host
        if host_up is False or pause is not None:
            # The host is in trouble or asked for a pause: its read-ahead rows go, so
            # the breaker and Retry-After apply from the next read on.
            self._drop_ready_host(delivery.host)
        # Successes are routine (thousands per post); problems are what admins look for.
        log.log(logging.DEBUG if state == "delivered" else logging.INFO,
                "delivery %d of %s to %s: %s (%s)", delivery.id, delivery.activity_id,
                delivery.inbox_url, state, error or status)
        attempt = store.Attempt(
            delivery.id, delivery.host, state, attempts, status, error, next_at, now
        )
        await self._write_outcome(
            store.Outcome(
                attempt, host_up, None if pause is None else now + pause, answer.learnt_scheme
            )
        )

    async def _write_outcome(self, outcome: store.Outcome) -> None:
        """Add an outcome to the batch being gathered; return once the batch is written.

        Raises:
            Exception: the batch's transaction failed (its rows stay pending).
        """
        loop = asyncio.get_running_loop()
        if self._outcomes_written is None:
            self._outcomes_written = loop.create_future()
            self._flush_timer = loop.call_later(RECORD_DELAY_S, self._start_flush)
        written = self._outcomes_written
        self._outcomes.append(outcome)
        if len(self._outcomes) >= RECORD_BATCH_MAX or outcome.host_up is False or (
            outcome.retry_after_until is not None
        ):
            # Trouble is written at once: the next read must see the breaker or the pause.
            self._start_flush()
        # Shielded: a cancelled attempt (shutdown) must not cancel its batch's write.
        await asyncio.shield(written)

    def _start_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        outcomes, written = self._outcomes, self._outcomes_written
        self._outcomes, self._outcomes_written = [], None
        if written is None:
            return
        task = asyncio.create_task(self._flush(outcomes, written))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, outcomes: list[store.Outcome], written: asyncio.Future[None]) -> None:
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                await store.record_attempts(self.db, outcomes, retry.circuit_open_until)
            except asyncio.CancelledError:
                written.cancel()
                raise
            except Exception as exc:
                # Once more before giving up: with several processes writing the same
                # hosts' rows, PostgreSQL may abort one of two transactions as a deadlock,
                # and an unwritten outcome means the row is sent again.
                if attempt < RECORD_TRIES:
                    log.info("writing %d outcomes failed (%r); trying again", len(outcomes), exc)
                    await asyncio.sleep(RECORD_RETRY_PAUSE_S * attempt)
                    continue
                written.set_exception(exc)
            else:
                written.set_result(None)
            return

    async def _write_outcomes_now(self) -> None:
        """Write the batch being gathered, and wait for every batch in progress."""
        self._start_flush()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    # --- reporting -----------------------------------------------------------------

    async def status_for_post(self, post_id: int) -> list[HostStatus]:
        """Per server, ``(host, state, attempts, last_error)`` of a post's deliveries."""
        return await store.status_for_post(self.db, post_id)

    async def queue_summary(self) -> list[HostSummary]:
        """Per host with work left or failures: pending and failed counts and health."""
        return await store.queue_summary(self.db)

    async def retry_host(self, host: str) -> int:
        """Make a host's pending and failed deliveries due now and close its circuit.

        Returns:
            How many deliveries were reset.
        """
        reset = await store.retry_host(self.db, host.strip().lower(), self.clock.now())
        if reset:
            self.wake()
            await self._wake_others()
        return reset


def process_owner(settings: Settings, role: str) -> str:
    """This process's id in queue claims: the machine, the address it serves, its role.

    Stable across restarts on purpose (a restarted process takes back what it had
    claimed at once), and different for every process serving a node at the same time:
    two processes on one machine cannot listen on the same address.
    """
    return f"{serving_process(settings)}/{role}"


DELIVERY = web.AppKey("ap_delivery", DeliveryQueue)
"""The node's delivery queue in the application (set by the wiring)."""


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: run the delivery worker while the application serves."""
    task = asyncio.create_task(app[DELIVERY].run_forever(app), name="deliveries")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
