"""Time-sortable 63-bit integer IDs (snowflake-like).

The high bits are milliseconds since the Unix epoch and the low 16 bits a
per-millisecond sequence, so IDs sort by creation time and serve directly as
pagination cursors (``max_id`` / ``min_id``) without OFFSET scans.
"""

from __future__ import annotations

import secrets
import threading
import time

_SEQUENCE_BITS = 16
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1


class IdGenerator:
    """Generates strictly increasing IDs within a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        # A random start keeps IDs made in the same millisecond by two
        # processes (CLI and server) from colliding in the common case.
        self._sequence = secrets.randbelow(1 << 12)

    def next_id(self, now_ms: int | None = None) -> int:
        """Return a new ID for the current (or given) time in milliseconds."""
        with self._lock:
            ms = int(time.time() * 1000) if now_ms is None else now_ms
            if ms <= self._last_ms:
                ms = self._last_ms
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:
                    ms += 1
            else:
                self._sequence = secrets.randbelow(1 << 12)
            self._last_ms = ms
            return (ms << _SEQUENCE_BITS) | self._sequence


_default = IdGenerator()


def new_id() -> int:
    """Return a new time-sortable ID."""
    return _default.next_id()


def id_for_time(unix_seconds: float) -> int:
    """The smallest ID that could have been made at the given time (for cursors)."""
    return int(unix_seconds * 1000) << _SEQUENCE_BITS


def id_timestamp(ident: int) -> float:
    """The Unix time (seconds) encoded in an ID."""
    return (ident >> _SEQUENCE_BITS) / 1000.0


def typeable_token(nbytes: int) -> str:
    """A URL-safe random token that does not begin with ``-``.

    Invite codes and one-time passwords are pasted into commands
    (``xnode invite revoke CODE``); a leading dash would be read as an option.
    """
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token
