"""Timelines: home, local, federated, profile, hashtag, bookmarks and favourites, with
cursors.

Pagination is by time-sortable id (``max_id`` for older, ``min_id`` for newer),
never OFFSET. The home timeline is computed on read (fan-out on read) from the
follows index and ``posts (account_id, id)``: at the benchmark's scale (10,000
accounts, 1,000,000 posts, ~100 follows each) it stays within the 15 ms p99
target, and it costs no storage or write amplification (see docs/benchmarks.md).

Direct posts never appear in any timeline: they belong to conversations.

The queries are in :mod:`xnode.store.timelines`; this service turns their rows
into pages of views for a viewer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xnode.posts.models import PostView
from xnode.posts.service import PostService
from xnode.store import timelines as store
from xnode.store.database import Database
from xnode.store.paging import MAX_PAGE_SIZE, PAGE_SIZE, Cursor

__all__ = ["MAX_PAGE_SIZE", "PAGE_SIZE", "Cursor", "Page", "TimelineService"]


@dataclass(frozen=True)
class Page:
    """One page of a timeline, with the cursors for the neighbouring pages."""

    items: list[PostView]
    next_max_id: int | None
    prev_min_id: int | None
    # The cursor of every row the page read, newest first, including rows the viewer's
    # rules then dropped (the client API's Link headers page past those too).
    positions: tuple[int, ...] = ()


def _once_each(items: list[PostView]) -> list[PostView]:
    """A page with each post once: the newest of its appearances (its boost by someone
    followed, or the post itself) stands for the others."""
    seen: set[int] = set()
    kept = []
    for view in items:
        if view.post.id not in seen:
            seen.add(view.post.id)
            kept.append(view)
    return kept


class TimelineService:
    """Builds timelines for a viewer (None for logged-out visitors)."""

    def __init__(self, db: Database, posts: PostService) -> None:
        self.db = db
        self.posts = posts

    async def _page(self, viewer_id: int | None, found: store.Found, cursor: Cursor) -> Page:
        items = await self.posts.hydrate(viewer_id, [post for _, post in found])
        positions = [position for position, _ in found]
        # Older pages exist when this one is full, or when we came up from them.
        more_below = len(found) == cursor.page_size or cursor.ascending
        return Page(
            items=items,
            next_max_id=positions[-1] if positions and more_below else None,
            prev_min_id=positions[0] if positions else None,
            positions=tuple(positions),
        )

    async def home(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """Own posts and boosts plus those of followed accounts, minus muted ones."""
        page = await self._page(viewer_id, await store.home(self.db, viewer_id, cursor), cursor)
        return dataclasses.replace(page, items=_once_each(page.items))

    async def local(
        self, viewer_id: int | None, cursor: Cursor = Cursor(), *, only_media: bool = False
    ) -> Page:
        """Public posts written on this node (``only_media``: those with images)."""
        found = await store.public(
            self.db, viewer_id, cursor, local_only=True, only_media=only_media
        )
        return await self._page(viewer_id, found, cursor)

    async def federated(
        self, viewer_id: int | None, cursor: Cursor = Cursor(), *, remote_only: bool = False,
        only_media: bool = False,
    ) -> Page:
        """Every public post this node knows, local and remote (``remote_only``: only
        other servers'; ``only_media``: only those with images)."""
        found = await store.public(
            self.db, viewer_id, cursor, local_only=False, remote_only=remote_only,
            only_media=only_media,
        )
        return await self._page(viewer_id, found, cursor)

    async def profile(
        self, viewer_id: int | None, account_id: int, cursor: Cursor = Cursor(), *,
        exclude_replies: bool = False, exclude_reblogs: bool = False,
        only_media: bool = False, exclude_sensitive: bool = False, tagged: str | None = None,
    ) -> Page:
        """An account's posts and boosts that the viewer may see (never direct posts).

        The client API's filters: ``exclude_replies`` (replies to others; a thread of
        one's own stays), ``exclude_reblogs``, ``only_media`` (posts with images),
        ``exclude_sensitive``, ``tagged`` (a normalised hashtag).
        """
        found = await store.profile(
            self.db, viewer_id, account_id, cursor, exclude_replies=exclude_replies,
            exclude_reblogs=exclude_reblogs, only_media=only_media,
            exclude_sensitive=exclude_sensitive, tagged=tagged,
        )
        return await self._page(viewer_id, found, cursor)

    async def pinned(self, viewer_id: int | None, account_id: int) -> list[PostView]:
        """The posts an account pinned, newest pin first."""
        return await self.posts.hydrate(viewer_id, await store.pinned(self.db, account_id))

    async def hashtag(
        self, viewer_id: int | None, tag: str, cursor: Cursor = Cursor(), *,
        local_only: bool = False, remote_only: bool = False, only_media: bool = False,
    ) -> Page:
        """Public posts with a hashtag (``local_only``: written here; ``remote_only``:
        written elsewhere; ``only_media``: with images)."""
        found = await store.hashtag(
            self.db, viewer_id, tag, cursor, local_only=local_only, remote_only=remote_only,
            only_media=only_media,
        )
        return await self._page(viewer_id, found, cursor)

    async def bookmarks(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """The viewer's bookmarked posts, most recently bookmarked first."""
        found = await store.bookmarks(self.db, viewer_id, cursor)
        return await self._page(viewer_id, found, cursor)

    async def favourites(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """The posts the viewer liked, most recently liked first (paged by the like's id,
        as the client API's ``/api/v1/favourites`` is)."""
        found = await store.favourites(self.db, viewer_id, cursor)
        return await self._page(viewer_id, found, cursor)
