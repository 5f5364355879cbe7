"""Full-text search over posts the viewer may see, accounts and hashtags (SQLite FTS5).

Direct posts are never indexed; every post hit is filtered by the same
visibility rule as timelines, inside the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.errors import InvalidInput
from xnode.posts.content import normalize_tag
from xnode.posts.models import Post, PostView
from xnode.posts.service import PostService
from xnode.posts.visibility import visible_sql
from xnode.store.database import Database

MAX_QUERY_CHARS = 200
RESULTS = 20
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchResults:
    """What a search found, by kind."""

    accounts: list[Account]
    tags: list[str]
    posts: list[PostView]


def fts_query(text: str) -> str:
    """Turn what someone typed into a safe FTS5 query: every word, prefix-matched.

    FTS5 has its own query language; quoting each word keeps operators and
    punctuation in the input from being interpreted (or raising syntax errors).
    """
    words = _WORD.findall(text)[:12]
    return " ".join(f'"{word}"*' for word in words)


class SearchService:
    """Searches posts, accounts and hashtags."""

    def __init__(self, db: Database, posts: PostService) -> None:
        self.db = db
        self.posts = posts

    async def search(self, viewer_id: int | None, text: str) -> SearchResults:
        """Search everything for ``text``.

        Raises:
            InvalidInput: the query is too long.
        """
        text = text.strip()
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(f"Searches are limited to {MAX_QUERY_CHARS} characters.")
        query = fts_query(text.lstrip("#@"))
        if not query:
            return SearchResults([], [], [])
        return SearchResults(
            accounts=await self.accounts(text),
            tags=await self.tags(text),
            posts=await self.find_posts(viewer_id, query),
        )

    async def find_posts(self, viewer_id: int | None, query: str) -> list[PostView]:
        """Visible, non-direct, live posts matching an FTS query, newest first."""
        visible, params = visible_sql(viewer_id)
        rows = await self.db.fetchall(
            "SELECT p.* FROM posts_fts f JOIN posts p ON p.id = f.rowid"
            " WHERE posts_fts MATCH ? AND p.deleted_at IS NULL AND p.visibility <> 'direct'"
            f" AND {visible} ORDER BY f.rowid DESC LIMIT ?",
            [query, *params, RESULTS],
        )
        return await self.posts.hydrate(viewer_id, [Post.from_row(r) for r in rows])

    async def accounts(self, text: str) -> list[Account]:
        """Live accounts whose handle or name matches; exact handles first."""
        handle = text.lstrip("@").lower()
        username, _, domain = handle.partition("@")
        if domain == self.posts.settings.domain.lower():
            domain = ""  # our own people by their full handle (@bob@this.node)
        exact = await self.db.fetchall(
            "SELECT * FROM accounts WHERE username_key = ? AND"
            " (domain IS ? OR (? = '' AND domain IS NULL))"
            " AND deleted_at IS NULL AND suspended_at IS NULL",
            (username, domain or None, domain),
        )
        query = fts_query(text.lstrip("@"))
        fuzzy = await self.db.fetchall(
            "SELECT a.* FROM accounts_fts f JOIN accounts a ON a.id = f.rowid"
            " WHERE accounts_fts MATCH ? AND a.discoverable = 1 AND a.deleted_at IS NULL"
            " AND a.suspended_at IS NULL AND (a.domain IS NOT NULL OR EXISTS"
            " (SELECT 1 FROM users u WHERE u.account_id = a.id AND u.state = 'active'))"
            " ORDER BY rank LIMIT ?",
            (query, RESULTS),
        ) if query else []
        seen: dict[int, Account] = {}
        for row in [*exact, *fuzzy]:
            seen.setdefault(row["id"], Account.from_row(row))
        return list(seen.values())[:RESULTS]

    async def tags(self, text: str) -> list[str]:
        """Hashtags in use that start with the query."""
        prefix = normalize_tag(text.strip().lstrip("#"))
        if not prefix or not _WORD.fullmatch(prefix):
            return []
        rows = await self.db.fetchall(
            "SELECT tag FROM post_tags WHERE tag >= ? AND tag < ? GROUP BY tag"
            " ORDER BY COUNT(*) DESC LIMIT 10",
            (prefix, prefix + "\uffff"),
        )
        return [row[0] for row in rows]
