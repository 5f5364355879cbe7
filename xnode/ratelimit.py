"""In-memory sliding-window rate limits (login and sign-up attempts).

A node is one process, so memory is the right place: nothing to clean up in
the database, and a restart forgiving old attempts is acceptable.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from xnode.clock import Clock
from xnode.errors import RateLimited


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``window_s`` seconds."""

    count: int
    window_s: float


class RateLimiter:
    """Counts events per key and refuses them past a limit."""

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

    def check(self, key: str, limit: Limit, message: str) -> None:
        """Raise if ``key`` is over its limit (without counting a new event).

        Raises:
            RateLimited: with the seconds until the oldest event leaves the window.
        """
        events = self._window(key, limit)
        if len(events) >= limit.count:
            retry_after = events[0] + limit.window_s - self.clock.now()
            raise RateLimited(message, retry_after=int(retry_after) + 1)

    def hit(self, key: str, limit: Limit) -> None:
        """Count one event for ``key``."""
        self._window(key, limit).append(self.clock.now())

    def reset(self, key: str) -> None:
        """Forget the events of a key (e.g. after a successful login)."""
        self._events.pop(key, None)


class WindowCounter:
    """Fixed-window request counts per key, as the client API reports them
    (``X-RateLimit-Limit/Remaining/Reset``): cheaper than a sliding window for limits
    of hundreds of requests, and what Mastodon's clients expect to read."""

    def __init__(self, clock: Clock, limit: Limit, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.limit = limit
        self.max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> tuple[int, float]:
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
