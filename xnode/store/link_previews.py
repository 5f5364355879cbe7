"""SQL for link previews: the cache by URL, and which post shows which card."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.link_previews.models import CacheEntry, LinkPreview, PagePreview
from xnode.store.database import Connection, Database, Row


def preview_from_row(row: Row) -> LinkPreview:
    """A card from a ``link_previews`` row (its page's own URL when it names one)."""
    return LinkPreview(
        id=row["id"],
        url=row["card_url"] or row["url"],
        title=row["title"],
        description=row["description"],
        site_name=row["site_name"],
        image_url=row["image_url"],
        image_width=row["image_width"],
        image_height=row["image_height"],
        fetched_at=row["fetched_at"],
    )


async def entry_for(db: Database, url: str) -> CacheEntry | None:
    """What the cache knows of ``url`` (an indexed point read)."""
    row = await db.lookup(
        "SELECT id, url, state, fetched_at FROM link_previews WHERE url = ?", (url,)
    )
    if row is None:
        return None
    return CacheEntry(row["id"], row["url"], row["state"] == "ok", row["fetched_at"])


async def save_page(
    conn: Connection, new_id: int, url: str, page: PagePreview, now: float
) -> int:
    """Store what ``url``'s page said (replacing an older answer); return the entry's id."""
    await conn.execute(
        "INSERT INTO link_previews (id, url, state, card_url, title, description, site_name,"
        " image_url, image_width, image_height, error, fetched_at)"
        " VALUES (?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
        " ON CONFLICT (url) DO UPDATE SET state = 'ok', card_url = excluded.card_url,"
        " title = excluded.title, description = excluded.description,"
        " site_name = excluded.site_name, image_url = excluded.image_url,"
        " image_width = excluded.image_width, image_height = excluded.image_height,"
        " error = NULL, fetched_at = excluded.fetched_at",
        (new_id, url, page.url, page.title, page.description, page.site_name, page.image_url,
         page.image_width, page.image_height, now),
    )  # fmt: skip
    return await _id_of(conn, url)


async def save_failure(
    conn: Connection, new_id: int, url: str, error: str, now: float
) -> int:
    """Remember that ``url`` made no card, and why; return the entry's id.

    A card we already have is kept (a page that is down for a day keeps its
    card): only the error and the time of the attempt change.
    """
    await conn.execute(
        "INSERT INTO link_previews (id, url, state, error, fetched_at)"
        " VALUES (?, ?, 'failed', ?, ?)"
        " ON CONFLICT (url) DO UPDATE SET error = excluded.error,"
        " fetched_at = excluded.fetched_at",
        (new_id, url, error[:500], now),
    )
    return await _id_of(conn, url)


async def _id_of(conn: Connection, url: str) -> int:
    async with conn.execute("SELECT id FROM link_previews WHERE url = ?", (url,)) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def link_post(conn: Connection, post_id: int, preview_id: int) -> None:
    """Show ``preview_id``'s card under the post (replacing the one it showed)."""
    await conn.execute(
        "INSERT INTO post_link_previews (post_id, preview_id) VALUES (?, ?)"
        " ON CONFLICT (post_id) DO UPDATE SET preview_id = excluded.preview_id",
        (post_id, preview_id),
    )


async def unlink_post(conn: Connection, post_id: int) -> None:
    """Show no card under the post (its link went in an edit)."""
    await conn.execute("DELETE FROM post_link_previews WHERE post_id = ?", (post_id,))


async def preview_id_of(db: Database, post_id: int) -> int | None:
    """The card a post shows, if any."""
    value = await db.lookup_value(
        "SELECT preview_id FROM post_link_previews WHERE post_id = ?", (post_id,)
    )
    return None if value is None else int(value)


async def previews_of(db: Database, post_ids: Sequence[int]) -> dict[int, LinkPreview]:
    """The card each post shows (one query for a page of posts)."""
    if not post_ids:
        return {}
    marks = ", ".join("?" for _ in post_ids)
    rows = await db.fetch_keyed(
        "SELECT pl.post_id, lp.* FROM post_link_previews pl"
        " JOIN link_previews lp ON lp.id = pl.preview_id"
        f" WHERE pl.post_id IN ({marks}) AND lp.state = 'ok'",
        list(post_ids),
        len(post_ids),
    )
    return {row["post_id"]: preview_from_row(row) for row in rows}


async def get_preview(db: Database, preview_id: int) -> LinkPreview | None:
    """A card by its id (None for an unknown id or a URL that made no card)."""
    row = await db.lookup(
        "SELECT * FROM link_previews WHERE id = ? AND state = 'ok'", (preview_id,)
    )
    return None if row is None else preview_from_row(row)


async def shown_publicly(db: Database, preview_id: int) -> bool:
    """Whether a public or unlisted live post shows the card (then anyone may see it)."""
    return (
        await db.lookup_value(
            "SELECT 1 FROM post_link_previews pl JOIN posts p ON p.id = pl.post_id"
            " WHERE pl.preview_id = ? AND p.deleted_at IS NULL"
            " AND p.visibility IN ('public', 'unlisted') LIMIT 1",
            (preview_id,),
        )
        is not None
    )


async def posts_showing(db: Database, preview_id: int, limit: int) -> list[int]:
    """Live posts that show the card (a few, newest first)."""
    rows = await db.lookup_all(
        "SELECT pl.post_id FROM post_link_previews pl JOIN posts p ON p.id = pl.post_id"
        " WHERE pl.preview_id = ? AND p.deleted_at IS NULL ORDER BY pl.post_id DESC LIMIT ?",
        (preview_id, limit),
    )
    return [row[0] for row in rows]


async def purge_unused(conn: Connection, before: float) -> int:
    """Forget entries asked before ``before`` that no post shows; return how many."""
    cursor = await conn.execute(
        "DELETE FROM link_previews WHERE fetched_at < ? AND NOT EXISTS"
        " (SELECT 1 FROM post_link_previews pl WHERE pl.preview_id = link_previews.id)",
        (before,),
    )
    return cursor.rowcount
