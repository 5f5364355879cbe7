"""SQL for the transactional outbox: changes that must still reach other servers.

A row is written in the same transaction as the change it stands for
(:meth:`xnode.events.EventBus.change`), so a committed change always leaves
either this row or the delivery rows it became. :func:`claim` deletes a row in
the transaction that queues its deliveries; whoever claims it first (another
process, a sweep after a restart) expands it, and nobody expands it twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnode.store.database import Connection, Database, Row

MAX_ERROR_CHARS = 1_000


@dataclass(frozen=True)
class OutboxEntry:
    """One recorded change: an event's name and its fields as JSON."""

    id: int
    event: str
    fields: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> OutboxEntry:
        """Build from an ``outbox`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def insert(
    conn: Connection, entry_id: int, event: str, fields: str, now: float
) -> None:
    """Record a change inside its own transaction, due at once (whatever the reader's clock)."""
    await conn.execute(
        "INSERT INTO outbox (id, event, fields, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, 0, ?)",
        (entry_id, event, fields, now),
    )


async def due(db: Database, now: float, limit: int) -> list[OutboxEntry]:
    """Pending entries due now, oldest first (a point read by index, on the loop's thread)."""
    rows = await db.lookup_all(
        "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
        " ORDER BY id LIMIT ?",
        (now, limit),
    )
    return [OutboxEntry.from_row(row) for row in rows]


async def claim(conn: Connection, entry_id: int) -> bool:
    """Take an entry for expansion, in the transaction that queues its deliveries.

    Returns:
        False when someone else expanded it already (their deliveries are queued).
    """
    cursor = await conn.execute(
        "DELETE FROM outbox WHERE id = ? AND state = 'pending'", (entry_id,)
    )
    return cursor.rowcount > 0


async def postpone(
    db: Database, entry_id: int, *, error: str, next_attempt_at: float, failed: bool
) -> None:
    """Record a failed expansion: retried at ``next_attempt_at``, or kept as failed."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
            " state = ? WHERE id = ? AND state = 'pending'",
            (error[:MAX_ERROR_CHARS], next_attempt_at, "failed" if failed else "pending",
             entry_id),
        )  # fmt: skip


async def counts(db: Database) -> dict[str, int]:
    """Entries by state (for admins: anything here for long means trouble)."""
    rows = await db.fetchall("SELECT state, COUNT(*) FROM outbox GROUP BY state")
    return {row[0]: row[1] for row in rows}


async def failed(db: Database, limit: int = 20) -> list[OutboxEntry]:
    """Entries given up on, newest first."""
    rows = await db.fetchall(
        "SELECT * FROM outbox WHERE state = 'failed' ORDER BY id DESC LIMIT ?", (limit,)
    )
    return [OutboxEntry.from_row(row) for row in rows]
