"""Fetching link previews in the background, once per URL, for local and remote posts alike.

A new post (written here or arriving from another server: both publish
:class:`~xnode.events.PostPublished`) that links a page gets a card: the node
fetches the first link's page with the SSRF-safe client (no private addresses,
redirects checked hop by hop, at most :data:`MAX_PAGE_BYTES` of an HTML answer,
within :data:`FETCH_TIMEOUT_S`), reads its head and stores the card by URL.
The event handler only starts a task: neither the post's creation nor any page
waits for another server. Posts rendered before the card arrived show none.

The cache is by URL: a second post linking the same page reuses the card; a
URL that made no card is not asked again for :data:`FAILURE_RETRY_S`; a card
is refreshed when a post links it again after :data:`REFRESH_S`. The card's
image is fetched into the remote media cache (and dropped from the card when
it is not an image we serve), and pages show it from ``/media/remote/preview/ID``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection
from urllib.parse import urlsplit

from federation.http import Fetcher, FetchError, FetchSettings
from xnode.clock import Clock
from xnode.errors import NotFound
from xnode.events import EventBus, PostEdited, PostPublished
from xnode.ids import new_id
from xnode.link_previews.extract import HTML_TYPES, clean_url, decode_page, first_link, parse_page
from xnode.link_previews.models import LinkPreview, PagePreview
from xnode.posts.service import PostService
from xnode.remote_media import RemoteMediaCache, Unavailable
from xnode.store import link_previews as preview_store
from xnode.store import posts as post_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 512 * 1024
"""Only the head matters, and it comes first: the rest of a longer page is never read."""
FETCH_TIMEOUT_S = 10.0
FAILURE_RETRY_S = 24 * 3600.0
"""A URL that made no card is not asked again for this long."""
REFRESH_S = 7 * 24 * 3600.0
"""A card older than this is fetched again when a new post links its URL."""
PURGE_EVERY_S = 3600.0
CONCURRENT_FETCHES = 4
MAX_PENDING = 200
"""Posts waiting for a card beyond this many are left without one (a flood of links)."""
MAX_VISIBILITY_CHECKS = 20
ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"


class LinkPreviewService:
    """Makes and finds preview cards for posts' links."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        fetch: FetchSettings,
        remote_media: RemoteMediaCache,
        posts: PostService,
        *,
        own_hosts: Collection[str],
        enabled: bool = True,
    ) -> None:
        self.db = db
        self.clock = clock
        self.remote_media = remote_media
        self.posts = posts
        self.own_hosts = frozenset(h.lower() for h in own_hosts)
        self.enabled = enabled
        # Replaceable before the first fetch (tests shorten the deadline, narrow the
        # address policy).
        self.fetch_settings = dataclasses.replace(
            fetch, timeout_s=FETCH_TIMEOUT_S, max_bytes=MAX_PAGE_BYTES, cut_off_bodies=True
        )
        self._fetcher: Fetcher | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(CONCURRENT_FETCHES)
        self._purged_at = 0.0
        self._stopped = False

    def subscribe(self, events: EventBus) -> None:
        """Look for a card whenever a post is published or edited (when previews are on)."""
        if self.enabled:
            events.subscribe(PostPublished, self._on_post)
            events.subscribe(PostEdited, self._on_post)

    async def _on_post(self, event: PostPublished | PostEdited) -> None:
        self.schedule(event.post_id, new=isinstance(event, PostPublished))

    def schedule(self, post_id: int, *, new: bool = False) -> None:
        """Find the post's card in the background; returns at once."""
        if self._stopped:
            return
        if len(self._tasks) >= MAX_PENDING:
            log.info("link previews: %d posts waiting, none for post %d", MAX_PENDING, post_id)
            return
        task = asyncio.create_task(self._run(post_id, new), name=f"link-preview-{post_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, post_id: int, new: bool) -> None:
        try:
            await self.update_post(post_id, new=new)
        except Exception:
            log.exception("link preview for post %d failed", post_id)

    async def idle(self) -> None:
        """Wait until every card being looked for is done (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Stop looking (before the database closes)."""
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    # --- which link --------------------------------------------------------------------

    async def link_of(self, post_id: int) -> str | None:
        """The URL whose card the post should show, or None.

        Notes only (articles are their own card, polls show no card, as on
        Mastodon), not direct messages, not boosts, not posts with media (their
        images are the picture), and never a mention, a hashtag or this node.
        """
        post = await post_store.get_post(self.db, post_id)
        if (
            post is None or "<a" not in post.content_html or post.is_deleted or post.is_boost
            or post.kind != "note" or post.visibility == "direct"
            or post.conversation_id is not None
        ):  # fmt: skip
            return None
        if first_link(post.content_html) is None:
            # Not even a link before the mentioned profiles are skipped (which can only
            # skip more): the usual post received, whose only links are mentions marked
            # as such, needs no read of its media, mentions and their accounts (three
            # round trips per activity on PostgreSQL).
            return None
        if (await post_store.media_of(self.db, [post.id])).get(post.id):
            return None
        mentioned = (await post_store.mentions_of(self.db, [post.id])).get(post.id, [])
        accounts = await post_store.get_accounts(self.db, mentioned)
        profiles = [u for a in accounts.values() for u in (a.url, a.uri) if u]
        url = first_link(post.content_html, skip=profiles)
        parts = urlsplit(url) if url is not None else None
        if parts is None or {parts.netloc.lower(), parts.hostname} & self.own_hosts:
            return None  # our own pages: nothing to learn from fetching ourselves
        return url

    async def update_post(self, post_id: int, *, new: bool = False) -> LinkPreview | None:
        """Give the post the card of its first link (fetching it if needed); the card or None.

        ``new``: the post was just published, so no card is linked to it yet and none
        is looked for to unlink (a query per post received, mostly without a link).
        """
        url = await self.link_of(post_id)
        if url is None:
            if not new and await preview_store.preview_id_of(self.db, post_id) is not None:
                async with self.db.transaction() as conn:
                    await preview_store.unlink_post(conn, post_id)
            return None
        preview_id = await self.preview_for(url)
        if preview_id is None:
            return None
        async with self.db.transaction() as conn:
            await preview_store.link_post(conn, post_id, preview_id)
        return await preview_store.get_preview(self.db, preview_id)

    # --- the cache ---------------------------------------------------------------------

    async def preview_for(self, url: str) -> int | None:
        """The id of ``url``'s card, fetching the page unless the cache answers; None if none."""
        lock = self._locks.setdefault(url, asyncio.Lock())
        try:
            # One fetch per URL at a time: a second post linking the same page waits for
            # the first one's answer and reuses it.
            async with lock:
                entry = await preview_store.entry_for(self.db, url)
                now = self.clock.now()
                if entry is not None:
                    age = now - entry.fetched_at
                    if age < (REFRESH_S if entry.ok else FAILURE_RETRY_S):
                        return entry.id if entry.ok else None
                page, error = await self._fetch(url)
                async with self.db.transaction() as conn:
                    if page is not None:
                        preview_id = await preview_store.save_page(conn, new_id(), url, page, now)
                    else:
                        preview_id = await preview_store.save_failure(
                            conn, new_id(), url, error, now
                        )
                await self._purge(now)
                entry = await preview_store.entry_for(self.db, url)
                return preview_id if entry is not None and entry.ok else None
        finally:
            if not lock.locked():
                self._locks.pop(url, None)

    async def _fetch(self, url: str) -> tuple[PagePreview | None, str]:
        """What ``url``'s page says of itself, or None and why not."""
        if self._fetcher is None:
            self._fetcher = Fetcher(self.fetch_settings)
        try:
            async with self._slots:
                response = await self._fetcher.get(url, headers={"Accept": ACCEPT})
        except FetchError as exc:
            log.info("link preview of %s: %s", url, exc)
            return None, str(exc) or type(exc).__name__
        if response.content_type not in HTML_TYPES:
            return None, f"not a page ({response.content_type or 'no type'})"
        page_url = clean_url(response.url) or url
        content_type = response.headers.get("Content-Type", "")
        text = decode_page(response.body, content_type)
        # html.parser is pure Python: half a megabyte of tags is not parsed on the loop.
        page = await asyncio.to_thread(parse_page, text, page_url)
        if page is None:
            return None, "the page names no title"
        if page.image_url is not None:
            page = await self._with_image(page)
        return page, ""

    async def _with_image(self, page: PagePreview) -> PagePreview:
        """The card with its image in the cache, or without an image we would not serve."""
        assert page.image_url is not None
        try:
            await self.remote_media.get(page.image_url, image_only=True)
        except Unavailable as exc:
            log.info("link preview image %s: %s", page.image_url, exc)
            return dataclasses.replace(page, image_url=None, image_width=None, image_height=None)
        return page

    async def _purge(self, now: float) -> None:
        """Now and then, forget entries that no post shows and that are due again anyway."""
        if now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        async with self.db.transaction() as conn:
            purged = await preview_store.purge_unused(conn, now - REFRESH_S)
        if purged:
            log.info("forgot %d unused link previews", purged)

    # --- showing -----------------------------------------------------------------------

    async def visible_image_url(self, viewer_id: int | None, preview_id: int) -> str:
        """The remote address of a card's image, if the viewer may see a post that shows it.

        Raises:
            NotFound: no such card, no image, or only posts the viewer may not see show it.
        """
        preview = await preview_store.get_preview(self.db, preview_id) if self.enabled else None
        if preview is None or preview.image_url is None:
            raise NotFound("No such image.")
        if not await preview_store.shown_publicly(self.db, preview_id):
            # Only followers-only posts show it: one of them must be the viewer's to see.
            ids = await preview_store.posts_showing(self.db, preview_id, MAX_VISIBILITY_CHECKS)
            found = await post_store.get_posts(self.db, ids)
            if not await self.posts.hydrate(viewer_id, list(found.values())):
                raise NotFound("No such image.")
        return preview.image_url
