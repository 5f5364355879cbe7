"""SQL for search (SQLite FTS5): posts the viewer may see, accounts, hashtags.

Every post hit is filtered by the same visibility rule as timelines, inside the query;
direct posts are never indexed (and are excluded here too).
"""

from __future__ import annotations

import sqlite3

from xnode.posts.visibility import visible_sql
from xnode.store.database import Database


def _followed_by(account_id: int | None) -> tuple[str, list[object]]:
    """The condition keeping accounts ``account_id`` follows (none when None)."""
    if account_id is None:
        return "", []
    return (
        " AND EXISTS (SELECT 1 FROM follows fo WHERE fo.account_id = ?"
        " AND fo.target_account_id = a.id AND fo.state = 'accepted')",
        [account_id],
    )


async def find_posts(
    db: Database,
    viewer_id: int | None,
    query: str,
    *,
    limit: int,
    offset: int = 0,
    account_id: int | None = None,
    max_id: int | None = None,
    min_id: int | None = None,
) -> list[sqlite3.Row]:
    """Visible, non-direct, live posts matching an FTS query, newest first."""
    visible, params = visible_sql(viewer_id)
    extra = ""
    extra_params: list[object] = []
    if account_id is not None:
        extra, extra_params = extra + " AND p.account_id = ?", [*extra_params, account_id]
    if max_id is not None:
        extra, extra_params = extra + " AND p.id < ?", [*extra_params, max_id]
    if min_id is not None:
        extra, extra_params = extra + " AND p.id > ?", [*extra_params, min_id]
    return await db.fetchall(
        "SELECT p.* FROM posts_fts f JOIN posts p ON p.id = f.rowid"
        " WHERE posts_fts MATCH ? AND p.deleted_at IS NULL AND p.visibility <> 'direct'"
        f"{extra} AND {visible} ORDER BY f.rowid DESC LIMIT ? OFFSET ?",
        [query, *extra_params, *params, limit, offset],
    )


async def exact_accounts(
    db: Database, username: str, domain: str, *, followed_by: int | None = None
) -> list[sqlite3.Row]:
    """Live accounts with exactly this handle (``domain`` empty: ours), optionally only
    those ``followed_by`` follows."""
    followed, followed_params = _followed_by(followed_by)
    return await db.fetchall(
        "SELECT a.* FROM accounts a WHERE a.username_key = ? AND"
        " (a.domain IS ? OR (? = '' AND a.domain IS NULL))"
        f" AND a.deleted_at IS NULL AND a.suspended_at IS NULL{followed}",
        [username, domain or None, domain, *followed_params],
    )


async def fuzzy_accounts(
    db: Database, query: str, *, limit: int, followed_by: int | None = None
) -> list[sqlite3.Row]:
    """Discoverable live accounts whose handle, name or bio match an FTS query, best
    first (local ones only while their user is active)."""
    followed, followed_params = _followed_by(followed_by)
    return await db.fetchall(
        "SELECT a.* FROM accounts_fts f JOIN accounts a ON a.id = f.rowid"
        " WHERE accounts_fts MATCH ? AND a.discoverable = 1 AND a.deleted_at IS NULL"
        " AND a.suspended_at IS NULL AND (a.domain IS NOT NULL OR EXISTS"
        " (SELECT 1 FROM users u WHERE u.account_id = a.id AND u.state = 'active'))"
        f"{followed} ORDER BY rank LIMIT ?",
        [query, *followed_params, limit],
    )


async def tags_with_prefix(
    db: Database, prefix: str, *, limit: int, offset: int = 0
) -> list[str]:
    """Hashtags in use that start with ``prefix``, most used first."""
    rows = await db.fetchall(
        "SELECT tag FROM post_tags WHERE tag >= ? AND tag < ? GROUP BY tag"
        " ORDER BY COUNT(*) DESC, tag LIMIT ? OFFSET ?",
        (prefix, prefix + "\uffff", limit, offset),
    )
    return [row[0] for row in rows]
