"""Timelines: home, local, federated, profile, hashtag, bookmarks and favourites, with
cursors.

Pagination is by time-sortable id (``max_id`` for older, ``min_id`` for newer),
never OFFSET. The home timeline is computed on read (fan-out on read) from the
follows index and ``posts (account_id, id)``: at the benchmark's scale (10,000
accounts, 1,000,000 posts, ~100 follows each) it stays within the 15 ms p99
target, and it costs no storage or write amplification (see docs/benchmarks.md).

Direct posts never appear in any timeline: they belong to conversations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xnode.posts.models import Post, PostView
from xnode.posts.service import PostService
from xnode.posts.visibility import visible_sql
from xnode.store.database import Database
from xnode.store.domain_blocks import author_blocked_sql

PAGE_SIZE = 40
MAX_PAGE_SIZE = 80


@dataclass(frozen=True)
class Page:
    """One page of a timeline, with the cursors for the neighbouring pages."""

    items: list[PostView]
    next_max_id: int | None
    prev_min_id: int | None
    # The cursor of every row the page read, newest first, including rows the viewer's
    # rules then dropped (the client API's Link headers page past those too).
    positions: tuple[int, ...] = ()


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: below ``max_id`` (older) or above ``min_id`` (newer, the
    page just above it). ``since_id`` bounds from below too, but the page is the newest
    items above it (the client API's "anything new since").
    """

    max_id: int | None = None
    min_id: int | None = None
    limit: int = PAGE_SIZE
    since_id: int | None = None

    def sql(self, column: str = "p.id") -> tuple[str, list[int]]:
        """The cursor condition and parameters, and the order to scan in."""
        parts, params = [], []
        if self.max_id is not None:
            parts.append(f" AND {column} < ?")
            params.append(self.max_id)
        if self.min_id is not None:
            parts.append(f" AND {column} > ?")
            params.append(self.min_id)
        if self.since_id is not None:
            parts.append(f" AND {column} > ?")
            params.append(self.since_id)
        return "".join(parts), params

    @property
    def ascending(self) -> bool:
        """Scanning upwards from ``min_id`` (then reversed for display)."""
        return self.min_id is not None and self.max_id is None

    @property
    def page_size(self) -> int:
        """The requested size, clamped."""
        return max(1, min(self.limit, MAX_PAGE_SIZE))


# Posts with at least one image (the client API's ``only_media``).
_WITH_MEDIA = " AND EXISTS (SELECT 1 FROM media_attachments ma WHERE ma.post_id = p.id)"

