"""SQL for conversations (direct messages), their members, read markers and DM settings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xnode.store.database import Connection, Database, Row, greatest
from xnode.store.paging import Cursor

DM_POLICIES = ("everyone", "following", "nobody")


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


async def _one(
    conn: Connection, sql: str, params: Sequence[object]
) -> Row | None:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _all(conn: Connection, sql: str, params: Sequence[object]) -> list[Row]:
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


# --- finding the conversation a message belongs to (inside the write transaction) ---


async def conversation_of_post(conn: Connection, post_id: int) -> int | None:
    """The conversation a stored post belongs to, if any."""
    row = await _one(conn, "SELECT conversation_id FROM posts WHERE id = ?", (post_id,))
    return None if row is None else row[0]


async def member_ids_in(conn: Connection, conversation_id: int) -> set[int]:
    """Every participant of a conversation (local and remote)."""
    rows = await _all(
        conn,
        "SELECT account_id FROM conversation_members WHERE conversation_id = ?",
        (conversation_id,),
    )
    return {row[0] for row in rows}


async def by_uri_with_member(conn: Connection, uri: str, account_id: int) -> int | None:
    """The newest conversation with this context uri that ``account_id`` takes part in."""
    row = await _one(
        conn,
        "SELECT c.id FROM conversations c JOIN conversation_members m"
        " ON m.conversation_id = c.id AND m.account_id = ?"
        " WHERE c.uri = ? ORDER BY c.id DESC LIMIT 1",
        (account_id, uri),
    )
    return None if row is None else row[0]


async def by_exact_members(conn: Connection, member_ids: set[int]) -> int | None:
    """The most recently active conversation whose participants are exactly ``member_ids``."""
    ids = sorted(member_ids)
    row = await _one(
        conn,
        "SELECT c.id FROM conversations c WHERE c.protocol = 'plain'"
        " AND (SELECT COUNT(*) FROM conversation_members m WHERE m.conversation_id = c.id) = ?"
        f" AND (SELECT COUNT(*) FROM conversation_members m WHERE m.conversation_id = c.id"
        f" AND m.account_id IN ({_marks(ids)})) = ?"
        " AND EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = c.id"
        " AND m.account_id = ?)"
        " ORDER BY c.last_activity_at DESC LIMIT 1",
        (len(ids), *ids, len(ids), ids[0]),
    )
    return None if row is None else row[0]


async def insert_conversation(
    conn: Connection,
    conversation_id: int,
    uri: str | None,
    created_by: int,
    now: float,
) -> None:
    """Create a conversation (members are added separately)."""
    await conn.execute(
        "INSERT INTO conversations (id, uri, created_by, last_activity_at, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (conversation_id, uri, created_by, now, now),
    )


async def give_uri(db: Database, conversation_id: int, uri: str) -> str:
    """Set a conversation's id if it has none; returns the id it has now."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE conversations SET uri = ? WHERE id = ? AND uri IS NULL", (uri, conversation_id)
        )
        async with conn.execute(
            "SELECT uri FROM conversations WHERE id = ?", (conversation_id,)
        ) as cursor:
            row = await cursor.fetchone()
    return str(row[0]) if row is not None and row[0] else uri


async def latest_message_id(db: Database, conversation_id: int, viewer_id: int) -> int | None:
    """The newest live message of a conversation that ``viewer_id`` can see."""
    return (await latest_message_ids(db, [conversation_id], viewer_id)).get(conversation_id)


async def latest_message_ids(
    db: Database, conversation_ids: Sequence[int], viewer_id: int
) -> dict[int, int]:
    """:func:`latest_message_id` of several conversations, by conversation (those with no
    such message left out)."""
    if not conversation_ids:
        return {}
    rows = await db.fetchall(
        "SELECT p.conversation_id, MAX(p.id) FROM posts p"
        f" WHERE p.conversation_id IN ({_marks(conversation_ids)}) AND p.deleted_at IS NULL"
        " AND (p.account_id = ? OR EXISTS (SELECT 1 FROM mentions vm WHERE vm.post_id = p.id"
        " AND vm.account_id = ?)) GROUP BY p.conversation_id",
        [*conversation_ids, viewer_id, viewer_id],
    )
    return {int(row[0]): int(row[1]) for row in rows}


