"""SQL for timeline markers: where a person stopped reading (``m012_client_api``)."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.store.database import Connection, Database, Row


async def get_markers(
    db: Database, account_id: int, timelines: Sequence[str]
) -> list[Row]:
    """A person's markers for these timelines (at most one row each, by the primary key)."""
    if not timelines:
        return []
    marks = ", ".join("?" for _ in timelines)
    return await db.lookup_all(
        f"SELECT * FROM markers WHERE account_id = ? AND timeline IN ({marks})",
        (account_id, *timelines),
    )


async def set_marker(
    conn: Connection, account_id: int, timeline: str, last_read_id: int, now: float
) -> None:
    """Create or move a marker; its version goes up only when the position changes."""
    await conn.execute(
        "INSERT INTO markers (account_id, timeline, last_read_id, version, updated_at)"
        " VALUES (?, ?, ?, 1, ?) ON CONFLICT (account_id, timeline) DO UPDATE SET"
        " last_read_id = excluded.last_read_id, version = markers.version + 1,"
        " updated_at = excluded.updated_at"
        " WHERE markers.last_read_id <> excluded.last_read_id",
        (account_id, timeline, last_read_id, now),
    )
