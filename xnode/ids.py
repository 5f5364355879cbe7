"""Time-sortable 63-bit integer IDs (snowflake-like).

The high bits are milliseconds since the Unix epoch and the low 16 bits a
per-millisecond sequence, so IDs sort by creation time and serve directly as
pagination cursors (``max_id`` / ``min_id``) without OFFSET scans.

Several processes make IDs for one database (the serving process, its helpers, the
CLI; on PostgreSQL several serving processes). A process that holds a *process tag*
(:func:`claim_process_tag`: unique among the processes on one PostgreSQL database, see
``xnode/store/postgres.py``) puts it in the high 8 of those 16 bits and counts in the low
8, so two such processes can never make the same ID. Without one, the sequence starts
each millisecond at a random value, which makes a clash rare but possible: two serving
processes inserting in the same millisecond clashed about once in 4,096 such
coincidences (bench/pg_processes.py).
"""

from __future__ import annotations

import secrets
import threading
import time

_SEQUENCE_BITS = 16
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
_TAGGED_BITS = 8
_TAGGED_MASK = (1 << _TAGGED_BITS) - 1
PROCESS_TAGS = 1 << (_SEQUENCE_BITS - _TAGGED_BITS)
"""How many processes can hold a tag at once (256)."""


class IdGenerator:
    """Generates strictly increasing IDs within a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        # A random start keeps IDs made in the same millisecond by two
        # processes (CLI and server) from colliding in the common case.
        self._sequence = secrets.randbelow(1 << 12)
        self.tag: int | None = None

    def next_id(self, now_ms: int | None = None) -> int:
        """Return a new ID for the current (or given) time in milliseconds.

        With a tag: the tag in bits 8-15 and a counter in bits 0-7 (256 IDs a millisecond);
        without: a 16-bit counter from a random start. A full counter borrows the next
        millisecond (IDs stay increasing; the clock catches up).
        """
        with self._lock:
            ms = int(time.time() * 1000) if now_ms is None else now_ms
            mask = _SEQUENCE_MASK if self.tag is None else _TAGGED_MASK
            if ms <= self._last_ms:
                ms = self._last_ms
                self._sequence = (self._sequence + 1) & mask
                if self._sequence == 0:
                    ms += 1
            else:
                self._sequence = secrets.randbelow(1 << 12) if self.tag is None else 0
            self._last_ms = ms
            tag_bits = 0 if self.tag is None else self.tag << _TAGGED_BITS
            return (ms << _SEQUENCE_BITS) | tag_bits | self._sequence


_default = IdGenerator()


def new_id() -> int:
    """Return a new time-sortable ID."""
    return _default.next_id()


def claim_process_tag(tag: int | None) -> None:
    """Make this process's IDs carry ``tag`` (0-255, unique among the processes sharing
    its database), or none again (None)."""
    if tag is not None and not 0 <= tag < PROCESS_TAGS:
        raise ValueError(f"a process tag is 0 to {PROCESS_TAGS - 1}, not {tag}")
    _default.tag = tag


def process_tag() -> int | None:
    """The tag this process's IDs carry, if it holds one."""
    return _default.tag


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
