"""Rate limits hold across serving processes (issue 18).

Several ``xnode serve`` processes on one PostgreSQL database share their limits through
the database (``xnode.store.rate_limits``): a client whose requests a reverse proxy
spreads over the processes gets the limit once, not once per process. A SQLite node
counts in memory. The limiters are tested on both engines, two "processes" being two
``Database`` objects (two connection pools) on one database; then on two real
``xnode serve`` processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from database_backend import ON_POSTGRES, fresh_database_url
from served_node import WebUser

from xnode.clock import FakeClock
from xnode.errors import RateLimited
from xnode.ratelimit import (
    Limit,
    RateLimiter,
    SharedRateLimiter,
    SharedWindowCounter,
    WindowCounter,
    rate_limiter_for,
    window_counter_for,
)
from xnode.store.database import Database, open_database

LIMIT = Limit(count=5, window_s=60)


@pytest.fixture
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two handles on one node database, as two serving processes hold: on PostgreSQL
    when the suite runs there, else on one SQLite file."""
    target = fresh_database_url() if ON_POSTGRES else str(tmp_path / "node.db")
    async with open_database(target) as one, open_database(target) as two:
        yield one, two


def test_each_engine_gets_its_kind_of_limiter(two_processes):
    one, _ = two_processes
    limiter, counter = rate_limiter_for(one, FakeClock()), window_counter_for(
        one, FakeClock(), LIMIT
    )
    shared = one.dialect == "postgres"
    assert isinstance(limiter, SharedRateLimiter) is shared
    assert isinstance(counter, SharedWindowCounter) is shared
    assert isinstance(limiter, RateLimiter) and isinstance(counter, WindowCounter)


async def test_shared_limiter_counts_every_process_events(two_processes):
    one, two = two_processes
    clock = FakeClock()
    first, second = SharedRateLimiter(one, clock), SharedRateLimiter(two, clock)
    for n in range(LIMIT.count):
        await (first if n % 2 else second).hit("login:alice", LIMIT)
    with pytest.raises(RateLimited) as refused:
        await first.check("login:alice", LIMIT, "Too many")
    assert refused.value.retry_after == 61
    await second.check("login:bob", LIMIT, "Too many")  # other keys are not affected
    clock.advance(30)
    with pytest.raises(RateLimited) as refused:
        await second.attempt("login:alice", LIMIT, "Too many")
    assert refused.value.retry_after == 31
    clock.advance(31)  # the window slid past every event
    await second.attempt("login:alice", LIMIT, "Too many")
    await first.reset("login:alice")
    for _ in range(LIMIT.count):
        await first.attempt("login:alice", LIMIT, "Too many")


async def test_concurrent_attempts_from_both_processes_pass_the_limit_exactly(two_processes):
    # Check and count are one step: a burst spread over the processes cannot all see
    # room before the first is counted.
    one, two = two_processes
    clock = FakeClock()
    limiters = [SharedRateLimiter(one, clock), SharedRateLimiter(two, clock)]

    async def attempt(n: int) -> bool:
        try:
            await limiters[n % 2].attempt("burst", LIMIT, "Too many")
        except RateLimited:
            return False
        return True

    # Enough of them that, unserialised, several see room at once (measured: 11-19 pass).
    outcomes = await asyncio.gather(*(attempt(n) for n in range(400)))
    assert sum(outcomes) == LIMIT.count


async def test_shared_window_counter_counts_requests_of_both_processes(two_processes):
    one, two = two_processes
    clock = FakeClock()
    counters = [SharedWindowCounter(one, clock, LIMIT), SharedWindowCounter(two, clock, LIMIT)]
    left = [await counters[n % 2].hit("token:1") for n in range(LIMIT.count)]
    assert [remaining for remaining, _ in left] == [4, 3, 2, 1, 0]
    assert {reset_at for _, reset_at in left} == {clock.now() + LIMIT.window_s}
    with pytest.raises(RateLimited):
        await counters[1].hit("token:1")
    assert (await counters[0].hit("token:2"))[0] == 4
    clock.advance(LIMIT.window_s)  # a new window
    assert (await counters[1].hit("token:1"))[0] == 4

    # Concurrent requests each get their own count.
    results = await asyncio.gather(
        *(counters[n % 2].hit("token:3") for n in range(20)), return_exceptions=True
    )
    assert sum(not isinstance(result, RateLimited) for result in results) == LIMIT.count
    assert sorted(r[0] for r in results if isinstance(r, tuple)) == [0, 1, 2, 3, 4]


async def test_old_counts_are_forgotten(two_processes):
    one, _ = two_processes
    clock = FakeClock()
    limiter = SharedRateLimiter(one, clock)
    counter = SharedWindowCounter(one, clock, LIMIT)
    await limiter.hit("old", LIMIT)
    await counter.hit("old")
    clock.advance(2 * 24 * 3600)
    await limiter.hit("new", LIMIT)
    assert await limiter.forget_old() == 2
    assert await one.fetchvalue("SELECT count(*) FROM rate_limit_hits") == 1
    assert await one.fetchvalue("SELECT count(*) FROM rate_limit_windows") == 0


# --- two real serving processes -------------------------------------------------------


async def test_login_failures_on_both_processes_count_together(pair_factory):
    # Ten wrong passwords lock the account's logins for a while (LOGIN_FAILURES_PER_ACCOUNT),
    # however the proxy spreads them: five on each process is ten.
    pair = await pair_factory("alice")
    await pair.start()
    browsers = [WebUser.for_url(pair.one.base_url), WebUser.for_url(pair.two.base_url)]
    try:
        for n in range(10):
            status = await browsers[n % 2].submit(
                "/login", {"username": "alice", "password": "wrong"}, token_page="/login"
            )
            assert status == 401, (n, status)
        for browser in browsers:
            status = await browser.submit(
                "/login", {"username": "alice", "password": "correct horse battery"},
                token_page="/login",
            )  # fmt: skip
            assert status == 429, pair.logs()
    finally:
        for browser in browsers:
            await browser.close()


async def test_the_api_limit_is_one_for_both_processes(pair_factory):
    pair = await pair_factory()
    for node in (pair.one, pair.two):
        node.settings["XNODE_API_RATE_LIMIT"] = "6"
    await pair.start()
    urls = [pair.one.base_url, pair.two.base_url]
    async with aiohttp.ClientSession() as session:
        seen = []
        for n in range(8):
            async with session.get(f"{urls[n % 2]}/api/v1/instance") as response:
                seen.append((response.status, response.headers.get("X-RateLimit-Remaining")))
    assert seen == [
        (200, "5"), (200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0"),
        (429, "0"), (429, "0"),
    ], pair.logs()
