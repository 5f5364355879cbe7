"""Timeline markers: where a person stopped reading their home timeline and their
notifications, so that another app (or the same one on another device) resumes there.

Moving the notifications marker also marks the notifications up to it read: Mastodon
counts as unread what is newer than that marker, and the node keeps one notion of
"read" for the web page's badge and the API's ``unread_count`` alike. A marker moved
back marks nothing unread again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xnode.clock import Clock
from xnode.errors import InvalidInput
from xnode.notifications import NotificationService
from xnode.store import markers as marker_store
from xnode.store.database import Database

TIMELINES = ("home", "notifications")


@dataclass(frozen=True)
class Marker:
    """One timeline's read position; ``version`` goes up each time it moves."""

    timeline: str
    last_read_id: int
    version: int
    updated_at: float


class MarkerService:
    """Reads and moves a person's markers."""

    def __init__(self, db: Database, clock: Clock, notifications: NotificationService) -> None:
        self.db = db
        self.clock = clock
        self.notifications = notifications

    async def get(self, account_id: int, timelines: Iterable[str]) -> dict[str, Marker]:
        """The markers of the timelines asked for that exist (unknown names are skipped,
        as Mastodon does)."""
        wanted = [t for t in dict.fromkeys(timelines) if t in TIMELINES]
        rows = await marker_store.get_markers(self.db, account_id, wanted)
        return {
            row["timeline"]: Marker(row["timeline"], row["last_read_id"], row["version"],
                                    row["updated_at"])
            for row in rows
        }  # fmt: skip

    async def set(self, account_id: int, positions: Mapping[str, int]) -> dict[str, Marker]:
        """Move markers (``{"home": id, "notifications": id}``); the markers moved.

        Raises:
            InvalidInput: an unknown timeline.
        """
        for timeline in positions:
            if timeline not in TIMELINES:
                raise InvalidInput(f"Unknown timeline {timeline!r}.", field="timeline")
        now = self.clock.now()
        async with self.db.transaction() as conn:
            for timeline, last_read_id in positions.items():
                await marker_store.set_marker(conn, account_id, timeline, last_read_id, now)
        if "notifications" in positions:
            await self.notifications.mark_read(account_id, positions["notifications"])
        return await self.get(account_id, positions)
