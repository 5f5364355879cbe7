"""SQL for what arrives from other servers: remote accounts and keys, remote posts and
interactions, the inbox queue and reports (domain blocks: ``domain_blocks``).

Being split into the modules of each aggregate (issue 18: one module per aggregate,
none for "things from remote servers"): follows, deleting posts and boosts, emoji
reactions and the visibility check already live in ``relationships`` and ``posts``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xnode.accounts.models import Account
from xnode.posts.models import Post
from xnode.store import posts as post_store
from xnode.store.database import Connection, Database, Row

# --- accounts and keys -------------------------------------------------------------


@dataclass(frozen=True)
class RemoteAccountRow:
    """The columns we keep for a remote actor (see ``resolver`` for where each comes from)."""

    uri: str
    username: str
    domain: str
    display_name: str
    bio_source: str
    bio_html: str
    fields_json: str
    url: str | None
    locked: bool
    discoverable: bool
    actor_type: str
    inbox_url: str
    shared_inbox_url: str | None
    outbox_url: str | None
    followers_url: str | None
    following_url: str | None
    featured_url: str | None
    also_known_as: tuple[str, ...]
    avatar_remote_url: str | None
    header_remote_url: str | None
    supports_calls: bool = False


async def account_by_uri(db: Database, uri: str) -> Account | None:
    """Any account (local or remote) by its actor URI."""
    row = await db.lookup("SELECT * FROM accounts WHERE uri = ?", (uri,))
    return None if row is None else Account.from_row(row)


async def upsert_remote_account(
    conn: Connection, new_id: int, data: RemoteAccountRow, now: float
) -> int:
    """Insert or refresh a remote account by URI; returns its id.

    A handle is unique per domain, but servers do recreate actors under an old
    name (a deleted and re-registered Mastodon user has a new key but the same
    URI; Misskey reuses names with new ids). When another row holds the handle
    with a different URI, that older row gives the handle up: it keeps its
    posts, renamed out of the way, and the newest actor owns the name.
    """
    key = data.username.lower()
    await conn.execute(
        "UPDATE accounts SET username_key = username_key || '~' || id"
        " WHERE domain = ? AND username_key = ? AND uri IS DISTINCT FROM ?",
        (data.domain, key, data.uri),
    )
    values = (
        data.username, key, data.domain, data.display_name, data.bio_source, data.bio_html,
        data.fields_json, int(data.locked), int(data.discoverable), data.url, data.actor_type,
        data.inbox_url, data.shared_inbox_url, data.outbox_url, data.followers_url,
        data.following_url, data.featured_url, json.dumps(list(data.also_known_as)),
        data.avatar_remote_url, data.header_remote_url, int(data.supports_calls), now,
    )  # fmt: skip
    async with conn.execute(
        "UPDATE accounts SET username = ?, username_key = ?, domain = ?, display_name = ?,"
        " bio_source = ?, bio_html = ?, fields_json = ?, locked = ?, discoverable = ?, url = ?,"
        " actor_type = ?, inbox_url = ?, shared_inbox_url = ?, outbox_url = ?,"
        " followers_url = ?, following_url = ?, featured_url = ?, also_known_as = ?,"
        " avatar_remote_url = ?, header_remote_url = ?, supports_calls = ?, fetched_at = ?,"
        " updated_at = ?"
        " WHERE uri = ? AND domain IS NOT NULL RETURNING id",
        (*values, now, data.uri),
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None:
        account_id = int(row[0])
    else:
        account_id = new_id
        await conn.execute(
            "INSERT INTO accounts (username, username_key, domain, display_name, bio_source,"
            " bio_html, fields_json, locked, discoverable, url, actor_type, inbox_url,"
            " shared_inbox_url, outbox_url, followers_url, following_url, featured_url,"
            " also_known_as, avatar_remote_url, header_remote_url, supports_calls, fetched_at,"
            " id, uri, created_at, updated_at)"
            f" VALUES ({', '.join('?' * 26)})",
            (*values, account_id, data.uri, now, now),
        )
    # The account may have been deleted and come back (Mastodon lets a user
    # cancel a deletion for a while): a fetch that succeeds means it lives.
    await conn.execute("UPDATE accounts SET deleted_at = NULL WHERE id = ?", (account_id,))
    await conn.execute("DELETE FROM accounts_fts WHERE rowid = ?", (account_id,))
    await conn.execute(
        "INSERT INTO accounts_fts (rowid, handle, display_name, bio)"
        " SELECT id, username || '@' || domain, display_name, bio_source FROM accounts"
        " WHERE id = ? AND discoverable = 1",
        (account_id,),
    )
    return account_id


async def replace_remote_keys(
    conn: Connection,
    account_id: int,
    keys: Sequence[tuple[int, str, str, str]],
    now: float,
) -> None:
    """Make ``(row id, key id, algorithm, public PEM)`` the account's only cached keys.

    Keys the actor no longer lists are dropped (rotation). A key id cached for
    another account is left alone: an actor cannot take over someone else's key.
    """
    wanted = [key_id for _, key_id, _, _ in keys]
    marks = ", ".join("?" for _ in wanted) or "''"
    await conn.execute(
        f"DELETE FROM account_keys WHERE account_id = ? AND private_pem IS NULL"
        f" AND key_id NOT IN ({marks})",
        (account_id, *wanted),
    )
    for row_id, key_id, algorithm, pem in keys:
        await conn.execute(
            "INSERT INTO account_keys (id, account_id, key_id, algorithm, public_pem,"
            " private_pem, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)"
            " ON CONFLICT (key_id) DO UPDATE SET public_pem = excluded.public_pem,"
            " algorithm = excluded.algorithm WHERE account_keys.account_id = excluded.account_id"
            " AND account_keys.private_pem IS NULL",
            (row_id, account_id, key_id, algorithm, pem, now),
        )


async def mark_account_deleted(conn: Connection, account_id: int, now: float) -> None:
    """Forget what a deleted remote actor left: posts, boosts, likes, follows, keys.

    Posts become tombstones (replies by others keep their place in threads).
    """
    posts = await conn.execute_fetchall(
        "SELECT id FROM posts WHERE account_id = ? AND reblog_of_id IS NULL"
        " AND deleted_at IS NULL",
        (account_id,),
    )
    for (post_id,) in posts:
        await post_store.delete_post(conn, post_id, now)
    boosts = await conn.execute_fetchall(
        "SELECT id, reblog_of_id FROM posts WHERE account_id = ? AND reblog_of_id IS NOT NULL",
        (account_id,),
    )
    for boost_id, original_id in boosts:
        await conn.execute("DELETE FROM posts WHERE id = ?", (boost_id,))
        await post_store.add_to_counter(conn, original_id, "reblogs_count", -1)
    likes = await conn.execute_fetchall(
        "SELECT post_id FROM likes WHERE account_id = ?", (account_id,)
    )
    for (post_id,) in likes:
        await post_store.add_to_counter(conn, post_id, "likes_count", -1)
    for statement in (
        "DELETE FROM likes WHERE account_id = ?",
        "DELETE FROM reactions WHERE account_id = ?",
        "DELETE FROM follows WHERE account_id = ?1 OR target_account_id = ?1",
        "DELETE FROM notifications WHERE from_account_id = ?",
        "DELETE FROM account_keys WHERE account_id = ? AND private_pem IS NULL",
        "DELETE FROM accounts_fts WHERE rowid = ?",
    ):
        await conn.execute(statement, (account_id,))
    await conn.execute(
        "UPDATE accounts SET display_name = '', bio_source = '', bio_html = '',"
        " fields_json = '[]', avatar_remote_url = NULL, header_remote_url = NULL,"
        " deleted_at = ?, updated_at = ? WHERE id = ? AND domain IS NOT NULL",
        (now, now, account_id),
    )


async def set_moved_to(conn: Connection, account_id: int, target_id: int) -> None:
    """Record that an account moved to another (Move activity)."""
    await conn.execute(
        "UPDATE accounts SET moved_to_account_id = ? WHERE id = ?", (target_id, account_id)
    )


# --- posts --------------------------------------------------------------------------


async def post_by_uri(db: Database, uri: str) -> Post | None:
    """A post (or boost row) by its ActivityPub id."""
    row = await db.lookup("SELECT * FROM posts WHERE uri = ?", (uri,))
    return None if row is None else Post.from_row(row)


async def mentioned_ids(db: Database, post_id: int) -> list[int]:
    """The accounts a post mentions."""
    rows = await db.lookup_all("SELECT account_id FROM mentions WHERE post_id = ?", (post_id,))
    return [row[0] for row in rows]


async def replace_remote_media(
    conn: Connection, post_id: int, rows: Sequence[dict[str, Any]], *,
    new: bool = False,
) -> None:
    """Set a remote post's attachments (links to the remote files; nothing is downloaded).

    ``new``: the post has no attachments yet.
    """
    if not new:
        await conn.execute("DELETE FROM media_attachments WHERE post_id = ?", (post_id,))
    for row in rows:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        await conn.execute(
            f"INSERT INTO media_attachments ({columns}) VALUES ({marks})", list(row.values())
        )


async def insert_boost(conn: Connection, **fields: Any) -> bool:
    """Insert a boost row unless this account already boosted the post (or the uri exists)."""
    columns = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    cursor = await conn.execute(
        f"INSERT INTO posts ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        list(fields.values()),
    )
    if cursor.rowcount == 1:
        await post_store.add_to_counter(conn, fields["reblog_of_id"], "reblogs_count", 1)
    return cursor.rowcount == 1


async def insert_like(
    conn: Connection, like_id: int, account_id: int, post_id: int, uri: str | None,
    now: float,
) -> bool:
    """Record a remote like with its activity id; False if it already existed."""
    cursor = await conn.execute(
        "INSERT INTO likes (id, account_id, post_id, uri, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (like_id, account_id, post_id, uri, now),
    )
    if cursor.rowcount == 1:
        await post_store.add_to_counter(conn, post_id, "likes_count", 1)
    return cursor.rowcount == 1


async def find_like(
    db: Database, account_id: int, *, uri: str | None = None, post_id: int | None = None
) -> Row | None:
    """A like by this account, by its activity id or by the post."""
    if uri is not None:
        row = await db.fetchone(
            "SELECT * FROM likes WHERE uri = ? AND account_id = ?", (uri, account_id)
        )
        if row is not None or post_id is None:
            return row
    return await db.fetchone(
        "SELECT * FROM likes WHERE account_id = ? AND post_id = ?", (account_id, post_id)
    )


async def delete_like(conn: Connection, like: Row) -> None:
    """Withdraw a like (Undo Like) and its notification."""
    cursor = await conn.execute("DELETE FROM likes WHERE id = ?", (like["id"],))
    if cursor.rowcount == 1:
        await post_store.add_to_counter(conn, like["post_id"], "likes_count", -1)
    await conn.execute(
        "DELETE FROM notifications WHERE type = 'like' AND from_account_id = ? AND post_id = ?",
        (like["account_id"], like["post_id"]),
    )


# --- follows and blocks --------------------------------------------------------------


async def set_follow_uri(conn: Connection, follow_id: int, uri: str | None) -> None:
    """Remember the remote Follow's id (its Undo may name only that)."""
    if uri is None:
        return
    await conn.execute(
        "UPDATE follows SET uri = ? WHERE id = ? AND NOT EXISTS"
        " (SELECT 1 FROM follows WHERE uri = ? AND id <> ?)",
        (uri, follow_id, uri, follow_id),
    )


