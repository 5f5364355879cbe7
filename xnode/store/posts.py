"""SQL for posts, their mentions, tags, edits, media, likes, boosts, bookmarks and pins."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from xnode.accounts.models import Account
from xnode.posts.models import MediaAttachment, Post, PostEdit, ViewerState
from xnode.posts.visibility import visible_sql
from xnode.store.database import Connection, Database, greatest, zero_padded
from xnode.store.paging import Cursor

MAX_THREAD_DEPTH = 100
MAX_DESCENDANTS = 500


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


async def insert_post(conn: Connection, **fields: Any) -> None:
    """Insert a post row from column values."""
    columns = ", ".join(fields)
    await conn.execute(
        f"INSERT INTO posts ({columns}) VALUES ({_marks(list(fields))})", list(fields.values())
    )


async def get_post(db: Database, post_id: int) -> Post | None:
    """Fetch one post by id (tombstones included)."""
    row = await db.lookup("SELECT * FROM posts WHERE id = ?", (post_id,))
    return None if row is None else Post.from_row(row)


async def post_by_uri(db: Database, uri: str) -> Post | None:
    """A post (or boost row) by its ActivityPub id."""
    row = await db.lookup("SELECT * FROM posts WHERE uri = ?", (uri,))
    return None if row is None else Post.from_row(row)


async def get_posts(db: Database, ids: Iterable[int]) -> dict[int, Post]:
    """Fetch posts by id."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch_keyed(
        f"SELECT * FROM posts WHERE id IN ({_marks(wanted)})", wanted, len(wanted)
    )
    return {row["id"]: Post.from_row(row) for row in rows}


async def authors_of(db: Database, ids: Iterable[int]) -> dict[int, int]:
    """Post id -> its author's account id, for the given posts."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch_keyed(
        f"SELECT id, account_id FROM posts WHERE id IN ({_marks(wanted)})", wanted, len(wanted)
    )
    return {row[0]: row[1] for row in rows}


async def get_accounts(db: Database, ids: Iterable[int]) -> dict[int, Account]:
    """Fetch accounts by id."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch_keyed(
        f"SELECT * FROM accounts WHERE id IN ({_marks(wanted)})", wanted, len(wanted)
    )
    return {row["id"]: Account.from_row(row) for row in rows}


async def set_mentions(
    conn: Connection, post_id: int, account_ids: Iterable[int], *, new: bool = False
) -> None:
    """Replace the accounts a post mentions (``new``: the post has none yet)."""
    if not new:
        await conn.execute("DELETE FROM mentions WHERE post_id = ?", (post_id,))
    await conn.executemany(
        "INSERT INTO mentions (post_id, account_id) VALUES (?, ?)",
        [(post_id, account_id) for account_id in dict.fromkeys(account_ids)],
    )


async def set_tags(
    conn: Connection, post_id: int, tags: Iterable[str], *, new: bool = False
) -> None:
    """Replace a post's hashtags (``new``: the post has none yet)."""
    if not new:
        await conn.execute("DELETE FROM post_tags WHERE post_id = ?", (post_id,))
    await conn.executemany(
        "INSERT INTO post_tags (tag, post_id) VALUES (?, ?)",
        [(tag, post_id) for tag in dict.fromkeys(tags)],
    )


async def mentions_of(db: Database, post_ids: Sequence[int]) -> dict[int, list[int]]:
    """Mentioned account ids per post."""
    found: dict[int, list[int]] = defaultdict(list)
    if post_ids:
        rows = await db.fetch_keyed(
            f"SELECT post_id, account_id FROM mentions WHERE post_id IN ({_marks(post_ids)})",
            list(post_ids),
            len(post_ids),
        )
        for row in rows:
            found[row["post_id"]].append(row["account_id"])
    return found


async def tags_of(db: Database, post_ids: Sequence[int]) -> dict[int, list[str]]:
    """Hashtags per post."""
    found: dict[int, list[str]] = defaultdict(list)
    if post_ids:
        rows = await db.fetch_keyed(
            f"SELECT post_id, tag FROM post_tags WHERE post_id IN ({_marks(post_ids)})",
            list(post_ids),
            len(post_ids),
        )
        for row in rows:
            found[row["post_id"]].append(row["tag"])
    return found


