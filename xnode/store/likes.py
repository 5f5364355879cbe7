"""SQL for likes (favourites): one set of writes whoever likes, here or on another server.

A like and its post's ``likes_count`` change together, and withdrawing a like takes its
notification with it: :func:`add_like` and :func:`remove_like` are what the posts
service calls for a click here and for a Like or Undo{Like} from another server alike.
"""

from __future__ import annotations

from xnode.accounts.models import Account
from xnode.store.database import Connection, Database
from xnode.store.paging import Cursor
from xnode.store.posts import add_to_counter, people_page


async def add_like(
    conn: Connection, like_id: int, account_id: int, post_id: int, uri: str | None,
    now: float,
) -> bool:
    """Record a like (``uri``: the Like activity's id, for one from another server) and
    count it on the post; False (nothing written) if the account already likes it."""
    cursor = await conn.execute(
        "INSERT INTO likes (id, account_id, post_id, uri, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (like_id, account_id, post_id, uri, now),
    )
    if cursor.rowcount != 1:
        return False
    await add_to_counter(conn, post_id, "likes_count", 1)
    return True


async def remove_like(conn: Connection, account_id: int, post_id: int) -> bool:
    """Withdraw a like: the row, one on the post's counter, and its "liked" notification.
    False (nothing written) if there was none."""
    cursor = await conn.execute(
        "DELETE FROM likes WHERE account_id = ? AND post_id = ?", (account_id, post_id)
    )
    if cursor.rowcount != 1:
        return False
    await add_to_counter(conn, post_id, "likes_count", -1)
    await conn.execute(
        "DELETE FROM notifications WHERE type = 'like' AND from_account_id = ? AND post_id = ?",
        (account_id, post_id),
    )
    return True


async def remove_likes_of(conn: Connection, account_id: int) -> None:
    """Withdraw every like of an account (it was deleted), each as :func:`remove_like`."""
    rows = await conn.execute_fetchall(
        "SELECT post_id FROM likes WHERE account_id = ?", (account_id,)
    )
    for (post_id,) in rows:
        await remove_like(conn, account_id, post_id)


async def liked_post(
    db: Database, account_id: int, *, uri: str | None = None, post_id: int | None = None
) -> int | None:
    """The post an account's like is of, found by the Like's activity id or else by the
    post; None if the account has no such like."""
    if uri is not None:
        found = await db.lookup_value(
            "SELECT post_id FROM likes WHERE uri = ? AND account_id = ?", (uri, account_id)
        )
        if found is not None or post_id is None:
            return None if found is None else int(found)
    found = await db.lookup_value(
        "SELECT post_id FROM likes WHERE account_id = ? AND post_id = ?", (account_id, post_id)
    )
    return None if found is None else int(found)


async def likers(db: Database, post_id: int, cursor: Cursor) -> list[tuple[int, Account]]:
    """(like id, account) of those who liked a post, newest like first, paged by the like's
    id; accounts that are suspended or deleted are left out."""
    return await people_page(
        db, "likes l JOIN accounts a ON a.id = l.account_id WHERE l.post_id = ?",
        "l.id", post_id, cursor,
    )
