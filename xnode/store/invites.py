"""SQL for invitation codes."""

from __future__ import annotations

from xnode.accounts.models import Invite
from xnode.store.database import Connection, Database


async def insert_invite(
    db: Database,
    invite_id: int,
    code: str,
    *,
    created_by: int | None,
    now: float,
    expires_at: float | None,
    max_uses: int | None,
) -> None:
    """Store a new invite."""
    await db.execute(
        "INSERT INTO invites (id, code, created_by, created_at, expires_at, max_uses)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (invite_id, code, created_by, now, expires_at, max_uses),
    )


async def get_invite_by_code(conn: Connection, code: str) -> Invite | None:
    """Look an invite up by code inside a transaction."""
    async with conn.execute("SELECT * FROM invites WHERE code = ?", (code,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else Invite.from_row(row)


async def count_invite_use(conn: Connection, invite_id: int) -> None:
    """Record one use of an invite."""
    await conn.execute("UPDATE invites SET uses = uses + 1 WHERE id = ?", (invite_id,))


async def list_invites(db: Database) -> list[Invite]:
    """Every invite, newest first."""
    rows = await db.fetchall("SELECT * FROM invites ORDER BY id DESC")
    return [Invite.from_row(row) for row in rows]


async def revoke_invite(db: Database, code: str, now: float) -> int:
    """Revoke an invite by code; return 1 if it existed and was live."""
    return await db.execute(
        "UPDATE invites SET revoked_at = ? WHERE code = ? AND revoked_at IS NULL", (now, code)
    )


async def find_invite(db: Database, code: str) -> Invite | None:
    """Look an invite up by code."""
    row = await db.fetchone("SELECT * FROM invites WHERE code = ?", (code,))
    return None if row is None else Invite.from_row(row)