_NOT_MUTED = (
    " AND NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.account_id = ?"
    " AND mu.target_account_id = p.account_id)"
)


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

    async def _page(
        self, viewer_id: int | None, where: str, params: list[object], cursor: Cursor,
        *, joins: str = "", id_column: str = "p.id",
    ) -> Page:
        cursor_sql, cursor_params = cursor.sql(id_column)
        order = "ASC" if cursor.ascending else "DESC"
        rows = await self.db.fetchall(
            f"SELECT {id_column} AS page_cursor, p.* FROM posts p{joins} WHERE {where}"
            f"{cursor_sql} ORDER BY {id_column} {order} LIMIT ?",
            [*params, *cursor_params, cursor.page_size],
        )
        if cursor.ascending:
            rows.reverse()
        items = await self.posts.hydrate(viewer_id, [Post.from_row(row) for row in rows])
        positions = [row["page_cursor"] for row in rows]
        # Older pages exist when this one is full, or when we came up from them.
        more_below = len(rows) == cursor.page_size or cursor.ascending
        return Page(
            items=items,
            next_max_id=positions[-1] if positions and more_below else None,
            prev_min_id=positions[0] if positions else None,
            positions=tuple(positions),
        )

    async def home(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """Own posts and boosts plus those of followed accounts, minus muted ones."""
        where = (
            "p.account_id IN (SELECT target_account_id FROM follows WHERE account_id = ?"
            " AND state = 'accepted' UNION ALL SELECT ?)"
            " AND p.deleted_at IS NULL AND p.visibility <> 'direct'"
            + _NOT_MUTED
        )
        page = await self._page(viewer_id, where, [viewer_id, viewer_id, viewer_id], cursor)
        return dataclasses.replace(page, items=_once_each(page.items))

    async def local(
        self, viewer_id: int | None, cursor: Cursor = Cursor(), *, only_media: bool = False
    ) -> Page:
        """Public posts written on this node (``only_media``: those with images)."""
        return await self._public(viewer_id, cursor, local_only=True, only_media=only_media)

    async def federated(
        self, viewer_id: int | None, cursor: Cursor = Cursor(), *, remote_only: bool = False,
        only_media: bool = False,
    ) -> Page:
        """Every public post this node knows, local and remote (``remote_only``: only
        other servers'; ``only_media``: only those with images)."""
        return await self._public(
            viewer_id, cursor, local_only=False, remote_only=remote_only, only_media=only_media
        )

    async def _public(
        self, viewer_id: int | None, cursor: Cursor, *, local_only: bool,
        remote_only: bool = False, only_media: bool = False,
    ) -> Page:
        # These conditions match the partial indexes posts_local_public / posts_public.
        where = (
            "p.visibility = 'public' AND p.reblog_of_id IS NULL AND p.deleted_at IS NULL"
            + (" AND p.local = 1" if local_only else "")
            + (" AND p.local = 0" if remote_only else "")
            + (_WITH_MEDIA if only_media else "")
        )
        if not local_only:
            # Silenced (and suspended) servers stay out of the public timelines.
            where += f" AND NOT {author_blocked_sql('p.account_id')}"
        visible, params = visible_sql(viewer_id)
        where += f" AND {visible}"
        if viewer_id is not None:
            where += _NOT_MUTED
            params = [*params, viewer_id]
        return await self._page(viewer_id, where, params, cursor)

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
        visible, params = visible_sql(viewer_id)
        where = (
            "p.account_id = ? AND p.deleted_at IS NULL AND p.visibility <> 'direct'"
            f" AND {visible}"
        )
        if exclude_replies:
            where += (
                " AND ((p.in_reply_to_id IS NULL AND p.in_reply_to_uri IS NULL)"
                " OR EXISTS (SELECT 1 FROM posts rp WHERE rp.id = p.in_reply_to_id"
                " AND rp.account_id = p.account_id))"
            )
        if exclude_reblogs:
            where += " AND p.reblog_of_id IS NULL"
        if only_media:
            where += _WITH_MEDIA
        if exclude_sensitive:
            where += " AND p.sensitive = 0"
        if tagged is not None:
            where += (
                " AND EXISTS (SELECT 1 FROM post_tags pt WHERE pt.post_id = p.id"
                " AND pt.tag = ?)"
            )
            params = [*params, tagged]
        return await self._page(viewer_id, where, [account_id, *params], cursor)

    async def pinned(self, viewer_id: int | None, account_id: int) -> list[PostView]:
        """The posts an account pinned, newest pin first."""
        rows = await self.db.fetchall(
            "SELECT p.* FROM pins JOIN posts p ON p.id = pins.post_id"
            " WHERE pins.account_id = ? AND p.deleted_at IS NULL ORDER BY pins.created_at DESC",
            (account_id,),
        )
        return await self.posts.hydrate(viewer_id, [Post.from_row(r) for r in rows])

    async def hashtag(
        self, viewer_id: int | None, tag: str, cursor: Cursor = Cursor(), *,
        local_only: bool = False, remote_only: bool = False, only_media: bool = False,
    ) -> Page:
        """Public posts with a hashtag (``local_only``: written here; ``remote_only``:
        written elsewhere; ``only_media``: with images)."""
        visible, params = visible_sql(viewer_id)
        where = (
            "t.tag = ? AND p.visibility = 'public' AND p.deleted_at IS NULL"
            f" AND {visible}"
            + (" AND p.local = 1" if local_only else "")
            + (" AND p.local = 0" if remote_only else "")
            + (_WITH_MEDIA if only_media else "")
        )
        if viewer_id is not None:
            where += _NOT_MUTED
            params = [*params, viewer_id]
        return await self._page(
            viewer_id, where, [tag, *params], cursor,
            joins=" JOIN post_tags t ON t.post_id = p.id", id_column="t.post_id",
        )

    async def bookmarks(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """The viewer's bookmarked posts, most recently bookmarked first."""
        visible, params = visible_sql(viewer_id)
        where = f"b.account_id = ? AND p.deleted_at IS NULL AND {visible}"
        return await self._page(
            viewer_id, where, [viewer_id, *params], cursor,
            joins=" JOIN bookmarks b ON b.post_id = p.id", id_column="b.id",
        )

    async def favourites(self, viewer_id: int, cursor: Cursor = Cursor()) -> Page:
        """The posts the viewer liked, most recently liked first (paged by the like's id,
        as the client API's ``/api/v1/favourites`` is)."""
        visible, params = visible_sql(viewer_id)
        where = f"l.account_id = ? AND p.deleted_at IS NULL AND {visible}"
        return await self._page(
            viewer_id, where, [viewer_id, *params], cursor,
            joins=" JOIN likes l ON l.post_id = p.id", id_column="l.id",
        )