async def previous_message_ids(db: Database, post_ids: Sequence[int]) -> dict[int, int | None]:
    """For each message, the id of the message just before it in its conversation."""
    if not post_ids:
        return {}
    marks = ", ".join("?" for _ in post_ids)
    rows = await db.fetch_keyed(
        "SELECT p.id, (SELECT MAX(q.id) FROM posts q WHERE q.conversation_id = p.conversation_id"
        f" AND q.id < p.id) FROM posts p WHERE p.id IN ({marks})",
        list(post_ids), len(post_ids),
    )
    return {row[0]: row[1] for row in rows}


async def add_member(
    conn: Connection, conversation_id: int, account_id: int, state: str, now: float
) -> None:
    """Add a participant (no change if already there)."""
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, account_id, state,"
        " joined_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (conversation_id, account_id, state, now),
    )


async def set_member_state(
    conn: Connection, conversation_id: int, account_id: int, state: str
) -> bool:
    """Change a participant's state; whether anything changed."""
    cursor = await conn.execute(
        "UPDATE conversation_members SET state = ? WHERE conversation_id = ? AND account_id = ?"
        " AND state <> ?",
        (state, conversation_id, account_id, state),
    )
    return cursor.rowcount > 0


async def record_message(
    conn: Connection, conversation_id: int, post_id: int, now: float
) -> None:
    """Attach a post to a conversation and move the conversation to the top."""
    await conn.execute(
        "UPDATE posts SET conversation_id = ? WHERE id = ?", (conversation_id, post_id)
    )
    await conn.execute(
        f"UPDATE conversations SET last_message_id = {greatest(conn.dialect)}"
        "(COALESCE(last_message_id, 0), ?), last_activity_at = ? WHERE id = ?",
        (post_id, now, conversation_id),
    )


async def mark_read_in(
    conn: Connection, conversation_id: int, account_id: int, up_to_id: int
) -> bool:
    """Move a member's read marker forward (never back); whether it moved."""
    cursor = await conn.execute(
        "UPDATE conversation_members SET last_read_id = ? WHERE conversation_id = ?"
        " AND account_id = ? AND last_read_id < ?",
        (up_to_id, conversation_id, account_id, up_to_id),
    )
    return cursor.rowcount > 0


async def is_following(conn: Connection, follower_id: int, target_id: int) -> bool:
    """Whether ``follower_id`` follows ``target_id`` (accepted)."""
    row = await _one(
        conn,
        "SELECT 1 FROM follows WHERE account_id = ? AND target_account_id = ?"
        " AND state = 'accepted'",
        (follower_id, target_id),
    )
    return row is not None


async def blocked_either_way_in(conn: Connection, a: int, b: int) -> bool:
    """Whether either account blocks the other."""
    row = await _one(
        conn,
        "SELECT 1 FROM blocks WHERE (account_id = ? AND target_account_id = ?)"
        " OR (account_id = ? AND target_account_id = ?)",
        (a, b, b, a),
    )
    return row is not None


async def dm_policy_in(conn: Connection, account_id: int) -> str:
    """Who may start a conversation with a local account."""
    row = await _one(conn, "SELECT dm_policy FROM accounts WHERE id = ?", (account_id,))
    return "everyone" if row is None else row[0]


async def drop_recipients(
    conn: Connection, post_id: int, account_ids: Iterable[int]
) -> None:
    """Take recipients off a message: without the mention they can never see it."""
    ids = list(account_ids)
    if ids:
        await conn.execute(
            f"DELETE FROM mentions WHERE post_id = ? AND account_id IN ({_marks(ids)})",
            (post_id, *ids),
        )
        await conn.execute(
            f"DELETE FROM notifications WHERE post_id = ? AND account_id IN ({_marks(ids)})",
            (post_id, *ids),
        )


# --- reading ---------------------------------------------------------------------


async def conversation_id_of(db: Database, post_id: int) -> int | None:
    """The conversation a post belongs to (None: not a direct message, or no such post).

    Synchronous and inline (one column by the primary key): the inbox process asks
    this of every post it stores, to decide whether the serving process must hear of it.
    """
    found: int | None = await db.lookup_value(
        "SELECT conversation_id FROM posts WHERE id = ?", (post_id,)
    )
    return found


