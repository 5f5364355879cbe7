"""Plugging federation into a node: builds the pieces, registers routes and workers.

Incoming: resolver (remote actors and posts), endpoints (WebFinger, NodeInfo,
actors, collections, objects), inbox (verify → persist → 202 → process).
Outgoing: outbox (domain events → activities) → delivery queue (signed,
retried, per host) → remote inboxes. Local recipients never go over HTTP: the
queue hands them straight to the inbox processor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from xnode.accounts.models import Account
from xnode.activitypub import endpoints, inbox
from xnode.activitypub.appkeys import CALL_SIGNALS, KEYRING, RESOLVER, SERIALIZER, URLS
from xnode.activitypub.backfill import BACKFILL, Backfill
from xnode.activitypub.call_signals import CallSignals
from xnode.activitypub.delivery import (
    DELIVERY,
    DeliveryQueue,
    fetch_settings_for,
    process_owner,
    worker_ctx,
)
from xnode.activitypub.delivery_process import DeliveryProcesses
from xnode.activitypub.helper_pool import HELPER_POOL, HelperPool, pool_ctx
from xnode.activitypub.inbox import INBOX, INBOX_LINK, InboxProcessor
from xnode.activitypub.inbox_process import InboxProcessLink
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.outbox import OUTBOX, Outbox, sweeper_ctx
from xnode.activitypub.resolver import Resolver
from xnode.activitypub.serialize import Serializer
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.child_process import forget_earlier_states, keep_states_alive, serving_process
from xnode.errors import XnodeError
from xnode.events import EventBus
from xnode.live.relay import LiveRelay
from xnode.posts.content import Handle
from xnode.web.state import (
    CALLS,
    CLOCK,
    DB,
    EVENTS,
    LIVE,
    LIVE_FEEDS,
    POSTS,
    RELATIONSHIPS,
    SETTINGS,
)  # fmt: skip

log = logging.getLogger(__name__)

DELIVERY_PROCESSES = web.AppKey("ap_delivery_processes", DeliveryProcesses)
"""The delivery processes, when ``delivery_processes`` is set."""


LIVE_RELAY = web.AppKey("live_relay", LiveRelay)
"""Live events to and from the other serving processes (PostgreSQL only)."""


def _live_relay(app: web.Application) -> LiveRelay | None:
    """On PostgreSQL, where several processes may serve: their live events for the tabs and
    streams open here, and this process's for theirs (:mod:`xnode.live.relay`)."""
    db = app[DB]
    if db.dialect != "postgres":
        return None
    from xnode.api.stream_hub import STREAMS  # the API is wired before federation

    relayed = EventBus()  # other processes' events: for open tabs and streams only
    app[LIVE_FEEDS].subscribe(relayed)
    if STREAMS in app:
        app[STREAMS].subscribe_to(relayed)
    relay = app[LIVE_RELAY] = LiveRelay(db, relayed)
    relay.subscribe(app[EVENTS])

    async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
        await relay.start()
        yield
        await relay.stop()

    app.cleanup_ctx.append(relay_ctx)
    return relay


