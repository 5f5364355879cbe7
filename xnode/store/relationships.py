"""SQL for follows, blocks and mutes."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.accounts.models import Account, Follow
from xnode.store.database import Connection, Database
from xnode.store.paging import Cursor


async def get_follow_state(db: Database, follower_id: int, target_id: int) -> str | None:
    """'accepted', 'pending' or None."""
    state: str | None = await db.lookup_value(
        "SELECT state FROM follows WHERE account_id = ? AND target_account_id = ?",
        (follower_id, target_id),
    )
    return state


async def follow_by_id(db: Database, follow_id: int) -> Follow | None:
    """A follow (or request) by its id (the ``/follows/ID`` of our own Follow activities)."""
    row = await db.fetchone("SELECT * FROM follows WHERE id = ?", (follow_id,))
    return None if row is None else Follow.from_row(row)


async def follow_by_uri(db: Database, uri: str) -> Follow | None:
    """A follow (or request) by the id of its Follow activity."""
    row = await db.fetchone("SELECT * FROM follows WHERE uri = ?", (uri,))
    return None if row is None else Follow.from_row(row)


async def follow_between(db: Database, follower_id: int, target_id: int) -> Follow | None:
    """The follow (or request) from one account to another, if any."""
    row = await db.fetchone(
        "SELECT * FROM follows WHERE account_id = ? AND target_account_id = ?",
        (follower_id, target_id),
    )
    return None if row is None else Follow.from_row(row)


async def viewer_edges(
    db: Database, viewer_id: int, author_ids: Sequence[int]
) -> tuple[set[int], set[int]]:
    """Of these authors: those the viewer follows (accepted), and those blocked either way.

    One query for a page's authors (hydration runs it for every page of posts).
    """
    if not author_ids:
        return set(), set()
    marks = ", ".join("?" for _ in author_ids)
    rows = await db.fetch_keyed(
        f"SELECT target_account_id, 'f' FROM follows WHERE account_id = ?"
        f" AND state = 'accepted' AND target_account_id IN ({marks})"
        f" UNION ALL SELECT target_account_id, 'b' FROM blocks WHERE account_id = ?"
        f" AND target_account_id IN ({marks})"
        f" UNION ALL SELECT account_id, 'b' FROM blocks WHERE target_account_id = ?"
        f" AND account_id IN ({marks})",
        [viewer_id, *author_ids] * 3,
        len(author_ids),
    )
    following: set[int] = set()
    blocked: set[int] = set()
    for row in rows:
        (following if row[1] == "f" else blocked).add(row[0])
    return following, blocked


async def upsert_follow(
    conn: Connection,
    follow_id: int,
    follower_id: int,
    target_id: int,
    state: str,
    now: float,
    uri: str | None = None,
) -> bool:
    """Create a follow (or request); False if one already existed.

    ``uri``: the id of the Follow activity (one from another server, whose Undo may name
    only that); a repeated Follow's newer id replaces the one kept.
    """
    cursor = await conn.execute(
        "INSERT INTO follows (id, account_id, target_account_id, state, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, target_account_id) DO NOTHING",
        (follow_id, follower_id, target_id, state, now),
    )
    created = cursor.rowcount == 1
    if created and state == "accepted":
        await _shift_remote_counts(conn, follower_id, target_id, 1)
    if uri is not None:
        # Never taken from another follow: the uri is unique.
        await conn.execute(
            "UPDATE follows SET uri = ? WHERE account_id = ? AND target_account_id = ?"
            " AND NOT EXISTS (SELECT 1 FROM follows WHERE uri = ?)",
            (uri, follower_id, target_id, uri),
        )
    return created


async def accept_follow(conn: Connection, follower_id: int, target_id: int) -> bool:
    """Turn a pending request into a follow; False if there was no pending request."""
    cursor = await conn.execute(
        "UPDATE follows SET state = 'accepted' WHERE account_id = ? AND target_account_id = ?"
        " AND state = 'pending'",
        (follower_id, target_id),
    )
    if cursor.rowcount == 1:
        await _shift_remote_counts(conn, follower_id, target_id, 1)
    return cursor.rowcount == 1


async def delete_follow(conn: Connection, follower_id: int, target_id: int) -> bool:
    """End a follow or request, whoever ends it (an unfollow, a follower removed, a
    request refused, a block, an Undo{Follow} or Reject from another server): the row
    and its "followed you" or request notification. False if there was none."""
    cursor = await conn.execute(
        "DELETE FROM follows WHERE account_id = ? AND target_account_id = ? RETURNING state",
        (follower_id, target_id),
    )
    removed = list(await cursor.fetchall())
    if not removed:
        return False
    if removed[0][0] == "accepted":
        await _shift_remote_counts(conn, follower_id, target_id, -1)
    await conn.execute(
        "DELETE FROM notifications WHERE type IN ('follow', 'follow_request')"
        " AND from_account_id = ? AND account_id = ?",
        (follower_id, target_id),
    )
    return True


async def delete_follows_of(
    conn: Connection, account_id: int, *, keep_remote_followers: bool = False
) -> None:
    """End every follow to and from an account (it was deleted), each by
    :func:`delete_follow`. ``keep_remote_followers``: a local account's followers on other
    servers stay, the audience of its Delete{actor}."""
    keep = " AND a.domain IS NULL" if keep_remote_followers else ""
    rows = await conn.execute_fetchall(
        "SELECT f.account_id, f.target_account_id FROM follows f"
        " JOIN accounts a ON a.id = f.account_id WHERE f.account_id = ?1"
        f" OR (f.target_account_id = ?1{keep})",
        (account_id,),
    )
    for follower_id, target_id in rows:
        await delete_follow(conn, follower_id, target_id)


async def _shift_remote_counts(
    conn: Connection, follower_id: int, target_id: int, delta: int
) -> None:
    """Keep the counts a remote server reported in step with a follow that starts or ends
    here (as Mastodon does), until the next read of that server: otherwise a remote
    profile says "1 follower" for hours after one more person here followed them."""
    for column, account_id in (("followers_count", target_id), ("following_count", follower_id)):
        await conn.execute(
            f"UPDATE accounts SET {column} = CASE WHEN {column} + ? < 0 THEN 0"
            f" ELSE {column} + ? END WHERE id = ? AND domain IS NOT NULL AND {column} IS NOT NULL",
            (delta, delta, account_id),
        )


async def add_block(
    conn: Connection, block_id: int, account_id: int, target_id: int, now: float,
    uri: str | None = None,
) -> tuple[bool, list[tuple[int, int]]]:
    """Block an account, whoever blocks (here, or a Block from another server, ``uri``
    its id): the block, and the follows both ways ended by :func:`delete_follow`.

    Returns whether the block is new and the (follower, followed) pairs that ended.
    """
    cursor = await conn.execute(
        "INSERT INTO blocks (id, account_id, target_account_id, uri, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, target_account_id) DO NOTHING",
        (block_id, account_id, target_id, uri, now),
    )
    created = cursor.rowcount == 1
    if not created and uri is not None:
        # A repeated Block: its Undo will name the newer id.
        await conn.execute(
            "UPDATE blocks SET uri = ? WHERE account_id = ? AND target_account_id = ?",
            (uri, account_id, target_id),
        )
    ended = [
        (follower, followed)
        for follower, followed in ((account_id, target_id), (target_id, account_id))
        if await delete_follow(conn, follower, followed)
    ]
    return created, ended


async def delete_block(
    conn: Connection, account_id: int, *, target_id: int | None = None, uri: str | None = None
) -> int | None:
    """Lift a block of ``account_id``'s, named by its target or by the Block's activity id;
    the target's id, or None if there was no such block."""
    if target_id is not None:
        cursor = await conn.execute(
            "DELETE FROM blocks WHERE account_id = ? AND target_account_id = ?"
            " RETURNING target_account_id",
            (account_id, target_id),
        )
    else:
        cursor = await conn.execute(
            "DELETE FROM blocks WHERE account_id = ? AND uri = ? RETURNING target_account_id",
            (account_id, uri),
        )
    removed = list(await cursor.fetchall())
    return int(removed[0][0]) if removed else None