async def index_text(
    conn: Connection, post_id: int, text: str, *, new: bool = False
) -> None:
    """(Re)index a post's searchable text (``new``: it was never indexed)."""
    if new and text:
        # A new post's row goes in with the rest of its commit group's (see
        # Connection.at_commit): one FTS5 flush per commit, not per post.
        conn.at_commit("INSERT INTO posts_fts (rowid, text) VALUES (?, ?)", (post_id, text))
        return
    # The delete is for edits; on a new post it was a wasted statement of the
    # inbox's hot path.
    if not new:
        await conn.execute("DELETE FROM posts_fts WHERE rowid = ?", (post_id,))
    if text:
        await conn.execute("INSERT INTO posts_fts (rowid, text) VALUES (?, ?)", (post_id, text))


async def save_edit(conn: Connection, edit_id: int, post: Post) -> None:
    """Keep the current version of a post before it is replaced."""
    await conn.execute(
        "INSERT INTO post_edits (id, post_id, title, source, content_html, summary, sensitive,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            edit_id,
            post.id,
            post.title,
            post.source,
            post.content_html,
            post.summary,
            int(post.sensitive),
            post.edited_at or post.created_at,
        ),
    )


async def update_content(
    conn: Connection,
    post_id: int,
    *,
    title: str,
    source: str,
    source_format: str,
    content_html: str,
    summary: str,
    sensitive: bool,
    edited_at: float,
) -> None:
    """Replace a post's content after an edit."""
    await conn.execute(
        "UPDATE posts SET title = ?, source = ?, source_format = ?, content_html = ?,"
        " summary = ?, sensitive = ?, edited_at = ? WHERE id = ?",
        (title, source, source_format, content_html, summary, int(sensitive), edited_at, post_id),
    )


