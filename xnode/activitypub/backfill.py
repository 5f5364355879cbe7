"""What the node reads of other servers when someone looks: profiles and threads.

A remote person's profile would be empty if it showed only what happened to
reach this node. On first view (and again after ``PROFILE_REFRESH_S``) the
node reads their server's own view instead:

- the counts their server reports (``totalItems`` of followers, following,
  outbox);
- their recent public posts, from the first page of their outbox;
- their pinned posts, from their featured collection (as Mastodon does).

A thread of a remote post is completed the same way from the post's
``replies`` collection, as Mastodon 4.5 does: the replies the node has not
seen, each fetched from its own server (never believed as embedded), bounded
in count, depth and time.

Everything here is bounded (items per collection, total fetches, a deadline),
runs at most once at a time per account or post, and is never required: a
page waits ``PAGE_WAIT_S`` at most, then shows what is known while the work
goes on. Posts read this way notify nobody; they are old news.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from federation.actors import InvalidActor
from federation.jsonld import id_of
from federation.objects import (
    InvalidObject,
    ParsedCollection,
    parse_collection,
    parse_note,
    type_of,
)
from federation.urls import same_origin
from xnode.accounts.models import Account
from xnode.activitypub.featured_handlers import MAX_REMOTE_PINS
from xnode.activitypub.resolver import MAX_REPLY_FETCH_DEPTH, ResolveError, Resolver
from xnode.clock import Clock
from xnode.posts.models import Post
from xnode.store import accounts as account_store
from xnode.store import posts as post_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

PROFILE_REFRESH_S = 6 * 3600.0
REPLIES_REFRESH_S = 15 * 60.0
OUTBOX_POSTS = 20
"""Recent posts read from an outbox's first page at most."""
MAX_REPLIES = 40
"""Replies fetched for one thread at most."""
REPLIES_DEPTH = 2
"""Replies to replies are followed this deep."""
DEADLINE_S = 20.0
"""The whole of one refresh, whatever the other server does."""
PAGE_WAIT_S = 2.5
"""How long a page waits for a refresh before showing what is known."""


