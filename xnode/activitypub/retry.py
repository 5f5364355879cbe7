"""When to try a delivery again, and when to stop: pure functions of attempts, statuses and time.

Nothing here does I/O or reads a clock; the delivery worker passes ``now`` and a
random source in, so the policy is tested as plain arithmetic.

The schedule follows Sidekiq's (which Mastodon's delivery worker uses):
roughly ``attempt⁴`` seconds plus a little jitter, for 16 attempts. The last
wait is about 18 hours and a delivery is given up after about 2.8 days, long
enough to ride out a weekend outage, short enough that the queue does not grow
forever for servers that are gone.

Per host there is also a circuit breaker: after a run of consecutive failures
(network errors, 5xx) the host is left alone for a while, growing with every
further failure, so one dead server does not tie up the worker with timeouts.
When the pause ends the host is "half-open": one delivery goes through as a
probe, and its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Literal, Protocol

Outcome = Literal["delivered", "retry", "permanent"]

MAX_ATTEMPTS = 16
"""Attempts (the first one included) before a delivery is marked failed."""

BASE_DELAY_S = 15.0
"""Added to every wait, so even the first retry is not immediate."""

JITTER_S_PER_ATTEMPT = 10.0
"""Upper bound of the random extra wait, per attempt made (spreads retries out)."""

MAX_RETRY_AFTER_S = 24 * 3600.0
"""A peer's Retry-After is honoured up to this; beyond it the peer is misconfigured."""

RETRY_AFTER_STATUSES = frozenset({429, 503})

CIRCUIT_THRESHOLD = 5
"""Consecutive host failures that open the circuit."""

CIRCUIT_BASE_S = 60.0
"""How long the circuit stays open at the threshold; doubles with each further failure."""

CIRCUIT_MAX_S = 6 * 3600.0
"""The longest the circuit stays open before the next probe."""

# Statuses that say "try later" although they are 4xx: a timeout on the
# peer's side and rate limiting. Every other 4xx will not change by retrying
# (404/410: the inbox is gone; 401/403: the peer refuses us; 400/422: it
# cannot parse what we sent).
_RETRYABLE_4XX = frozenset({408, 429})


class Random(Protocol):
    """The part of ``random.Random`` the policy uses."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


def base_delay_s(attempt: int) -> float:
    """The wait after ``attempt`` failed attempts, before jitter."""
    return float((attempt + 1) ** 4) + BASE_DELAY_S


def max_jitter_s(attempt: int) -> float:
    """The largest random extra wait after ``attempt`` failed attempts."""
    return JITTER_S_PER_ATTEMPT * (attempt + 1)


def next_attempt(attempt: int, now: float, rng: Random) -> float:
    """When to try again after ``attempt`` failed attempts (1 after the first failure).

    Args:
        attempt: How many attempts have been made so far, at least 1.
        now: The current time, epoch seconds.
        rng: A source of randomness for the jitter.

    Returns:
        The epoch time of the next attempt.

    Raises:
        ValueError: ``attempt`` is below 1.
    """
    if attempt < 1:
        raise ValueError("next_attempt is for after a failed attempt (attempt >= 1)")
    return now + base_delay_s(attempt) + rng.random() * max_jitter_s(attempt)


def gives_up(attempts: int) -> bool:
    """Whether a delivery that failed ``attempts`` times should stop being retried."""
    return attempts >= MAX_ATTEMPTS


def classify(status: int | None) -> Outcome:
    """What an answer means for a delivery.

    Args:
        status: The HTTP status, or None when there was no answer (connection
            refused, timeout, TLS failure).

    Returns:
        ``"delivered"`` for 2xx; ``"permanent"`` for 4xx other than 408 and 429;
        ``"retry"`` for everything else (5xx, 408, 429, no answer, odd statuses).
    """
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return "permanent"
    return "retry"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay seconds or an HTTP date).

    Returns None when absent or unreadable; clamps to ``[0, MAX_RETRY_AFTER_S]``.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(text)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:  # "-0000": UTC, per RFC 5322
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def retry_after_s(status: int | None, value: str | None, now: float) -> float | None:
    """The peer's requested pause, honoured only where it means "later" (429, 503)."""
    if status not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(value, now)


def schedule(attempt: int, now: float, rng: Random, retry_after: float | None = None) -> float:
    """The next attempt time: the backoff, but never earlier than the peer asked for."""
    at = next_attempt(attempt, now, rng)
    if retry_after is not None:
        at = max(at, now + retry_after)
    return at


def counts_against_host(status: int | None) -> bool:
    """Whether an answer says the host itself is in trouble (feeds the circuit breaker).

    Only missing answers and 5xx do: a 404 or 429 shows the server is up and
    talking, which is the opposite of what the breaker protects against.
    """
    return status is None or status >= 500


def circuit_open_until(consecutive_failures: int, now: float) -> float | None:
    """Until when a host is left alone after this many consecutive failures (None: closed)."""
    if consecutive_failures < CIRCUIT_THRESHOLD:
        return None
    doublings = min(consecutive_failures - CIRCUIT_THRESHOLD, 20)  # 2**20 is past any cap
    until: float = now + min(CIRCUIT_BASE_S * 2**doublings, CIRCUIT_MAX_S)
    return until


def host_concurrency(consecutive_failures: int, limit: int) -> int:
    """Deliveries allowed in flight to a host: one probe while half-open, else ``limit``."""
    return 1 if consecutive_failures >= CIRCUIT_THRESHOLD else limit
