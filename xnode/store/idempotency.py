"""SQL for the client API's ``Idempotency-Key``: which status a key already created."""

from __future__ import annotations

from xnode.store.database import Connection, Database


async def find(db: Database, account_id: int, key: str, since: float) -> int | None:
    """The live post an account's key created after ``since``, if any."""
    row = await db.fetchone(
        "SELECT i.post_id FROM api_idempotency i JOIN posts p ON p.id = i.post_id"
        " WHERE i.account_id = ? AND i.key = ? AND i.created_at >= ? AND p.deleted_at IS NULL",
        (account_id, key, since),
    )
    return None if row is None else int(row[0])


async def remember(
    conn: Connection, account_id: int, key: str, post_id: int, now: float, since: float
) -> bool:
    """Record that the key created the post; False if a live entry holds the key already
    (another request with the same key won the race).

    Entries older than ``since`` are forgotten on the way (the table only ever holds a
    day of keys), and so is an entry whose post was deleted since (the key is free again).
    """
    await conn.execute("DELETE FROM api_idempotency WHERE created_at < ?", (since,))
    await conn.execute(
        "DELETE FROM api_idempotency WHERE account_id = ? AND key = ? AND post_id IN"
        " (SELECT id FROM posts WHERE deleted_at IS NOT NULL)",
        (account_id, key),
    )
    cursor = await conn.execute(
        "INSERT INTO api_idempotency (account_id, key, post_id, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (account_id, key) DO NOTHING",
        (account_id, key, post_id, now),
    )
    return cursor.rowcount == 1