async def set_mute(
    conn: Connection, mute_id: int, account_id: int, target_id: int, now: float, on: bool,
    expires_at: float | None = None,
) -> bool:
    """Add or remove a mute; False if nothing changed. A mute made again takes the new
    ``expires_at`` (None: for good), as Mastodon does."""
    if on:
        cursor = await conn.execute(
            "INSERT INTO mutes (id, account_id, target_account_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, target_account_id)"
            " DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE mutes.expires_at IS DISTINCT FROM excluded.expires_at",
            (mute_id, account_id, target_id, now, expires_at),
        )
    else:
        cursor = await conn.execute(
            "DELETE FROM mutes WHERE account_id = ? AND target_account_id = ?",
            (account_id, target_id),
        )
    return cursor.rowcount == 1


async def earliest_mute_end(db: Database) -> float | None:
    """When the first timed mute ends (None: no mute is timed): one probe of the
    ``mutes_expiring`` index, read inline."""
    value = await db.lookup_value(
        "SELECT MIN(expires_at) FROM mutes WHERE expires_at IS NOT NULL", ()
    )
    return None if value is None else float(value)


async def purge_expired_mutes(conn: Connection, now: float) -> int:
    """Delete mutes whose time ran out; how many went."""
    cursor = await conn.execute(
        "DELETE FROM mutes WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
    )
    return cursor.rowcount


