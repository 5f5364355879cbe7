"""SQL for notifications."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.store.database import Connection, Database, Row
from xnode.store.paging import Cursor


async def insert_notification(
    conn: Connection,
    notification_id: int,
    *,
    recipient_id: int,
    kind: str,
    from_id: int,
    post_id: int | None,
    now: float,
) -> bool:
    """Notify a local user, unless it is about themselves or they mute/block the sender.

    Returns:
        Whether a notification was written.
    """
    cursor = await conn.execute(
        "INSERT INTO notifications (id, account_id, type, from_account_id, post_id, created_at)"
        # Typed: PostgreSQL cannot infer a select list's parameter types from the columns.
        " SELECT CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT),"
        " CAST(? AS BIGINT), CAST(? AS DOUBLE PRECISION) WHERE CAST(? AS BIGINT) <> ?"
        " AND EXISTS (SELECT 1 FROM users WHERE account_id = ? AND state = 'active')"
        " AND NOT EXISTS (SELECT 1 FROM mutes WHERE account_id = ? AND target_account_id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM blocks WHERE (account_id = ? AND target_account_id = ?)"
        " OR (account_id = ? AND target_account_id = ?))",
        (
            notification_id,
            recipient_id,
            kind,
            from_id,
            post_id,
            now,
            recipient_id,
            from_id,
            recipient_id,
            recipient_id,
            from_id,
            recipient_id,
            from_id,
            from_id,
            recipient_id,
        ),
    )
    return cursor.rowcount == 1


async def delete_notifications(
    conn: Connection,
    *,
    kind: str,
    from_id: int,
    post_id: int | None = None,
    recipient_id: int | None = None,
) -> None:
    """Withdraw notifications for an undone action (unlike, unfollow...)."""
    sql = "DELETE FROM notifications WHERE type = ? AND from_account_id = ?"
    params: list[object] = [kind, from_id]
    if post_id is not None:
        sql, params = sql + " AND post_id = ?", [*params, post_id]
    if recipient_id is not None:
        sql, params = sql + " AND account_id = ?", [*params, recipient_id]
    await conn.execute(sql, params)


UNREAD_COUNT_CAP = 1000
"""Unread notifications are counted up to this many (the badge says "999+")."""


async def unread_count(db: Database, account_id: int) -> int:
    """How many notifications the user has not read, up to ``UNREAD_COUNT_CAP``.

    Every logged-in page asks, so the count is bounded and runs inline: an
    index walk of at most ``UNREAD_COUNT_CAP`` entries, never a thread hop.
    """
    return int(
        await db.lookup_value(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE account_id = ?"
            " AND read_at IS NULL LIMIT ?) AS capped",
            (account_id, UNREAD_COUNT_CAP),
        )
        or 0
    )


async def mark_read(db: Database, account_id: int, now: float, up_to_id: int | None) -> int:
    """Mark notifications read (all, or up to an id); return how many changed."""
    sql = "UPDATE notifications SET read_at = ? WHERE account_id = ? AND read_at IS NULL"
    params: list[object] = [now, account_id]
    if up_to_id is not None:
        sql, params = sql + " AND id <= ?", [*params, up_to_id]
    return await db.execute(sql, params)


async def mark_conversation_read(
    conn: Connection, account_id: int, conversation_id: int, up_to_id: int, now: float
) -> None:
    """Mark read an account's notifications of a conversation's messages up to ``up_to_id``
    (reading the messages is reading their notifications)."""
    await conn.execute(
        "UPDATE notifications SET read_at = ? WHERE account_id = ? AND read_at IS NULL"
        " AND post_id IN (SELECT id FROM posts WHERE conversation_id = ? AND id <= ?)",
        (now, account_id, conversation_id, up_to_id),
    )


def _kinds_sql(kinds: Sequence[object]) -> str:
    return ", ".join("?" for _ in kinds)


async def select_notifications(
    db: Database,
    account_id: int,
    *,
    kinds: Sequence[str],
    from_account_id: int | None = None,
    max_id: int | None = None,
    min_id: int | None = None,
    since_id: int | None = None,
    limit: int,
) -> list[Row]:
    """A page of a user's notifications of some kinds, newest first.

    ``max_id`` bounds from above, ``since_id`` from below (the newest above it), and
    ``min_id`` pages upwards: the rows just above it (read upwards, returned newest first).
    """
    if not kinds:
        return []
    sql = f"SELECT * FROM notifications WHERE account_id = ? AND type IN ({_kinds_sql(kinds)})"
    params: list[object] = [account_id, *kinds]
    if from_account_id is not None:
        sql, params = sql + " AND from_account_id = ?", [*params, from_account_id]
    cursor = Cursor(max_id=max_id, min_id=min_id, since_id=since_id)
    cursor_sql, cursor_params = cursor.sql("id")
    rows = await db.fetchall(
        f"{sql}{cursor_sql}{cursor.order_by('id')} LIMIT ?", [*params, *cursor_params, limit]
    )
    return cursor.newest_first(rows)


async def get_notification(
    db: Database, account_id: int, notification_id: int
) -> Row | None:
    """One notification of a user (None when it is someone else's or gone)."""
    return await db.lookup(
        "SELECT * FROM notifications WHERE id = ? AND account_id = ?",
        (notification_id, account_id),
    )


async def delete_notification(
    db: Database, account_id: int, notification_id: int, kinds: Sequence[str]
) -> bool:
    """Delete one of a user's notifications (of these kinds); whether it was there."""
    if not kinds:
        return False
    changed = await db.execute(
        f"DELETE FROM notifications WHERE id = ? AND account_id = ? AND type IN"
        f" ({_kinds_sql(kinds)})",
        [notification_id, account_id, *kinds],
    )
    return changed > 0


async def delete_all(db: Database, account_id: int, kinds: Sequence[str]) -> int:
    """Delete every notification of these kinds of a user; how many went."""
    if not kinds:
        return 0
    return await db.execute(
        f"DELETE FROM notifications WHERE account_id = ? AND type IN ({_kinds_sql(kinds)})",
        [account_id, *kinds],
    )


def _unread_sql(
    account_id: int, kinds: Sequence[str], from_account_id: int | None
) -> tuple[str, list[object]]:
    """The condition on a user's unread notifications of these kinds (from one account)."""
    sql = f"account_id = ? AND read_at IS NULL AND type IN ({_kinds_sql(kinds)})"
    params: list[object] = [account_id, *kinds]
    if from_account_id is not None:
        sql, params = sql + " AND from_account_id = ?", [*params, from_account_id]
    return sql, params


async def count_unread(
    db: Database, account_id: int, *, kinds: Sequence[str], from_account_id: int | None,
    cap: int,
) -> int:
    """Unread notifications of these kinds (from one account), counted up to ``cap``."""
    if not kinds:
        return 0
    where, params = _unread_sql(account_id, kinds, from_account_id)
    value = await db.fetchvalue(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE {where} LIMIT ?) AS capped",
        [*params, cap],
    )
    return int(value or 0)