async def list_edits(db: Database, post_id: int) -> list[PostEdit]:
    """Earlier versions of a post, oldest first."""
    rows = await db.fetchall("SELECT * FROM post_edits WHERE post_id = ? ORDER BY id", (post_id,))
    return [
        PostEdit(
            id=r["id"],
            post_id=r["post_id"],
            title=r["title"],
            source=r["source"],
            content_html=r["content_html"],
            summary=r["summary"],
            sensitive=bool(r["sensitive"]),
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def tombstone(conn: Connection, post_id: int, now: float) -> None:
    """Delete a post's content, keeping a tombstone row so replies keep their place.

    Part of :func:`delete_post`, which is what deleting a post calls.
    """
    await conn.execute(
        "UPDATE posts SET title = '', source = '', content_html = '', summary = '',"
        " deleted_at = ? WHERE id = ?",
        (now, post_id),
    )
    for table in ("post_tags", "post_edits", "pins", "bookmarks", "likes"):
        await conn.execute(f"DELETE FROM {table} WHERE post_id = ?", (post_id,))
    await conn.execute("DELETE FROM media_attachments WHERE post_id = ?", (post_id,))
    await conn.execute("DELETE FROM posts WHERE reblog_of_id = ?", (post_id,))
    await conn.execute("DELETE FROM posts_fts WHERE rowid = ?", (post_id,))


async def delete_post(conn: Connection, post_id: int, now: float) -> bool:
    """Delete a post, whoever deletes it (its author here, or a Delete from its server).

    The one set of writes for both: the content goes (a tombstone row stays, so replies
    keep their place), and with it its tags, edits, pins, bookmarks, likes, media,
    boosts, emoji reactions and notifications; the post it answers counts one reply
    less. False (and nothing written) when the post is gone or already deleted.
    """
    async with conn.execute(
        "SELECT in_reply_to_id, deleted_at FROM posts WHERE id = ?", (post_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[1] is not None:
        return False
    await tombstone(conn, post_id, now)
    for table in ("reactions", "notifications"):
        await conn.execute(f"DELETE FROM {table} WHERE post_id = ?", (post_id,))
    if row[0] is not None:
        await add_to_counter(conn, row[0], "replies_count", -1)
    return True


async def add_boost(
    conn: Connection, *, boost_id: int, account_id: int, post_id: int, uri: str | None,
    url: str | None, visibility: str, local: bool, created_at: float,
) -> bool:
    """Record a boost (a click here, or an Announce from its server) and count it on the
    boosted post; False (nothing written) if the account already boosted it or the
    activity id is taken."""
    cursor = await conn.execute(
        "INSERT INTO posts (id, account_id, uri, url, visibility, reblog_of_id, local,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (boost_id, account_id, uri, url, visibility, post_id, int(local), created_at),
    )
    if cursor.rowcount != 1:
        return False
    await add_to_counter(conn, post_id, "reblogs_count", 1)
    return True


async def delete_boost(conn: Connection, boost: Post) -> bool:
    """Withdraw a boost row (an un-boost here, or an Undo Announce or Delete from its
    server): the boosted post counts one boost less and its "boosted" notification goes.
    False (nothing written) if the row was already gone."""
    cursor = await conn.execute("DELETE FROM posts WHERE id = ?", (boost.id,))
    if cursor.rowcount != 1 or boost.reblog_of_id is None:
        return False
    await add_to_counter(conn, boost.reblog_of_id, "reblogs_count", -1)
    await conn.execute(
        "DELETE FROM notifications WHERE type = 'boost' AND from_account_id = ?"
        " AND post_id = ?",
        (boost.account_id, boost.reblog_of_id),
    )
    return True


async def delete_posts_of(conn: Connection, account_id: int, now: float) -> None:
    """Delete every post and boost of an account (it was deleted), each by the writes of
    :func:`delete_post` and :func:`delete_boost`, and take back its emoji reactions."""
    rows = await conn.execute_fetchall(
        "SELECT * FROM posts WHERE account_id = ? AND (reblog_of_id IS NOT NULL"
        " OR deleted_at IS NULL)",
        (account_id,),
    )
    for row in rows:
        post = Post.from_row(row)
        if post.is_boost:
            await delete_boost(conn, post)
        else:
            await delete_post(conn, post.id, now)
    await conn.execute("DELETE FROM reactions WHERE account_id = ?", (account_id,))


async def count_outbox_posts(db: Database, account_id: int) -> int:
    """How many live public and unlisted posts and boosts an account has (its outbox's
    ``totalItems``)."""
    total = await db.fetchvalue(
        "SELECT COUNT(*) FROM posts WHERE account_id = ? AND deleted_at IS NULL"
        " AND visibility IN ('public', 'unlisted')",
        (account_id,),
    )
    return int(total or 0)


async def public_originals(db: Database, account_id: int, limit: int) -> list[Post]:
    """An account's newest live public posts of its own: top-level posts and replies to
    itself (threads), no boosts and no replies to others."""
    rows = await db.fetchall(
        "SELECT p.* FROM posts p WHERE p.account_id = ? AND p.visibility = 'public'"
        " AND p.deleted_at IS NULL AND p.reblog_of_id IS NULL"
        " AND (p.in_reply_to_id IS NULL OR EXISTS (SELECT 1 FROM posts pp"
        " WHERE pp.id = p.in_reply_to_id AND pp.account_id = p.account_id))"
        " ORDER BY p.id DESC LIMIT ?",
        (account_id, limit),
    )
    return [Post.from_row(row) for row in rows]


async def add_to_counter(conn: Connection, post_id: int, column: str, delta: int) -> None:
    """Adjust one of a post's counters, never below zero."""
    assert column in ("replies_count", "reblogs_count", "likes_count")
    await conn.execute(
        f"UPDATE posts SET {column} = {greatest(conn.dialect)}(0, {column} + ?) WHERE id = ?",
        (delta, post_id),
    )


async def boost_by(db: Database, account_id: int, post_id: int) -> Post | None:
    """An account's boost row of a post, if any."""
    row = await db.fetchone(
        "SELECT * FROM posts WHERE reblog_of_id = ? AND account_id = ?", (post_id, account_id)
    )
    return None if row is None else Post.from_row(row)


async def set_flag(
    conn: Connection,
    table: str,
    flag_id: int,
    account_id: int,
    post_id: int,
    now: float,
    on: bool,
) -> bool:
    """Add or remove a bookmark or pin; False if nothing changed."""
    assert table in ("bookmarks", "pins")
    if on:
        if table == "bookmarks":
            sql = (
                "INSERT INTO bookmarks (id, account_id, post_id, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account_id, post_id) DO NOTHING"
            )
            params: tuple[Any, ...] = (flag_id, account_id, post_id, now)
        else:
            sql = (
                "INSERT INTO pins (account_id, post_id, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account_id, post_id) DO NOTHING"
            )
            params = (account_id, post_id, now)
    else:
        sql = f"DELETE FROM {table} WHERE account_id = ? AND post_id = ?"
        params = (account_id, post_id)
    cursor = await conn.execute(sql, params)
    return cursor.rowcount == 1


async def is_pinned(conn: Connection, account_id: int, post_id: int) -> bool:
    """Whether the account has pinned the post."""
    async with conn.execute(
        "SELECT 1 FROM pins WHERE account_id = ? AND post_id = ?", (account_id, post_id)
    ) as cursor:
        return await cursor.fetchone() is not None


async def count_pins(conn: Connection, account_id: int) -> int:
    """How many posts an account has pinned."""
    async with conn.execute(
        "SELECT COUNT(*) FROM pins WHERE account_id = ?", (account_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def viewer_states(
    db: Database, viewer_id: int, post_ids: Sequence[int]
) -> dict[int, ViewerState]:
    """Which of the posts the viewer liked, boosted, bookmarked or pinned."""
    if not post_ids:
        return {}
    marks, ids = _marks(post_ids), list(post_ids)
    sql = (
        f"SELECT post_id, 'liked' FROM likes WHERE account_id = ? AND post_id IN ({marks})"
        f" UNION ALL SELECT reblog_of_id, 'boosted' FROM posts WHERE account_id = ?"
        f" AND reblog_of_id IN ({marks})"
        f" UNION ALL SELECT post_id, 'bookmarked' FROM bookmarks WHERE account_id = ?"
        f" AND post_id IN ({marks})"
        f" UNION ALL SELECT post_id, 'pinned' FROM pins WHERE account_id = ?"
        f" AND post_id IN ({marks})"
    )
    rows = await db.fetch_keyed(sql, [viewer_id, *ids] * 4, len(ids))
    flags: dict[int, dict[str, bool]] = defaultdict(dict)
    for row in rows:
        flags[row[0]][row[1]] = True
    return {post_id: ViewerState(**values) for post_id, values in flags.items()}


async def insert_media(conn: Connection, **fields: Any) -> None:
    """Insert a media attachment row."""
    columns = ", ".join(fields)
    await conn.execute(
        f"INSERT INTO media_attachments ({columns}) VALUES ({_marks(list(fields))})",
        list(fields.values()),
    )


async def replace_remote_media(
    conn: Connection, post_id: int, rows: Sequence[dict[str, Any]], *, new: bool = False
) -> None:
    """Set a remote post's attachments (links to the remote files; nothing is downloaded).

    ``new``: the post has no attachments yet.
    """
    if not new:
        await conn.execute("DELETE FROM media_attachments WHERE post_id = ?", (post_id,))
    for row in rows:
        await insert_media(conn, **row)


async def public_reply_uris(db: Database, post_id: int, limit: int) -> list[str]:
    """The ids of a post's live public and unlisted replies, newest first."""
    rows = await db.fetchall(
        "SELECT uri FROM posts WHERE in_reply_to_id = ? AND deleted_at IS NULL"
        " AND visibility IN ('public', 'unlisted') AND uri IS NOT NULL"
        " ORDER BY id DESC LIMIT ?",
        (post_id, limit),
    )
    return [row[0] for row in rows]


async def replace_pins(
    conn: Connection, account_id: int, post_ids: Sequence[int], now: float
) -> None:
    """Make ``post_ids`` an account's pins, newest first as listed (a remote featured
    collection read whole)."""
    await conn.execute("DELETE FROM pins WHERE account_id = ?", (account_id,))
    # Listed newest first; the pin times keep that order on the profile.
    await conn.executemany(
        "INSERT INTO pins (account_id, post_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id, post_id) DO NOTHING",
        [(account_id, post_id, now - n * 0.001) for n, post_id in enumerate(post_ids)],
    )


async def get_attachment(db: Database, attachment_id: int) -> MediaAttachment | None:
    """One media attachment by id."""
    row = await db.lookup("SELECT * FROM media_attachments WHERE id = ?", (attachment_id,))
    return MediaAttachment.from_row(row) if row is not None else None


async def media_of(db: Database, post_ids: Sequence[int]) -> dict[int, list[MediaAttachment]]:
    """Media attachments per post, in order."""
    found: dict[int, list[MediaAttachment]] = defaultdict(list)
    if post_ids:
        rows = await db.fetch_keyed(
            f"SELECT * FROM media_attachments WHERE post_id IN ({_marks(post_ids)})"
            " ORDER BY post_id, position",
            list(post_ids),
            len(post_ids),
        )
        for row in rows:
            found[row["post_id"]].append(MediaAttachment.from_row(row))
    return found


async def ancestor_ids(db: Database, post_id: int) -> list[int]:
    """Ids of the posts a post replies to, root first (bounded depth)."""
    rows = await db.fetchall(
        "WITH RECURSIVE up(id, parent, depth) AS ("
        " SELECT id, in_reply_to_id, 0 FROM posts WHERE id = ?"
        " UNION ALL SELECT p.id, p.in_reply_to_id, up.depth + 1 FROM posts p"
        " JOIN up ON p.id = up.parent WHERE up.depth < ?)"
        " SELECT id FROM up WHERE depth > 0 ORDER BY depth DESC",
        (post_id, MAX_THREAD_DEPTH),
    )
    return [row[0] for row in rows]


async def descendant_ids(db: Database, post_id: int) -> list[tuple[int, int]]:
    """(id, depth) of replies below a post, in thread order (bounded)."""
    # The path orders a thread depth-first: each id zero-padded, so text order is id order.
    padded, padded_p = zero_padded(db.dialect, "id", 20), zero_padded(db.dialect, "p.id", 20)
    rows = await db.fetchall(
        "WITH RECURSIVE down(id, depth, path) AS ("
        f" SELECT id, 1, {padded} FROM posts WHERE in_reply_to_id = ?"
        f" UNION ALL SELECT p.id, down.depth + 1, down.path || '/' || {padded_p}"
        " FROM posts p JOIN down ON p.in_reply_to_id = down.id WHERE down.depth < ?)"
        " SELECT id, depth FROM down ORDER BY path LIMIT ?",
        (post_id, MAX_THREAD_DEPTH, MAX_DESCENDANTS),
    )
    return [(row[0], row[1]) for row in rows]



async def get_attachments(db: Database, ids: Sequence[int]) -> dict[int, MediaAttachment]:
    """Media attachments by id (attached or not)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await db.fetch_keyed(
        f"SELECT * FROM media_attachments WHERE id IN ({_marks(wanted)})", wanted, len(wanted)
    )
    return {row["id"]: MediaAttachment.from_row(row) for row in rows}


async def attach_media(
    conn: Connection, account_id: int, post_id: int, media_ids: Sequence[int],
    first_position: int = 0,
) -> bool:
    """Attach an account's own unattached uploads to a post, in the order given; False
    (nothing should be kept) if any of them is no longer the account's unattached upload."""
    for offset, media_id in enumerate(media_ids):
        cursor = await conn.execute(
            "UPDATE media_attachments SET post_id = ?, position = ? WHERE id = ?"
            " AND account_id = ? AND post_id IS NULL",
            (post_id, first_position + offset, media_id, account_id),
        )
        if cursor.rowcount != 1:
            return False
    return True


async def reorder_media(conn: Connection, post_id: int, media_ids: Sequence[int]) -> None:
    """Give a post's attachments the positions of ``media_ids`` and delete the rest
    (what an edit removed)."""
    keep = list(media_ids)
    if keep:
        await conn.execute(
            f"DELETE FROM media_attachments WHERE post_id = ? AND id NOT IN ({_marks(keep)})",
            [post_id, *keep],
        )
    else:
        await conn.execute("DELETE FROM media_attachments WHERE post_id = ?", (post_id,))
    for position, media_id in enumerate(keep):
        await conn.execute(
            "UPDATE media_attachments SET position = ? WHERE id = ? AND post_id = ?",
            (position, media_id, post_id),
        )


async def prune_uploads(conn: Connection, account_id: int, before: float) -> None:
    """Forget an account's uploads that were never attached and are older than ``before``."""
    await conn.execute(
        "DELETE FROM media_attachments WHERE post_id IS NULL AND account_id = ?"
        " AND created_at < ?",
        (account_id, before),
    )


async def detach_media(conn: Connection, post_id: int) -> None:
    """Make a post's attachments unattached uploads of their owner again."""
    await conn.execute(
        "UPDATE media_attachments SET post_id = NULL WHERE post_id = ?", (post_id,)
    )


async def describe_media(
    conn: Connection, media_id: int, *, description: str,
    focus: tuple[float, float] | None,
) -> None:
    """Change an attachment's alt text and focal point (None: the centre)."""
    focus_x, focus_y = focus if focus is not None else (None, None)
    await conn.execute(
        "UPDATE media_attachments SET description = ?, focus_x = ?, focus_y = ? WHERE id = ?",
        (description, focus_x, focus_y, media_id),
    )


async def boosters(db: Database, post_id: int, cursor: Cursor) -> list[tuple[int, Account]]:
    """(boost id, account) of those who boosted a post, newest boost first, paged by the
    boost's id."""
    return await people_page(
        db, "posts b JOIN accounts a ON a.id = b.account_id WHERE b.reblog_of_id = ?",
        "b.id", post_id, cursor,
    )


async def people_page(
    db: Database, source: str, cursor_column: str, post_id: int, cursor: Cursor
) -> list[tuple[int, Account]]:
    """One page of (cursor, account) of the people who did something to a post (boosted,
    liked): ``source`` joins the interactions to ``accounts a`` and names the post with
    one ``?``; ``cursor_column`` orders and pages them. Suspended and deleted accounts
    are left out. Newest first (:mod:`xnode.store.paging`)."""
    cursor_sql, cursor_params = cursor.sql(cursor_column)
    rows = await db.fetchall(
        f"SELECT {cursor_column} AS page_cursor, a.* FROM {source}"
        " AND a.suspended_at IS NULL AND a.deleted_at IS NULL"
        f"{cursor_sql}{cursor.order_by(cursor_column)} LIMIT ?",
        [post_id, *cursor_params, cursor.page_size],
    )
    return [(row["page_cursor"], Account.from_row(row)) for row in cursor.newest_first(rows)]


async def can_see(db: Database, viewer_id: int, post_id: int) -> bool:
    """Whether an account may see a live post, by the one visibility rule."""
    condition, params = visible_sql(viewer_id)
    return await db.lookup(
        f"SELECT 1 FROM posts p WHERE p.id = ? AND p.deleted_at IS NULL AND {condition}",
        [post_id, *params],
    ) is not None


# --- emoji reactions (DMs here; Misskey/Pleroma reactions from other servers) ---------


async def insert_reaction(
    conn: Connection, reaction_id: int, account_id: int, post_id: int, emoji: str,
    uri: str | None, now: float,
) -> bool:
    """Record an emoji reaction; False if the same one existed."""
    cursor = await conn.execute(
        "INSERT INTO reactions (id, account_id, post_id, emoji, uri, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (reaction_id, account_id, post_id, emoji, uri, now),
    )
    return cursor.rowcount == 1


async def delete_reaction(
    conn: Connection, account_id: int, *, uri: str | None = None,
    post_id: int | None = None, emoji: str | None = None,
) -> int:
    """Remove reactions by activity id, or by post (and emoji); returns how many."""
    if uri is not None:
        cursor = await conn.execute(
            "DELETE FROM reactions WHERE account_id = ? AND uri = ?", (account_id, uri)
        )
        if cursor.rowcount or post_id is None:
            return cursor.rowcount
    sql = "DELETE FROM reactions WHERE account_id = ? AND post_id = ?"
    params: list[Any] = [account_id, post_id]
    if emoji is not None:
        sql, params = sql + " AND emoji = ?", [*params, emoji]
    cursor = await conn.execute(sql, params)
    return cursor.rowcount
