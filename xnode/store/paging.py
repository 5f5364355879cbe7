"""How every list is paged: by id (time-sortable, or the id of the row that put an item in
the list), never OFFSET, with the client API's cursors and Mastodon's rule for them.

``max_id`` bounds from above (older pages), ``since_id`` from below with the page the
newest items above it ("anything new since"), and ``min_id`` from below with the page the
items just above it (paging up). When ``min_id`` is given the list is read upwards, still
bounded by ``max_id`` if that is given too, and returned newest first like every page.
One rule here, so timelines, notifications, conversations and account lists agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

PAGE_SIZE = 40
MAX_PAGE_SIZE = 80

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts and how long it is (see the module's rule)."""

    max_id: int | None = None
    min_id: int | None = None
    limit: int = PAGE_SIZE
    since_id: int | None = None

    def sql(self, column: str) -> tuple[str, list[int]]:
        """The cursor's conditions on ``column`` (each `` AND …``) and their parameters."""
        parts: list[str] = []
        params: list[int] = []
        for bound, op in ((self.max_id, "<"), (self.min_id, ">"), (self.since_id, ">")):
            if bound is not None:
                parts.append(f" AND {column} {op} ?")
                params.append(bound)
        return "".join(parts), params

    @property
    def ascending(self) -> bool:
        """Whether the page is read upwards from ``min_id`` (then reversed for display)."""
        return self.min_id is not None

    def order_by(self, column: str) -> str:
        """`` ORDER BY`` ``column`` in the direction the page is read."""
        return f" ORDER BY {column} {'ASC' if self.ascending else 'DESC'}"

    def newest_first(self, rows: list[T]) -> list[T]:
        """The rows as read, in display order (newest first)."""
        return rows[::-1] if self.ascending else rows

    @property
    def page_size(self) -> int:
        """The requested size, clamped to 1..MAX_PAGE_SIZE."""
        return max(1, min(self.limit, MAX_PAGE_SIZE))
