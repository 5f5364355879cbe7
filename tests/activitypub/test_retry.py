"""The retry policy as arithmetic: schedule, jitter, classification, Retry-After, circuit."""

from __future__ import annotations

import email.utils
import random

import pytest

from xnode.activitypub import retry

NOW = 1_800_000_000.0
DAY_S = 86_400.0


class Fixed:
    """A 'random' source that always answers the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def total_wait(rng: retry.Random) -> float:
    """Seconds from the first attempt until the last one, following the schedule."""
    now = NOW
    for attempt in range(1, retry.MAX_ATTEMPTS):
        now = retry.next_attempt(attempt, now, rng)
    return now - NOW


def test_sixteen_attempts_span_two_to_three_days():
    assert retry.MAX_ATTEMPTS == 16
    fastest = total_wait(Fixed(0.0))
    slowest = total_wait(Fixed(0.999999))
    assert 2 * DAY_S < fastest < slowest < 3 * DAY_S


def test_waits_grow_and_start_small():
    waits = [retry.next_attempt(a, NOW, Fixed(0.0)) - NOW for a in range(1, retry.MAX_ATTEMPTS)]
    assert waits == sorted(waits)
    assert 15 < waits[0] < 60  # first retry within a minute
    assert 12 * 3600 < waits[-1] < DAY_S  # last wait under a day


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 15])
def test_jitter_is_bounded(attempt: int):
    rng = random.Random(attempt)
    low = NOW + retry.base_delay_s(attempt)
    high = low + retry.max_jitter_s(attempt)
    seen = {retry.next_attempt(attempt, NOW, rng) for _ in range(500)}
    assert all(low <= at < high for at in seen)
    assert len(seen) > 100  # it really varies


def test_next_attempt_needs_a_failed_attempt():
    with pytest.raises(ValueError):
        retry.next_attempt(0, NOW, Fixed(0.5))


def test_gives_up_after_max_attempts():
    assert not retry.gives_up(retry.MAX_ATTEMPTS - 1)
    assert retry.gives_up(retry.MAX_ATTEMPTS)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"),
        (400, "permanent"), (401, "permanent"), (403, "permanent"), (404, "permanent"),
        (410, "permanent"), (422, "permanent"),
        (408, "retry"), (429, "retry"),
        (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
        (None, "retry"),  # no answer: connection refused, timeout, TLS
        (301, "retry"), (100, "retry"),
    ],
)
def test_classification(status: int | None, outcome: str):
    assert retry.classify(status) == outcome


def test_retry_after_seconds_and_dates():
    assert retry.parse_retry_after("120", NOW) == 120.0
    date = email.utils.formatdate(NOW + 300, usegmt=True)
    assert retry.parse_retry_after(date, NOW) == pytest.approx(300.0)
    assert retry.parse_retry_after(email.utils.formatdate(NOW - 50, usegmt=True), NOW) == 0.0
    assert retry.parse_retry_after("soon", NOW) is None
    assert retry.parse_retry_after(None, NOW) is None
    assert retry.parse_retry_after("99999999", NOW) == retry.MAX_RETRY_AFTER_S


def test_retry_after_only_counts_on_429_and_503():
    assert retry.retry_after_s(429, "60", NOW) == 60.0
    assert retry.retry_after_s(503, "60", NOW) == 60.0
    assert retry.retry_after_s(500, "60", NOW) is None
    assert retry.retry_after_s(202, "60", NOW) is None


def test_schedule_honours_retry_after_when_longer():
    backoff = retry.schedule(1, NOW, Fixed(0.0))
    assert retry.schedule(1, NOW, Fixed(0.0), retry_after=3600.0) == NOW + 3600.0
    # A Retry-After shorter than the backoff does not make us hurry.
    assert retry.schedule(1, NOW, Fixed(0.0), retry_after=1.0) == backoff


def test_only_missing_answers_and_5xx_count_against_a_host():
    assert retry.counts_against_host(None)
    assert retry.counts_against_host(500)
    assert retry.counts_against_host(503)
    assert not retry.counts_against_host(404)
    assert not retry.counts_against_host(429)
    assert not retry.counts_against_host(202)


def test_circuit_opens_at_threshold_and_grows_to_a_cap():
    below = retry.CIRCUIT_THRESHOLD - 1
    assert retry.circuit_open_until(0, NOW) is None
    assert retry.circuit_open_until(below, NOW) is None
    pauses = [
        retry.circuit_open_until(n, NOW) - NOW  # type: ignore[operator]
        for n in range(retry.CIRCUIT_THRESHOLD, retry.CIRCUIT_THRESHOLD + 30)
    ]
    assert pauses[0] == retry.CIRCUIT_BASE_S
    assert pauses[1] == 2 * retry.CIRCUIT_BASE_S
    assert pauses == sorted(pauses)
    assert pauses[-1] == retry.CIRCUIT_MAX_S


def test_half_open_host_gets_one_probe():
    assert retry.host_concurrency(0, 4) == 4
    assert retry.host_concurrency(retry.CIRCUIT_THRESHOLD - 1, 4) == 4
    assert retry.host_concurrency(retry.CIRCUIT_THRESHOLD, 4) == 1