async def has_edge(db: Database, table: str, account_id: int, target_id: int) -> bool:
    """Whether ``account_id`` blocks/mutes ``target_id``."""
    assert table in ("blocks", "mutes")
    return bool(
        await db.lookup_value(
            f"SELECT 1 FROM {table} WHERE account_id = ? AND target_account_id = ?",
            (account_id, target_id),
        )
    )


async def blocked_either_way(db: Database, a: int, b: int) -> bool:
    """Whether either account blocks the other."""
    return bool(
        await db.lookup_value(
            "SELECT 1 FROM blocks WHERE (account_id = ? AND target_account_id = ?)"
            " OR (account_id = ? AND target_account_id = ?)",
            (a, b, b, a),
        )
    )


async def list_related(
    db: Database,
    *,
    column: str,
    account_id: int,
    state: str,
    limit: int,
    max_id: int | None,
    min_id: int | None = None,
    since_id: int | None = None,
) -> list[tuple[int, Account]]:
    """(follow id, account) for followers (column='target') or following (column='follower'),
    newest follow first."""
    if column == "target":
        join, where = "f.account_id", "f.target_account_id = ?"
    else:
        join, where = "f.target_account_id", "f.account_id = ?"
    cursor = Cursor(max_id=max_id, min_id=min_id, since_id=since_id)
    cursor_sql, cursor_params = cursor.sql("f.id")
    rows = await db.fetchall(
        f"SELECT f.id AS follow_id, a.* FROM follows f JOIN accounts a ON a.id = {join}"
        f" WHERE {where} AND f.state = ? AND a.deleted_at IS NULL AND a.suspended_at IS NULL"
        f"{cursor_sql}{cursor.order_by('f.id')} LIMIT ?",
        [account_id, state, *cursor_params, limit],
    )
    return [(row["follow_id"], Account.from_row(row)) for row in cursor.newest_first(rows)]


async def list_edges(
    db: Database,
    table: str,
    account_id: int,
    *,
    now: float,
    limit: int,
    max_id: int | None = None,
    min_id: int | None = None,
    since_id: int | None = None,
) -> list[tuple[int, Account, float | None]]:
    """(block or mute id, account, when the mute ends) for whom ``account_id`` blocks or
    mutes, newest first; mutes whose time ran out are left out."""
    assert table in ("blocks", "mutes")
    cursor = Cursor(max_id=max_id, min_id=min_id, since_id=since_id)
    cursor_sql, cursor_params = cursor.sql("e.id")
    expires = "e.expires_at" if table == "mutes" else "NULL"
    live = " AND (e.expires_at IS NULL OR e.expires_at > ?)" if table == "mutes" else ""
    rows = await db.fetchall(
        f"SELECT e.id AS edge_id, {expires} AS edge_expires_at, a.* FROM {table} e"
        " JOIN accounts a ON a.id = e.target_account_id WHERE e.account_id = ?"
        f" AND a.deleted_at IS NULL AND a.suspended_at IS NULL{live}{cursor_sql}"
        f"{cursor.order_by('e.id')} LIMIT ?",
        [account_id, *([now] if live else []), *cursor_params, limit],
    )
    return [
        (row["edge_id"], Account.from_row(row), row["edge_expires_at"])
        for row in cursor.newest_first(rows)
    ]


