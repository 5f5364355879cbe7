"""Who among the accounts with an open stream may be shown an author's post, and what
each of them did to it: a few reads for a whole audience (``xnode/api/streaming.py``).

The streaming API pushes each new post to every connected client that may see it; asking
per viewer (as a page does) would be one read per client per post. These reads take the
whole list of connected viewers at once and return only the exceptions, which are few.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from xnode.posts.models import ViewerState
from xnode.store.database import Database

CHUNK = 2_000
"""Viewers per query: SQLite allows 32,766 parameters, and a query names each viewer
once per table and author."""


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _chunks(values: Sequence[int]) -> list[list[int]]:
    unique = list(dict.fromkeys(values))
    return [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)]


async def cut_off(
    db: Database, author_ids: Sequence[int], viewer_ids: Sequence[int], *, mutes: bool = True
) -> set[int]:
    """Which of ``viewer_ids`` block, are blocked by, or (with ``mutes``) mute any of
    ``author_ids``: they are not to see those authors' posts.

    Each viewer costs a primary-key probe per author and table (``blocks`` both ways,
    ``mutes``); the rows found are the exceptions.
    """
    found: set[int] = set()
    for viewers in _chunks(viewer_ids) if author_ids else []:
        found |= await _cut_off(db, author_ids, viewers, mutes)
    return found


async def _cut_off(
    db: Database, author_ids: Sequence[int], viewers: list[int], mutes: bool
) -> set[int]:
    marks = _marks(viewers)
    parts: list[str] = []
    params: list[object] = []
    for author in dict.fromkeys(author_ids):
        parts.append(
            f"SELECT account_id FROM blocks WHERE target_account_id = ? AND account_id IN ({marks})"
        )
        params += [author, *viewers]
        parts.append(
            f"SELECT target_account_id FROM blocks WHERE account_id = ?"
            f" AND target_account_id IN ({marks})"
        )
        params += [author, *viewers]
        if mutes:
            parts.append(
                f"SELECT account_id FROM mutes WHERE target_account_id = ?"
                f" AND account_id IN ({marks})"
            )
            params += [author, *viewers]
    rows = await db.fetch_keyed(" UNION ".join(parts), params, len(viewers) * len(parts))
    return {row[0] for row in rows}


async def states_among(
    db: Database, post_id: int, viewer_ids: Sequence[int]
) -> dict[int, ViewerState]:
    """What each of ``viewer_ids`` did to one post (liked, boosted, bookmarked, pinned);
    viewers who did nothing are left out."""
    flags: dict[int, dict[str, bool]] = defaultdict(dict)
    for viewers in _chunks(viewer_ids):
        for viewer, flag in await _flags(db, post_id, viewers):
            flags[viewer][flag] = True
    return {viewer: ViewerState(**values) for viewer, values in flags.items()}


async def _flags(db: Database, post_id: int, viewers: list[int]) -> list[tuple[int, str]]:
    marks = _marks(viewers)
    sql = (
        f"SELECT account_id, 'liked' FROM likes WHERE post_id = ? AND account_id IN ({marks})"
        f" UNION ALL SELECT account_id, 'boosted' FROM posts WHERE reblog_of_id = ?"
        f" AND account_id IN ({marks})"
        f" UNION ALL SELECT account_id, 'bookmarked' FROM bookmarks WHERE post_id = ?"
        f" AND account_id IN ({marks})"
        f" UNION ALL SELECT account_id, 'pinned' FROM pins WHERE post_id = ?"
        f" AND account_id IN ({marks})"
    )
    rows = await db.fetch_keyed(sql, [post_id, *viewers] * 4, len(viewers) * 4)
    return [(row[0], row[1]) for row in rows]