async def block_from(
    conn: Connection, block_id: int, account_id: int, target_id: int, uri: str | None,
    now: float,
) -> None:
    """Record that a remote account blocks a local one."""
    await conn.execute(
        "INSERT INTO blocks (id, account_id, target_account_id, uri, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, target_account_id)"
        " DO UPDATE SET uri = excluded.uri",
        (block_id, account_id, target_id, uri, now),
    )


async def unblock_from(
    conn: Connection, account_id: int, *, uri: str | None, target_id: int | None
) -> int:
    """Lift a remote account's block, by activity id or target; returns rows removed."""
    if target_id is not None:
        cursor = await conn.execute(
            "DELETE FROM blocks WHERE account_id = ? AND target_account_id = ?",
            (account_id, target_id),
        )
    else:
        cursor = await conn.execute(
            "DELETE FROM blocks WHERE account_id = ? AND uri = ?", (account_id, uri)
        )
    return cursor.rowcount


async def local_followers(db: Database, account_id: int) -> list[tuple[int, Account]]:
    """(follow id, local follower) for every local account following ``account_id``."""
    rows = await db.fetchall(
        "SELECT f.id AS follow_id, a.* FROM follows f JOIN accounts a ON a.id = f.account_id"
        " WHERE f.target_account_id = ? AND a.domain IS NULL AND a.deleted_at IS NULL",
        (account_id,),
    )
    return [(row["follow_id"], Account.from_row(row)) for row in rows]


async def has_local_follower(db: Database, account_id: int) -> bool:
    """Whether any local account follows (accepted) this account."""
    return await db.lookup(
        "SELECT 1 FROM follows f JOIN accounts a ON a.id = f.account_id"
        " WHERE f.target_account_id = ? AND f.state = 'accepted' AND a.domain IS NULL"
        " LIMIT 1",
        (account_id,),
    ) is not None


# --- reports ------------------------------------------------------------------------


async def insert_report(
    conn: Connection, report_id: int, *, reporter_id: int, target_id: int,
    post_ids: Sequence[int], comment: str, activity_uri: str | None, now: float,
) -> None:
    """File a report from a Flag activity."""
    await conn.execute(
        "INSERT INTO reports (id, reporter_account_id, target_account_id, post_ids, comment,"
        " activity_uri, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (report_id, reporter_id, target_id, json.dumps(list(post_ids)), comment, activity_uri,
         now),
    )
