"""SQL for login sessions."""

from __future__ import annotations

from xnode.store.database import Connection, Database


async def insert_session(
    db: Database,
    token_hash: str,
    account_id: int,
    *,
    now: float,
    expires_at: float,
    ip: str,
    user_agent: str,
) -> None:
    """Record a new session."""
    await db.execute(
        "INSERT INTO sessions (token_hash, account_id, created_at, expires_at, last_seen_at,"
        " ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (token_hash, account_id, now, expires_at, now, ip, user_agent[:300]),
    )


async def get_session(db: Database, token_hash: str, now: float) -> tuple[int, float] | None:
    """Return (account id, last seen) of an unexpired session."""
    row = await db.lookup(
        "SELECT account_id, last_seen_at FROM sessions WHERE token_hash = ? AND expires_at > ?",
        (token_hash, now),
    )
    return None if row is None else (row["account_id"], row["last_seen_at"])


async def touch_session(db: Database, token_hash: str, now: float, expires_at: float) -> None:
    """Extend a session that is in use."""
    await db.execute(
        "UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE token_hash = ?",
        (now, expires_at, token_hash),
    )


async def delete_session(db: Database, token_hash: str) -> None:
    """End one session."""
    await db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


async def delete_sessions_of(
    conn: Connection, account_id: int, keep_token_hash: str | None = None
) -> None:
    """End every session of an account, optionally keeping one."""
    await conn.execute(
        "DELETE FROM sessions WHERE account_id = ? AND token_hash IS DISTINCT FROM ?",
        (account_id, keep_token_hash),
    )


async def count_sessions_of(db: Database, account_id: int) -> int:
    """How many live sessions an account has."""
    return int(
        await db.fetchvalue("SELECT COUNT(*) FROM sessions WHERE account_id = ?", (account_id,))
        or 0
    )


async def purge_expired_sessions(db: Database, now: float) -> int:
    """Delete expired sessions; return how many."""
    return await db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
