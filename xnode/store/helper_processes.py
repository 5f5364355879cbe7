"""SQL for what the serving process knows of its helper processes (for check and admins).

``xnode check`` and the admin pages run apart from ``xnode serve``, so the
serving process writes each helper's state here when it changes: starting,
running, restarting after crashes, failed (given up: the serving process
does the work itself), stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnode.store.database import Database, Row


@dataclass(frozen=True)
class HelperState:
    """One helper process as last reported."""

    name: str
    state: str
    crashes: int
    last_exit: str | None
    pid: int | None
    serving_pid: int
    updated_at: float

    @classmethod
    def from_row(cls, row: Row) -> HelperState:
        """Build from a ``helper_processes`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def in_trouble(self) -> bool:
        """Whether admins should hear of it: given up on, or crashing."""
        return self.state == "failed" or (self.state == "restarting" and self.crashes > 1)


async def forget_all(db: Database) -> None:
    """Drop every row (``xnode serve`` starting: the helpers it starts write theirs)."""
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM helper_processes")


async def report(db: Database, state: HelperState) -> None:
    """Write a helper's state."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO helper_processes (name, state, crashes, last_exit, pid, serving_pid,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " state = excluded.state, crashes = excluded.crashes,"
            " last_exit = excluded.last_exit, pid = excluded.pid,"
            " serving_pid = excluded.serving_pid, updated_at = excluded.updated_at",
            (state.name, state.state, state.crashes, state.last_exit, state.pid,
             state.serving_pid, state.updated_at),
        )  # fmt: skip


async def all_states(db: Database) -> list[HelperState]:
    """Every helper's last reported state, by name (a handful of rows, read inline)."""
    rows = await db.lookup_all("SELECT * FROM helper_processes ORDER BY name")
    return [HelperState.from_row(row) for row in rows]
