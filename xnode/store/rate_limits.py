"""SQL for rate limits shared by several serving processes (``m015_rate_limits``).

Used only where several processes may serve one node (PostgreSQL); a SQLite node counts
in memory (:mod:`xnode.ratelimit`).
"""

from __future__ import annotations

from xnode.store.database import Connection, Database, Params, Row

# The advisory-lock class of rate-limit keys: the lock's first half, so that these
# locks never meet the ID-tag and migration locks (which take one 64-bit key).
_LOCK_CLASS = 0x7261


async def hits_since(db: Database, key: str, since: float) -> tuple[int, float | None]:
    """How many events ``key`` has after ``since``, and the oldest of them."""
    row = await db.lookup(
        "SELECT count(*), min(at) FROM rate_limit_hits WHERE key = ? AND at > ?", (key, since)
    )
    if row is None:
        return 0, None
    return int(row[0]), None if row[1] is None else float(row[1])


async def add_hit(db: Database, key: str, at: float) -> None:
    """Count one event for ``key``."""
    await db.execute("INSERT INTO rate_limit_hits (key, at) VALUES (?, ?)", (key, at))


async def add_hit_within(
    db: Database, key: str, *, at: float, since: float, limit: int
) -> tuple[bool, float | None]:
    """Count one event for ``key`` unless it has ``limit`` events after ``since`` already.

    Returns whether it was counted, and (when refused) the oldest event in the window.
    The check and the write are one step for every process: on PostgreSQL a lock on the
    key makes concurrent attempts wait for each other (without it, a burst of requests
    spread over several processes would all see room and all pass); SQLite has one
    writer anyway.
    """
    async with db.transaction() as conn:
        await _lock_key(conn, key)
        cursor = await conn.execute(
            "INSERT INTO rate_limit_hits (key, at) SELECT ?, ? WHERE"
            " (SELECT count(*) FROM rate_limit_hits WHERE key = ? AND at > ?) < ?",
            (key, at, key, since, limit),
        )
        if cursor.rowcount == 1:
            return True, None
        rows = await conn.execute_fetchall(
            "SELECT min(at) FROM rate_limit_hits WHERE key = ? AND at > ?", (key, since)
        )
    oldest = rows[0][0] if rows else None
    return False, None if oldest is None else float(oldest)


async def clear_hits(db: Database, key: str) -> None:
    """Forget every event of ``key``."""
    await db.execute("DELETE FROM rate_limit_hits WHERE key = ?", (key,))


async def count_in_window(
    db: Database, key: str, *, now: float, window_s: float
) -> tuple[float, int]:
    """Count one request in ``key``'s fixed window (a new one once it is ``window_s``
    old); return (when the window started, requests counted in it). One statement, so
    concurrent requests from several processes each get their own count."""
    rows = await _fetch_in_transaction(
        db,
        "INSERT INTO rate_limit_windows (key, started_at, used) VALUES (?, ?, 1)"
        " ON CONFLICT (key) DO UPDATE SET"
        " started_at = CASE WHEN rate_limit_windows.started_at <= ? THEN excluded.started_at"
        " ELSE rate_limit_windows.started_at END,"
        " used = CASE WHEN rate_limit_windows.started_at <= ? THEN 1"
        " ELSE rate_limit_windows.used + 1 END"
        " RETURNING started_at, used",
        (key, now, now - window_s, now - window_s),
    )
    return float(rows[0][0]), int(rows[0][1])


async def forget_before(db: Database, *, hits_before: float, windows_before: float) -> int:
    """Delete events and windows too old to count any more; return the rows deleted."""
    async with db.transaction() as conn:
        hits = await conn.execute("DELETE FROM rate_limit_hits WHERE at <= ?", (hits_before,))
        windows = await conn.execute(
            "DELETE FROM rate_limit_windows WHERE started_at <= ?", (windows_before,)
        )
    return hits.rowcount + windows.rowcount


async def _lock_key(conn: Connection, key: str) -> None:
    if conn.dialect == "postgres":
        await conn.execute_fetchall(
            "SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_CLASS, key)
        )


async def _fetch_in_transaction(db: Database, sql: str, params: Params) -> list[Row]:
    async with db.transaction() as conn:
        return await conn.execute_fetchall(sql, params)
