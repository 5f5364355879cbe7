"""Rate limits: sliding windows (logins, sign-ups, password checks, calls) and the client
API's fixed windows.

A SQLite node is one serving process, so memory is the right place for them: nothing to
write per request, and a restart forgiving old attempts is acceptable. Several processes
serving one PostgreSQL database must share them (a reverse proxy spreads a client's
requests over the processes, and each would otherwise grant the whole limit): there the
counts live in the database (:mod:`xnode.store.rate_limits`, unlogged tables).
:func:`rate_limiter_for` and :func:`window_counter_for` pick the right one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from xnode.clock import Clock
from xnode.errors import RateLimited
from xnode.store import rate_limits as store
from xnode.store.database import Database

FORGET_AFTER_S = 24 * 3600.0
"""Shared events older than this are deleted (longer than any sliding window here)."""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``window_s`` seconds."""

    count: int
    window_s: float


def _retry_after(oldest: float | None, limit: Limit, now: float) -> int:
    return int((oldest if oldest is not None else now) + limit.window_s - now) + 1


class RateLimiter:
    """Counts events per key and refuses them past a limit (in this process's memory)."""

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _window(self, key: str, limit: Limit) -> deque[float]:
        now = self.clock.now()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._evict(now, limit)
            events = self._events[key] = deque()
        while events and events[0] <= now - limit.window_s:
            events.popleft()
        return events

    def _evict(self, now: float, limit: Limit) -> None:
        # Drop keys whose newest event is out of the window; a flood of new
        # keys (many IPs) must not grow memory without bound.
        stale = [k for k, ev in self._events.items() if not ev or ev[-1] <= now - limit.window_s]
        for key in stale or list(self._events)[: len(self._events) // 2]:
            del self._events[key]

    async def check(self, key: str, limit: Limit, message: str) -> None:
        """Raise if ``key`` is over its limit (without counting a new event).

        Raises:
            RateLimited: with the seconds until the oldest event leaves the window.
        """
        events = self._window(key, limit)
        if len(events) >= limit.count:
            raise RateLimited(message, retry_after=_retry_after(events[0], limit,
                                                                self.clock.now()))

    async def hit(self, key: str, limit: Limit) -> None:
        """Count one event for ``key``."""
        self._window(key, limit).append(self.clock.now())

    async def attempt(self, key: str, limit: Limit, message: str) -> None:
        """Count one event for ``key`` if it is within its limit, in one step.

        Raises:
            RateLimited: the limit is reached (nothing is counted).
        """
        await self.check(key, limit, message)
        await self.hit(key, limit)

    async def reset(self, key: str) -> None:
        """Forget the events of a key (e.g. after a successful login)."""
        self._events.pop(key, None)

    async def forget_old(self) -> int:
        """Drop what no longer counts (memory is pruned as it goes: nothing to do)."""
        return 0


class SharedRateLimiter(RateLimiter):
    """The same limits, counted in the database every serving process uses."""

    def __init__(self, db: Database, clock: Clock) -> None:
        super().__init__(clock)
        self.db = db

    async def check(self, key: str, limit: Limit, message: str) -> None:
        now = self.clock.now()
        count, oldest = await store.hits_since(self.db, key, now - limit.window_s)
        if count >= limit.count:
            raise RateLimited(message, retry_after=_retry_after(oldest, limit, now))

    async def hit(self, key: str, limit: Limit) -> None:
        await store.add_hit(self.db, key, self.clock.now())

    async def attempt(self, key: str, limit: Limit, message: str) -> None:
        now = self.clock.now()
        counted, oldest = await store.add_hit_within(
            self.db, key, at=now, since=now - limit.window_s, limit=limit.count
        )
        if not counted:
            raise RateLimited(message, retry_after=_retry_after(oldest, limit, now))

    async def reset(self, key: str) -> None:
        await store.clear_hits(self.db, key)

    async def forget_old(self) -> int:
        """Delete events and API windows that no longer count; return how many."""
        cutoff = self.clock.now() - FORGET_AFTER_S
        return await store.forget_before(self.db, hits_before=cutoff, windows_before=cutoff)


class WindowCounter:
    """Fixed-window request counts per key, as the client API reports them
    (``X-RateLimit-Limit/Remaining/Reset``): cheaper than a sliding window for limits
    of hundreds of requests, and what Mastodon's clients expect to read."""

    def __init__(self, clock: Clock, limit: Limit, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.limit = limit
        self.max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str) -> tuple[int, float]:
        """Count one request; return (requests left in the window, when it resets).

        Raises:
            RateLimited: the key used up its window.
        """
        now = self.clock.now()
        start, used = self._windows.get(key, (now, 0))
        if now - start >= self.limit.window_s:
            start, used = now, 0
        reset_at = start + self.limit.window_s
        if used >= self.limit.count:
            raise RateLimited("Too many requests", retry_after=int(reset_at - now) + 1)
        if len(self._windows) >= self.max_keys and key not in self._windows:
            cutoff = now - self.limit.window_s
            self._windows = {k: v for k, v in self._windows.items() if v[0] > cutoff}
            if len(self._windows) >= self.max_keys:
                self._windows.clear()
        self._windows[key] = (start, used + 1)
        return self.limit.count - used - 1, reset_at


class SharedWindowCounter(WindowCounter):
    """The same windows, counted in the database every serving process uses: one
    upsert per request."""

    def __init__(self, db: Database, clock: Clock, limit: Limit) -> None:
        super().__init__(clock, limit)
        self.db = db

    async def hit(self, key: str) -> tuple[int, float]:
        now = self.clock.now()
        started, used = await store.count_in_window(
            self.db, key, now=now, window_s=self.limit.window_s
        )
        reset_at = started + self.limit.window_s
        if used > self.limit.count:
            raise RateLimited("Too many requests", retry_after=int(reset_at - now) + 1)
        return self.limit.count - used, reset_at


def rate_limiter_for(db: Database, clock: Clock) -> RateLimiter:
    """The sliding-window limiter for a node on ``db``: shared through the database when
    several processes may serve it (PostgreSQL), in memory otherwise."""
    return SharedRateLimiter(db, clock) if db.dialect == "postgres" else RateLimiter(clock)


def window_counter_for(db: Database, clock: Clock, limit: Limit) -> WindowCounter:
    """The client API's request counter for a node on ``db`` (as :func:`rate_limiter_for`)."""
    if db.dialect == "postgres":
        return SharedWindowCounter(db, clock, limit)
    return WindowCounter(clock, limit)
