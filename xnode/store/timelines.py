"""SQL for timelines: which posts a page of each timeline reads, by cursor.

Pagination is by time-sortable id, never OFFSET (the rule: :mod:`xnode.store.paging`).
Each reader returns the page's rows as (cursor position, post), in display order (newest
first); :class:`xnode.timelines.TimelineService` hydrates them and drops what the viewer's
rules hide. The visibility rule is applied in the query (``visible_sql``), so pagination
stays exact.
"""

from __future__ import annotations

from collections.abc import Sequence

from xnode.posts.models import Post
from xnode.posts.visibility import visible_sql
from xnode.store.database import Database
from xnode.store.domain_blocks import author_blocked_sql
from xnode.store.paging import Cursor

Found = list[tuple[int, Post]]
"""A page's rows: (cursor position, post), newest first."""

# Posts with at least one image (the client API's ``only_media``).
_WITH_MEDIA = " AND EXISTS (SELECT 1 FROM media_attachments ma WHERE ma.post_id = p.id)"

_NOT_MUTED = (
    " AND NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.account_id = ?"
    " AND mu.target_account_id = p.account_id)"
)


async def _page(
    db: Database, where: str, params: Sequence[object], cursor: Cursor,
    *, joins: str = "", id_column: str = "p.id",
) -> Found:
    cursor_sql, cursor_params = cursor.sql(id_column)
    rows = await db.fetchall(
        f"SELECT {id_column} AS page_cursor, p.* FROM posts p{joins} WHERE {where}"
        f"{cursor_sql}{cursor.order_by(id_column)} LIMIT ?",
        [*params, *cursor_params, cursor.page_size],
    )
    return [(row["page_cursor"], Post.from_row(row)) for row in cursor.newest_first(rows)]


async def home(db: Database, viewer_id: int, cursor: Cursor) -> Found:
    """Own posts and boosts plus those of followed accounts, minus muted ones (computed on
    read from the follows index and ``posts (account_id, id)``)."""
    followed = (
        "SELECT target_account_id FROM follows WHERE account_id = ?"
        " AND state = 'accepted' UNION ALL SELECT ?"
    )
    # PostgreSQL plans IN (subquery) as a walk down the whole posts index, testing each
    # post against the follow list; given an array it probes posts (account_id, id) per
    # followed account instead: 3.3 against 11.8 ms p50 at 1 M posts (bench/pg_timelines.py).
    authors = (
        f"p.account_id = ANY(ARRAY({followed}))"
        if db.dialect == "postgres"
        else f"p.account_id IN ({followed})"
    )
    where = authors + " AND p.deleted_at IS NULL AND p.visibility <> 'direct'" + _NOT_MUTED
    return await _page(db, where, [viewer_id, viewer_id, viewer_id], cursor)


async def public(
    db: Database, viewer_id: int | None, cursor: Cursor, *, local_only: bool,
    remote_only: bool = False, only_media: bool = False,
) -> Found:
    """Public original posts: written here (``local_only``), elsewhere (``remote_only``)
    or anywhere; ``only_media``: those with images."""
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
    return await _page(db, where, params, cursor)


async def profile(
    db: Database, viewer_id: int | None, account_id: int, cursor: Cursor, *,
    exclude_replies: bool = False, exclude_reblogs: bool = False,
    only_media: bool = False, exclude_sensitive: bool = False, tagged: str | None = None,
) -> Found:
    """An account's posts and boosts that the viewer may see (never direct posts), with
    the client API's filters (see :meth:`xnode.timelines.TimelineService.profile`)."""
    visible, visible_params = visible_sql(viewer_id)
    params: list[object] = [*visible_params]
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
    return await _page(db, where, [account_id, *params], cursor)


async def pinned(db: Database, account_id: int) -> list[Post]:
    """The live posts an account pinned, newest pin first."""
    rows = await db.fetchall(
        "SELECT p.* FROM pins JOIN posts p ON p.id = pins.post_id"
        " WHERE pins.account_id = ? AND p.deleted_at IS NULL ORDER BY pins.created_at DESC",
        (account_id,),
    )
    return [Post.from_row(row) for row in rows]


async def hashtag(
    db: Database, viewer_id: int | None, tag: str, cursor: Cursor, *,
    local_only: bool = False, remote_only: bool = False, only_media: bool = False,
) -> Found:
    """Public posts with a hashtag the viewer may see (paged by the tag row)."""
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
    return await _page(
        db, where, [tag, *params], cursor,
        joins=" JOIN post_tags t ON t.post_id = p.id", id_column="t.post_id",
    )


async def bookmarks(db: Database, viewer_id: int, cursor: Cursor) -> Found:
    """The viewer's bookmarked posts, most recently bookmarked first (paged by the
    bookmark's id)."""
    visible, params = visible_sql(viewer_id)
    where = f"b.account_id = ? AND p.deleted_at IS NULL AND {visible}"
    return await _page(
        db, where, [viewer_id, *params], cursor,
        joins=" JOIN bookmarks b ON b.post_id = p.id", id_column="b.id",
    )


async def favourites(db: Database, viewer_id: int, cursor: Cursor) -> Found:
    """The posts the viewer liked, most recently liked first (paged by the like's id)."""
    visible, params = visible_sql(viewer_id)
    where = f"l.account_id = ? AND p.deleted_at IS NULL AND {visible}"
    return await _page(
        db, where, [viewer_id, *params], cursor,
        joins=" JOIN likes l ON l.post_id = p.id", id_column="l.id",
    )