async def members_of(db: Database, conversation_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(conversation id, account id) of every member of these conversations, in joining order
    within each conversation."""
    if not conversation_ids:
        return []
    rows = await db.fetchall(
        "SELECT conversation_id, account_id FROM conversation_members"
        f" WHERE conversation_id IN ({_marks(conversation_ids)}) ORDER BY joined_at, account_id",
        list(conversation_ids),
    )
    return [(row[0], row[1]) for row in rows]


async def local_members(db: Database, conversation_id: int) -> list[tuple[int, str]]:
    """(account id, state) of a conversation's members on this node.

    At most 32 rows (``xnode.dms.placement.MAX_PARTICIPANTS``) by the primary key: inline,
    no thread hop.
    """
    rows = await db.lookup_all(
        "SELECT m.account_id, m.state FROM conversation_members m JOIN accounts a"
        " ON a.id = m.account_id WHERE m.conversation_id = ? AND a.domain IS NULL",
        (conversation_id,),
    )
    return [(row[0], row[1]) for row in rows]


async def get_conversation(db: Database, conversation_id: int) -> Row | None:
    """One conversation row."""
    return await db.lookup("SELECT * FROM conversations WHERE id = ?", (conversation_id,))


async def membership(db: Database, conversation_id: int, account_id: int) -> Row | None:
    """A member's row (state, read marker), or None."""
    return await db.lookup(
        "SELECT * FROM conversation_members WHERE conversation_id = ? AND account_id = ?",
        (conversation_id, account_id),
    )


async def member_ids(db: Database, conversation_id: int) -> list[int]:
    """Every participant's account id."""
    rows = await db.lookup_all(
        "SELECT account_id FROM conversation_members WHERE conversation_id = ?",
        (conversation_id,),
    )
    return [row[0] for row in rows]


async def members(db: Database, conversation_id: int) -> list[Row]:
    """Every member row of a conversation, in joining order."""
    return await db.lookup_all(  # at most 32 rows, by the primary key
        "SELECT * FROM conversation_members WHERE conversation_id = ? ORDER BY joined_at,"
        " account_id",
        (conversation_id,),
    )


# A message counts for a member when it is live, not theirs, and addressed to them.
_UNREAD = (
    "SELECT COUNT(*) FROM posts p JOIN mentions vm ON vm.post_id = p.id AND vm.account_id"
    " = m.account_id WHERE p.conversation_id = m.conversation_id AND p.id > m.last_read_id"
    " AND p.deleted_at IS NULL AND p.account_id <> m.account_id"
)


async def list_for(
    db: Database, account_id: int, state: str, *, before: float | None, limit: int
) -> list[Row]:
    """A member's conversations in one state, most recently active first, with unread counts."""
    params: list[object] = [account_id, state]
    cursor = ""
    if before is not None:
        cursor = " AND c.last_activity_at < ?"
        params.append(before)
    params.append(limit)
    return await db.fetchall(
        f"SELECT c.*, m.state, m.last_read_id, ({_UNREAD}) AS unread"
        " FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE m.account_id = ? AND m.state = ?{cursor}"
        " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ?",
        params,
    )


async def unread_summary(db: Database, account_id: int) -> tuple[int, int]:
    """(accepted conversations with unread messages, pending requests with unread messages)."""
    row = await db.fetchone(
        "SELECT"
        f" COUNT(CASE WHEN m.state = 'accepted' AND ({_UNREAD}) > 0 THEN 1 END),"
        f" COUNT(CASE WHEN m.state = 'request' AND ({_UNREAD}) > 0 THEN 1 END)"
        " FROM conversation_members m WHERE m.account_id = ? AND m.state <> 'declined'",
        (account_id,),
    )
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


async def unread_in(db: Database, conversation_id: int, account_id: int) -> int:
    """Unread messages for one member of one conversation."""
    value = await db.fetchvalue(
        f"SELECT ({_UNREAD}) FROM conversation_members m WHERE m.conversation_id = ?"
        " AND m.account_id = ?",
        (conversation_id, account_id),
    )
    return int(value or 0)


async def message_ids(
    db: Database, conversation_id: int, viewer_id: int, *, before_id: int | None, limit: int
) -> list[int]:
    """Ids of the messages a member can see, newest first (tombstones included)."""
    params: list[object] = [conversation_id, viewer_id, viewer_id]
    cursor = ""
    if before_id is not None:
        cursor = " AND p.id < ?"
        params.append(before_id)
    params.append(limit)
    rows = await db.fetchall(
        "SELECT p.id FROM posts p WHERE p.conversation_id = ?"
        " AND (p.account_id = ? OR EXISTS (SELECT 1 FROM mentions vm WHERE vm.post_id = p.id"
        f" AND vm.account_id = ?)){cursor} ORDER BY p.id DESC LIMIT ?",
        params,
    )
    return [row[0] for row in rows]


async def reactions_of(db: Database, post_ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """(emoji, account id) pairs per post, oldest first."""
    found: dict[int, list[tuple[str, int]]] = {}
    if post_ids:
        rows = await db.fetch_keyed(
            f"SELECT post_id, emoji, account_id FROM reactions WHERE post_id IN"
            f" ({_marks(post_ids)}) ORDER BY id",
            list(post_ids),
            len(post_ids),
        )
        for row in rows:
            found.setdefault(row[0], []).append((row[1], row[2]))
    return found


async def get_dm_policy(db: Database, account_id: int) -> str:
    """Who may start a conversation with a local account."""
    row = await db.lookup("SELECT dm_policy FROM accounts WHERE id = ?", (account_id,))
    return (row[0] if row is not None else None) or "everyone"


async def set_dm_policy(conn: Connection, account_id: int, policy: str) -> None:
    """Change who may start a conversation with a local account."""
    await conn.execute("UPDATE accounts SET dm_policy = ? WHERE id = ?", (policy, account_id))


async def reaction_uri_in(
    conn: Connection, account_id: int, post_id: int, emoji: str
) -> str | None:
    """The activity id of one account's reaction, before it is removed."""
    row = await _one(
        conn,
        "SELECT uri FROM reactions WHERE account_id = ? AND post_id = ? AND emoji = ?",
        (account_id, post_id, emoji),
    )
    return None if row is None else row[0]


_LISTED = (
    f"SELECT c.*, m.state, m.last_read_id, ({_UNREAD}) AS unread"
    " FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id"
)


# Taken off the member's list in an app, until a newer message comes.
_NOT_REMOVED = " AND (m.removed_up_to IS NULL OR c.last_message_id > m.removed_up_to)"


async def remove_from_list(
    conn: Connection, conversation_id: int, account_id: int
) -> bool:
    """Take a conversation off a member's list up to its latest message; whether it was
    listed."""
    cursor = await conn.execute(
        "UPDATE conversation_members SET removed_up_to = (SELECT last_message_id FROM"
        " conversations WHERE id = ?) WHERE conversation_id = ? AND account_id = ?",
        (conversation_id, conversation_id, account_id),
    )
    return cursor.rowcount > 0


async def list_by_last_message(
    db: Database,
    account_id: int,
    states: Sequence[str],
    *,
    max_id: int | None = None,
    min_id: int | None = None,
    since_id: int | None = None,
    limit: int,
) -> list[Row]:
    """A member's conversations in some states that have a message, ordered by their
    latest message's id (newest first), which is also the cursor: ``max_id`` below,
    ``since_id`` the newest above, ``min_id`` the ones just above (read upwards)."""
    sql = (
        f"{_LISTED} WHERE m.account_id = ? AND m.state IN ({_marks(states)})"
        f" AND c.last_message_id IS NOT NULL{_NOT_REMOVED}"
    )
    params: list[object] = [account_id, *states]
    cursor = Cursor(max_id=max_id, min_id=min_id, since_id=since_id)
    cursor_sql, cursor_params = cursor.sql("c.last_message_id")
    rows = await db.fetchall(
        f"{sql}{cursor_sql}{cursor.order_by('c.last_message_id')} LIMIT ?",
        [*params, *cursor_params, limit],
    )
    return cursor.newest_first(rows)


async def listed_rows(
    db: Database, account_id: int, conversation_ids: Sequence[int], states: Sequence[str]
) -> list[Row]:
    """These conversations as :func:`list_by_last_message` reads them, those the account
    is a member of in one of ``states`` only."""
    if not conversation_ids:
        return []
    return await db.fetchall(
        f"{_LISTED} WHERE m.account_id = ? AND m.state IN ({_marks(states)})"
        f" AND c.id IN ({_marks(conversation_ids)}){_NOT_REMOVED}"
        " ORDER BY c.last_message_id DESC",
        [account_id, *states, *conversation_ids],
    )
