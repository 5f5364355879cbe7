"""SQL for search: posts the viewer may see, accounts, hashtags.

Every post hit is filtered by the same visibility rule as timelines, inside the query;
direct posts are never indexed (and are excluded here too).

The full-text match is the one dialect-specific piece (:func:`_match`): SQLite's FTS5
tables answer ``MATCH`` with FTS5's own query language; on PostgreSQL the same tables
carry a ``tsvector`` column (``document``, migration m002) matched with ``@@``. Both
get the words someone typed and prefix-match every one of them (all must match).
"""

from __future__ import annotations

from xnode.posts.visibility import visible_sql
from xnode.store.database import Database, Row


def _match(db: Database, table: str, words: list[str]) -> tuple[str, str, str]:
    """The condition matching every word as a prefix in FTS table alias ``f``, the ORDER
    BY expression for best-first, and the one parameter both take (the words)."""
    if db.dialect == "postgres":
        # xnode_search_text folds case and accents as the document column was built; a
        # folded word may split in two (``foo-bar``), so the query is built from its parts.
        query = (
            "to_tsquery('simple', (SELECT string_agg(quote_literal(part) || ':*', ' & ')"
            " FROM regexp_split_to_table(xnode_search_text(?), '\\s+') AS part"
            " WHERE part <> ''))"
        )
        return f"f.document @@ {query}", f"ts_rank(f.document, {query}) DESC", " ".join(words)
    # FTS5: each word quoted (its query language must not see operators) and starred; its
    # own rank column needs no parameter, so the ORDER BY takes none.
    return f"{table} MATCH ?", "rank", " ".join(f'"{word}"*' for word in words)


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
    words: list[str],
    *,
    limit: int,
    offset: int = 0,
    account_id: int | None = None,
    max_id: int | None = None,
    min_id: int | None = None,
) -> list[Row]:
    """Visible, non-direct, live posts with every word (as a prefix), newest first."""
    match, _, match_param = _match(db, "posts_fts", words)
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
        f" WHERE {match} AND p.deleted_at IS NULL AND p.visibility <> 'direct'"
        f"{extra} AND {visible} ORDER BY f.rowid DESC LIMIT ? OFFSET ?",
        [match_param, *extra_params, *params, limit, offset],
    )


async def exact_accounts(
    db: Database, username: str, domain: str, *, followed_by: int | None = None
) -> list[Row]:
    """Live accounts with exactly this handle (``domain`` empty: ours), optionally only
    those ``followed_by`` follows."""
    followed, followed_params = _followed_by(followed_by)
    return await db.fetchall(
        "SELECT a.* FROM accounts a WHERE a.username_key = ? AND"
        " (a.domain IS NOT DISTINCT FROM ? OR (? = '' AND a.domain IS NULL))"
        f" AND a.deleted_at IS NULL AND a.suspended_at IS NULL{followed}",
        [username, domain or None, domain, *followed_params],
    )


async def fuzzy_accounts(
    db: Database, words: list[str], *, limit: int, followed_by: int | None = None
) -> list[Row]:
    """Discoverable live accounts whose handle, name or bio have every word (as a
    prefix), best first (local ones only while their user is active)."""
    followed, followed_params = _followed_by(followed_by)
    match, best_first, match_param = _match(db, "accounts_fts", words)
    order_params = [match_param] if "?" in best_first else []
    return await db.fetchall(
        "SELECT a.* FROM accounts_fts f JOIN accounts a ON a.id = f.rowid"
        f" WHERE {match} AND a.discoverable = 1 AND a.deleted_at IS NULL"
        " AND a.suspended_at IS NULL AND (a.domain IS NOT NULL OR EXISTS"
        " (SELECT 1 FROM users u WHERE u.account_id = a.id AND u.state = 'active'))"
        f"{followed} ORDER BY {best_first} LIMIT ?",
        [match_param, *followed_params, *order_params, limit],
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