class Backfill:
    """Reads remote profiles' posts and counts, and threads' replies, on demand."""

    def __init__(self, db: Database, resolver: Resolver, clock: Clock) -> None:
        self.db = db
        self.resolver = resolver
        self.clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._replies_checked: dict[int, float] = {}

    async def close(self) -> None:
        """Stop the refreshes in progress."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    # --- entry points -------------------------------------------------------------------

    async def for_profile(self, account: Account) -> None:
        """Refresh a remote profile if it is due; wait a moment for it, never long."""
        if account.is_local or account.is_deleted or account.is_suspended:
            return
        fresh = account.backfilled_at is not None and (
            self.clock.now() - account.backfilled_at < PROFILE_REFRESH_S
        )
        if not fresh:
            await self._run(f"profile:{account.id}", lambda: self._profile(account))

    async def for_thread(self, post: Post) -> None:
        """Fetch the replies of a remote post that the node has not seen, if it is due."""
        if post.local or post.uri is None or post.is_deleted or post.visibility == "direct":
            return
        checked = self._replies_checked.get(post.id)
        now = time.monotonic()
        if checked is not None and now - checked < REPLIES_REFRESH_S:
            return
        self._replies_checked[post.id] = now
        if len(self._replies_checked) > 10_000:
            self._replies_checked.clear()  # bounded; only recent threads matter
        await self._run(f"replies:{post.id}", lambda: self._replies(post))

    async def _run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._bounded(key, work), name=f"backfill {key}")
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        # The page shows what is known after a moment; the work goes on meanwhile.
        done, _ = await asyncio.wait({task}, timeout=PAGE_WAIT_S)
        if task in done and not task.cancelled() and task.exception() is not None:
            log.debug("backfill %s failed: %r", key, task.exception())

    async def _bounded(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(DEADLINE_S):
                await work()
        except TimeoutError:
            log.info("backfill %s stopped at its deadline", key)
        except (ResolveError, InvalidObject, InvalidActor) as exc:
            log.info("backfill %s: %s", key, exc)

    # --- profiles -----------------------------------------------------------------------

    async def _profile(self, account: Account) -> None:
        counts = {
            "followers_count": await self._total(account.followers_url, account),
            "following_count": await self._total(account.following_url, account),
            "statuses_count": None,
        }
        if account.outbox_url and same_origin(account.outbox_url, account.uri or ""):
            outbox = await self._collection(account.outbox_url)
            if outbox is not None:
                counts["statuses_count"] = outbox.total_items
                await self._recent_posts(account, outbox)
        if account.featured_url and same_origin(account.featured_url, account.uri or ""):
            await self._pins(account)
        async with self.db.transaction() as conn:
            await account_store.set_remote_counts(conn, account.id, now=self.clock.now(),
                                                  **counts)  # fmt: skip

    async def _total(self, url: str | None, account: Account) -> int | None:
        if not url or not same_origin(url, account.uri or ""):
            return None
        collection = await self._collection(url)
        return collection.total_items if collection is not None else None

    async def _collection(self, url: str) -> ParsedCollection | None:
        try:
            return parse_collection(await self.resolver.fetch(url))
        except (ResolveError, InvalidObject) as exc:
            log.info("collection %s unavailable: %s", url, exc)
            return None

    async def _first_page_items(self, collection: ParsedCollection) -> list[Any]:
        """The items of a collection, or of its first page (fetched or embedded)."""
        if collection.items:
            return list(collection.items)
        first = collection.first
        if isinstance(first, Mapping):
            page = parse_collection(first)
        elif isinstance(first, str) and collection.id and same_origin(first, collection.id):
            fetched = await self._collection(first)
            if fetched is None:
                return []
            page = fetched
        else:
            return []
        return list(page.items)

    async def _recent_posts(self, account: Account, outbox: ParsedCollection) -> None:
        """The newest public posts of an outbox's first page (their Creates' notes)."""
        creates = [
            item for item in await self._first_page_items(outbox)
            if isinstance(item, Mapping) and type_of(item) == "Create"
        ]  # boosts and others: not the person's own posts
        # An outbox lists the newest first, and a stored post's id (which orders timelines)
        # is taken when it is stored: store the oldest first, or the profile reads backwards.
        for item in reversed(creates[:OUTBOX_POSTS]):
            await self._store_note(account, item.get("object"))

    async def _store_note(self, account: Account, doc: Any) -> Post | None:
        """Store a note of ``account`` from their own server's collection."""
        try:
            if isinstance(doc, Mapping) and same_origin(id_of(doc) or "", account.uri or ""):
                # Embedded by the author's own server, in a document fetched from it.
                note = parse_note(doc)
            elif isinstance(doc, str) and same_origin(doc, account.uri or ""):
                note = parse_note(await self.resolver.fetch(doc))
            else:
                return None
            if note.attributed_to != account.uri or not note.is_public:
                return None  # public and unlisted posts only (an outbox has no others)
            return await self.resolver.notes.store(
                note, account, depth=MAX_REPLY_FETCH_DEPTH, notify=False
            )
        except (ResolveError, InvalidObject) as exc:
            log.info("could not read a post of %s: %s", account.uri, exc)
            return None

    async def _pins(self, account: Account) -> None:
        assert account.featured_url is not None
        featured = await self._collection(account.featured_url)
        if featured is None:
            return
        pinned: list[int] = []
        for item in (await self._first_page_items(featured))[:MAX_REMOTE_PINS]:
            post = await self._store_note(account, item)
            if post is not None:
                pinned.append(post.id)
        async with self.db.transaction() as conn:
            await post_store.replace_pins(conn, account.id, pinned, self.clock.now())

    # --- threads ------------------------------------------------------------------------

    async def _replies(self, post: Post) -> None:
        budget = [MAX_REPLIES]
        await self._replies_of(post, depth=1, budget=budget)

    async def _replies_of(self, post: Post, *, depth: int, budget: list[int]) -> None:
        assert post.uri is not None
        doc = await self.resolver.fetch(post.uri)
        replies = doc.get("replies") if isinstance(doc, Mapping) else None
        if isinstance(replies, str):
            if not same_origin(replies, post.uri):
                return
            collection = await self._collection(replies)
        elif isinstance(replies, Mapping):
            collection = parse_collection(replies)
        else:
            return
        if collection is None:
            return
        found: list[Post] = []
        for item in await self._first_page_items(collection):
            if budget[0] <= 0:
                break
            reply_id = id_of(item)
            if reply_id is None or await post_store.post_by_uri(self.db, reply_id):
                continue
            budget[0] -= 1
            # Fetched from its own server, whatever was embedded (a reply may be anyone's).
            stored = await self.resolver.note(
                reply_id, depth=MAX_REPLY_FETCH_DEPTH, notify=False
            )
            if stored is not None and stored.in_reply_to_id == post.id:
                found.append(stored)
        if depth < REPLIES_DEPTH:
            for reply in found:
                if budget[0] <= 0 or reply.local:
                    break
                await self._replies_of(reply, depth=depth + 1, budget=budget)


BACKFILL = web.AppKey("ap_backfill", Backfill)
"""The node's backfill (set by the wiring)."""

