"""SQL for settings an admin changes at run time."""

from __future__ import annotations

from xnode.store.database import Database


async def get_node_setting(db: Database, key: str) -> str | None:
    """Read a run-time setting, or None if it was never set."""
    value: str | None = await db.lookup_value(
        "SELECT value FROM node_settings WHERE key = ?", (key,)
    )
    return value


async def set_node_setting(db: Database, key: str, value: str, now: float) -> None:
    """Write a run-time setting."""
    await db.execute(
        "INSERT INTO node_settings (key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        (key, value, now),
    )