async def familiar_followers(
    db: Database, viewer_id: int, target_id: int, limit: int
) -> list[Account]:
    """Accounts ``viewer_id`` follows that follow ``target_id`` (live ones, and only those
    who do not hide whom they follow)."""
    rows = await db.fetchall(
        "SELECT a.* FROM follows mine JOIN follows theirs"
        " ON theirs.account_id = mine.target_account_id AND theirs.target_account_id = ?"
        " AND theirs.state = 'accepted'"
        " JOIN accounts a ON a.id = mine.target_account_id"
        " WHERE mine.account_id = ? AND mine.state = 'accepted' AND a.deleted_at IS NULL"
        " AND a.suspended_at IS NULL AND a.hide_network = 0"
        " ORDER BY theirs.id DESC LIMIT ?",
        (target_id, viewer_id, limit),
    )
    return [Account.from_row(row) for row in rows]


async def relationship_facts(
    db: Database, viewer_id: int, target_id: int, now: float | None = None
) -> set[tuple[str, str]]:
    """What links ``viewer_id`` to ``target_id``: ('out'|'in', follow state), ('blocking'|
    'blocked_by'|'muting', ''). Five primary-key probes, read on the loop's thread.

    With ``now``, a mute whose time ran out (not purged yet) no longer counts.
    """
    rows = await db.lookup_all(
        "SELECT 'out', state FROM follows WHERE account_id = ? AND target_account_id = ?"
        " UNION ALL SELECT 'in', state FROM follows WHERE account_id = ?"
        " AND target_account_id = ?"
        " UNION ALL SELECT 'blocking', '' FROM blocks WHERE account_id = ?"
        " AND target_account_id = ?"
        " UNION ALL SELECT 'blocked_by', '' FROM blocks WHERE account_id = ?"
        " AND target_account_id = ?"
        " UNION ALL SELECT 'muting', '' FROM mutes WHERE account_id = ?"
        " AND target_account_id = ? AND (expires_at IS NULL OR expires_at > ?)",
        # Without ``now`` every mute counts (expiry times are all after 0).
        (viewer_id, target_id, target_id, viewer_id) * 2
        + (viewer_id, target_id, now if now is not None else 0.0),
    )
    return {(row[0], row[1]) for row in rows}


async def pending_request_count(db: Database, account_id: int) -> int:
    """How many follow requests wait for ``account_id`` (from live accounts)."""
    value = await db.fetchvalue(
        "SELECT COUNT(*) FROM follows f JOIN accounts a ON a.id = f.account_id"
        " WHERE f.target_account_id = ? AND f.state = 'pending'"
        " AND a.deleted_at IS NULL AND a.suspended_at IS NULL",
        (account_id,),
    )
    return int(value or 0)


async def count_related(db: Database, *, column: str, account_id: int) -> int:
    """How many accepted followers (column='target') or followings (column='follower')."""
    where = "target_account_id" if column == "target" else "account_id"
    other = "account_id" if column == "target" else "target_account_id"
    return int(
        await db.fetchvalue(
            f"SELECT COUNT(*) FROM follows f JOIN accounts a ON a.id = f.{other}"
            f" WHERE f.{where} = ? AND f.state = 'accepted' AND a.deleted_at IS NULL"
            " AND a.suspended_at IS NULL",
            (account_id,),
        )
        or 0
    )


async def followers_among(db: Database, target_id: int, candidates: list[int]) -> list[int]:
    """Which of ``candidates`` follow ``target_id`` (accepted): a few ids, read inline."""
    if not candidates:
        return []
    marks = ", ".join("?" for _ in candidates)
    rows = await db.lookup_all(
        "SELECT account_id FROM follows WHERE target_account_id = ? AND state = 'accepted'"
        f" AND account_id IN ({marks})",
        (target_id, *candidates),
    )
    return [row[0] for row in rows]


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