def _group_sql(
    kind: str | None, post_id: int | None, since: float | None, until: float | None,
    notification_id: int | None,
) -> tuple[str, list[object]]:
    """The condition picking one group's notifications (see ``xnode.notifications.GroupKey``)."""
    sql, params = "", list[object]()
    if kind is not None:
        sql, params = " AND type = ?", [kind]
    if notification_id is not None:
        sql, params = sql + " AND id = ?", [*params, notification_id]
    if post_id is not None:
        sql, params = sql + " AND post_id = ?", [*params, post_id]
    if since is not None:
        sql, params = sql + " AND created_at >= ?", [*params, since]
    if until is not None:
        sql, params = sql + " AND created_at < ?", [*params, until]
    return sql, params


async def select_group(
    db: Database, account_id: int, kind: str | None, *, post_id: int | None = None,
    since: float | None = None, until: float | None = None,
    notification_id: int | None = None, limit: int,
) -> list[Row]:
    """One group's notifications, newest first."""
    sql, params = _group_sql(kind, post_id, since, until, notification_id)
    return await db.fetchall(
        f"SELECT * FROM notifications WHERE account_id = ?{sql} ORDER BY id DESC LIMIT ?",
        [account_id, *params, limit],
    )


async def delete_group(
    db: Database, account_id: int, kind: str | None, *, post_id: int | None = None,
    since: float | None = None, until: float | None = None,
    notification_id: int | None = None,
) -> int:
    """Delete one group's notifications; how many went."""
    sql, params = _group_sql(kind, post_id, since, until, notification_id)
    return await db.execute(
        f"DELETE FROM notifications WHERE account_id = ?{sql}", [account_id, *params]
    )


async def count_by_post(
    db: Database, account_id: int, kinds: Sequence[str], post_ids: Sequence[int]
) -> dict[tuple[str, int], int]:
    """How many notifications of each kind a user has about each of these posts."""
    if not kinds or not post_ids:
        return {}
    rows = await db.fetchall(
        f"SELECT type, post_id, COUNT(*) FROM notifications WHERE account_id = ?"
        f" AND type IN ({_kinds_sql(kinds)}) AND post_id IN ({_kinds_sql(post_ids)})"
        " GROUP BY type, post_id",
        [account_id, *kinds, *post_ids],
    )
    return {(row[0], row[1]): row[2] for row in rows}


async def count_by_day(
    db: Database, account_id: int, kind: str, since: float, until: float, day_s: float
) -> dict[int, int]:
    """How many notifications of one kind a user has on each day (``day_s`` long) of a span."""
    rows = await db.fetchall(
        "SELECT CAST(created_at / ? AS INTEGER) AS day, COUNT(*) FROM notifications"
        " WHERE account_id = ? AND type = ? AND created_at >= ? AND created_at < ?"
        " GROUP BY day",
        (day_s, account_id, kind, since, until),
    )
    return {row[0]: row[1] for row in rows}


async def select_unread(
    db: Database, account_id: int, *, kinds: Sequence[str], from_account_id: int | None,
    limit: int,
) -> list[Row]:
    """A user's newest unread notifications of these kinds (from one account)."""
    if not kinds:
        return []
    where, params = _unread_sql(account_id, kinds, from_account_id)
    return await db.fetchall(
        f"SELECT * FROM notifications WHERE {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
