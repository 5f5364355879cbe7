"""Plugging federation into a node: builds the pieces, registers routes and workers.

Incoming: resolver (remote actors and posts), endpoints (WebFinger, NodeInfo,
actors, collections, objects), inbox (verify → persist → 202 → process).
Outgoing: outbox (domain events → activities) → delivery queue (signed,
retried, per host) → remote inboxes. Local recipients never go over HTTP: the
queue hands them straight to the inbox processor.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from xnode.accounts.models import Account
from xnode.activitypub import endpoints, inbox
from xnode.activitypub.delivery import DELIVERY, DeliveryQueue, fetch_settings_for, worker_ctx
from xnode.activitypub.delivery_process import DeliveryProcesses, processes_ctx
from xnode.activitypub.endpoints import KEYRING, RESOLVER, SERIALIZER, URLS
from xnode.activitypub.inbox import INBOX, INBOX_LINK, InboxProcessor
from xnode.activitypub.inbox_process import InboxProcessLink, link_ctx
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.outbox import OUTBOX, Outbox, sweeper_ctx
from xnode.activitypub.resolver import Resolver
from xnode.activitypub.serialize import Serializer
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.errors import XnodeError
from xnode.events import EventBus
from xnode.posts.content import Handle
from xnode.store import helper_processes
from xnode.store.shards import Shard
from xnode.web.state import CLOCK, DB, EVENTS, LIVE, POSTS, RELATIONSHIPS, SETTINGS

log = logging.getLogger(__name__)

DELIVERY_PROCESSES = web.AppKey("ap_delivery_processes", DeliveryProcesses)
"""The delivery processes, when ``delivery_processes`` is set."""


async def _helper_states_ctx(app: web.Application) -> AsyncIterator[None]:
    await helper_processes.forget_all(app[DB])
    yield


def setup_federation(app: web.Application, role: str = "all") -> None:
    """Add ActivityPub to an application built by ``create_app``.

    ``role``: "all" runs every worker here; "web" leaves the inbox queue to the
    inbox process (:mod:`xnode.activitypub.inbox_process`), which runs with
    "inbox": the inbox worker but not the delivery worker. With
    ``delivery_processes`` set, the delivery worker runs in those processes
    (:mod:`xnode.activitypub.delivery_process`) rather than here.
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
        deliver,
    )
    signer = Signer(db, keys, clock)
    queue = DeliveryQueue(db, settings, clock, signer, fetch, processor.handle)

    def sender_here(shard: Shard) -> DeliveryQueue:
        """A queue sending one shard from here (its delivery process was given up on)."""
        return DeliveryQueue(db, settings, clock, signer, fetch, processor.handle, shard=shard)

    outbox = Outbox(db, settings, serializer, keys, app[POSTS], queue)
    outbox.subscribe(events)
    app[URLS], app[KEYRING], app[SERIALIZER], app[RESOLVER] = urls, keys, serializer, resolver
    app[INBOX], app[DELIVERY], app[OUTBOX] = processor, queue, outbox

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
    if role in ("all", "inbox"):
        app.cleanup_ctx.append(inbox.worker_ctx)
    if role in ("all", "web"):
        # Helpers write their states afresh; rows of an earlier run would mislead.
        app.cleanup_ctx.append(_helper_states_ctx)
    if role in ("all", "web") and settings.delivery_processes:
        # This process only queues; the delivery processes send.
        senders = app[DELIVERY_PROCESSES] = DeliveryProcesses(
            settings, settings.delivery_processes, db=db, sender_here=sender_here
        )
        queue.on_queued = senders.wake
        app.cleanup_ctx.append(processes_ctx(senders))
    elif role in ("all", "web"):
        app.cleanup_ctx.append(worker_ctx)
    if role in ("all", "web"):
        # What a crash left in the outbox goes out at start; later sweeps catch
        # entries another process recorded but could not queue.
        app.cleanup_ctx.append(sweeper_ctx)
    if role == "web":
        relayed = EventBus()  # what the inbox process did, for open tabs only
        app[LIVE].subscribe(relayed)
        app[INBOX_LINK] = InboxProcessLink(
            app[SETTINGS], relayed, queue.wake, db=db,
            work_here=functools.partial(inbox.run_forever, app),
        )  # fmt: skip
        app.cleanup_ctx.append(link_ctx)

    async def close(app: web.Application) -> None:
        await resolver.close()
        await queue.close()

    app.on_cleanup.append(close)
