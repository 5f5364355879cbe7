"""SQL for what the serving processes know of their helper processes (for check and admins).

``xnode check`` and the admin pages run apart from ``xnode serve``, so each serving
process writes each of its helpers' states here when it changes: starting, running,
restarting after crashes, failed (given up: the serving process does the work itself),
stopped. Several serving processes on one PostgreSQL database (issue 18) each have their
own helpers under the same names: a row belongs to one serving process (``process``:
its machine and listen address), and each says every ``HEARTBEAT_S`` that it is still
alive (``seen_at``), so that the rows of one that is gone can be told apart
(:meth:`HelperState.gone`) and, after ``FORGET_AFTER_S``, dropped.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from xnode.store.database import Database, Row

HEARTBEAT_S = 60.0
"""How often a serving process with helpers marks its rows as still its own."""
GONE_AFTER_S = 3 * HEARTBEAT_S
"""A serving process not heard of for this long is gone (stopped, killed, or its machine)."""
FORGET_AFTER_S = 24 * 3600.0
"""The rows of a serving process gone this long are dropped: long enough for admins to
see what its helpers last did (a crash, say), short enough that a process removed from
the set does not stay listed for ever."""


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
    process: str = ""
    """The serving process it belongs to (machine/listen address; empty: unknown, a row
    written before serving processes were told apart)."""
    seen_at: float = 0.0
    """When that serving process last said it was alive."""

    @classmethod
    def from_row(cls, row: Row) -> HelperState:
        """Build from a ``helper_processes`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def in_trouble(self) -> bool:
        """Whether admins should hear of it: given up on, or crashing."""
        return self.state == "failed" or (self.state == "restarting" and self.crashes > 1)

    @property
    def on_this_machine(self) -> bool:
        """Whether its serving process ran on this machine (so ``serving_pid`` means
        something here); unknown counts as here, where every node used to run."""
        host = self.process.split("/", 1)[0]
        return host in ("", socket.gethostname())

    def gone(self, now: float) -> bool:
        """Whether its serving process has not been heard of for ``GONE_AFTER_S``."""
        return self.seen_at < now - GONE_AFTER_S


async def forget(db: Database, process: str, *, everyone: bool = False) -> None:
    """Drop ``process``'s rows (``xnode serve`` starting: the helpers it starts write
    theirs afresh); with ``everyone``, every row (SQLite: one serving process at a time, so
    any other row is a dead process's)."""
    async with db.transaction() as conn:
        if everyone:
            await conn.execute("DELETE FROM helper_processes")
        else:
            await conn.execute("DELETE FROM helper_processes WHERE process = ?", (process,))


async def heartbeat(db: Database, process: str, now: float) -> None:
    """Mark ``process``'s rows as seen now, and drop those of serving processes not seen
    for ``FORGET_AFTER_S``."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE helper_processes SET seen_at = ? WHERE process = ?", (now, process)
        )
        await conn.execute(
            "DELETE FROM helper_processes WHERE seen_at < ?", (now - FORGET_AFTER_S,)
        )


async def report(db: Database, state: HelperState) -> None:
    """Write a helper's state (its serving process seen at the same time)."""
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO helper_processes (process, name, state, crashes, last_exit, pid,"
            " serving_pid, updated_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (process, name) DO UPDATE SET"
            " state = excluded.state, crashes = excluded.crashes,"
            " last_exit = excluded.last_exit, pid = excluded.pid,"
            " serving_pid = excluded.serving_pid, updated_at = excluded.updated_at,"
            " seen_at = excluded.seen_at",
            (state.process, state.name, state.state, state.crashes, state.last_exit,
             state.pid, state.serving_pid, state.updated_at, state.seen_at),
        )  # fmt: skip


async def all_states(db: Database) -> list[HelperState]:
    """Every helper's last reported state, by serving process then name (a handful of
    rows, read inline)."""
    rows = await db.lookup_all("SELECT * FROM helper_processes ORDER BY process, name")
    return [HelperState.from_row(row) for row in rows]