async def _helper_states_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, db = app[SETTINGS], app[DB]
    process = serving_process(settings)
    await forget_earlier_states(db, process)  # before the helpers report
    if not (settings.inbox_process or settings.delivery_processes):
        yield
        return
    task = asyncio.create_task(keep_states_alive(db, process), name="helper-states")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _serving_workers(app: web.Application, processor: InboxProcessor, queue: DeliveryQueue) -> None:
    """The serving process's workers, and its helper processes if it has any."""
    settings, db = app[SETTINGS], app[DB]
    # Helpers write their states afresh; this process's rows of an earlier run would
    # mislead (other serving processes' rows are theirs).
    app.cleanup_ctx.append(_helper_states_ctx)
    app.cleanup_ctx.append(worker_ctx)  # the delivery worker (paused while helpers send)
    live_relay = _live_relay(app)
    link = senders = None
    if settings.inbox_process:
        relayed = EventBus()  # what the inbox process did, for open tabs only
        app[LIVE_FEEDS].subscribe(relayed)
        if live_relay is not None:
            live_relay.subscribe(relayed)  # and for the other serving processes' tabs
        link = app[INBOX_LINK] = InboxProcessLink(settings, relayed, queue.wake, db=db)
        hub = app[LIVE]
        link.tabs_open = lambda: hub.has_tabs
        hub.on_tabs = link.set_tabs
    if settings.delivery_processes:
        senders = app[DELIVERY_PROCESSES] = DeliveryProcesses(
            settings, settings.delivery_processes, db=db
        )
        queue.on_queued = senders.wake
    if link is None and senders is None:
        app.cleanup_ctx.append(inbox.worker_ctx)
    else:
        pool = app[HELPER_POOL] = HelperPool(
            app, processor, queue, link=link, senders=senders,
            idle_stop_s=settings.helper_idle_stop_s,
        )  # fmt: skip
        if link is not None:
            processor.on_received = pool.inbox_work
        if senders is not None:
            queue.on_load = pool.delivery_work
        app.cleanup_ctx.append(pool_ctx)  # runs the inbox worker here when needed
    # What a crash left in the outbox goes out at start; later sweeps catch
    # entries another process recorded but could not queue.
    app.cleanup_ctx.append(sweeper_ctx)


def setup_federation(app: web.Application, role: str = "all") -> None:
    """Add ActivityPub to an application built by ``create_app``.

    ``role``: "all" is the serving process: every worker runs here, and the
    helper processes it is configured with (``inbox_process``,
    ``delivery_processes``) start when the load needs them
    (:mod:`xnode.activitypub.helper_pool`). "inbox" is the inbox process
    (:mod:`xnode.activitypub.inbox_process`): it handles the inbox queue when
    told to, and only queues deliveries.
    """
    settings, db, clock, events = app[SETTINGS], app[DB], app[CLOCK], app[EVENTS]
    urls = Urls(settings.base_url)
    keys = KeyRing(db, urls, clock)
    serializer = Serializer(urls, settings.domain)
    fetch = fetch_settings_for(settings)
    resolver = Resolver(db, settings, clock, urls, keys, fetch, events=events)

    async def deliver(
        activity: dict[str, Any], sender: Account, recipients: list[Account],
        post_id: int | None = None,
    ) -> None:
        await app[DELIVERY].enqueue(activity, sender, recipients, post_id=post_id)

    processor = InboxProcessor(
        db, settings, clock, events, resolver, app[POSTS], app[RELATIONSHIPS], serializer,
        deliver, owner=process_owner(settings, "inbox" if role == "all" else f"inbox-{role}"),
    )
    queue = DeliveryQueue(db, settings, clock, Signer(db, keys, clock), fetch, processor.handle)
    outbox = Outbox(db, settings, serializer, keys, app[POSTS], queue)
    outbox.subscribe(events)
    app[URLS], app[KEYRING], app[SERIALIZER], app[RESOLVER] = urls, keys, serializer, resolver
    app[INBOX], app[DELIVERY], app[OUTBOX] = processor, queue, outbox
    backfill = app[BACKFILL] = Backfill(db, resolver, clock)

    known = app[POSTS].resolve_handle

    async def resolve_mention(handle: Handle) -> Account | None:
        """Mentions of people not yet known here are looked up by WebFinger."""
        account = await known(handle)
        if account is not None or handle.domain is None:
            return account
        try:
            return await resolver.actor_by_handle(f"{handle.username}@{handle.domain}")
        except XnodeError as exc:
            log.info("mention @%s@%s not resolved: %s", handle.username, handle.domain, exc)
            return None

    app[POSTS].resolve_handle = resolve_mention
    endpoints.add_routes(app)
    inbox.add_routes(app)
    if role == "all":
        _serving_workers(app, processor, queue)
        # Calls ring tabs, and tabs are here: their signals are sent and taken here only.
        app[CALL_SIGNALS] = CallSignals(app[CALLS], resolver, Signer(db, keys, clock), urls, fetch)

    async def close(app: web.Application) -> None:
        if CALL_SIGNALS in app:
            await app[CALL_SIGNALS].close()
        await backfill.close()
        await resolver.close()
        await queue.close()

    app.on_cleanup.append(close)
