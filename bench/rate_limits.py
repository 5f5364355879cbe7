"""Rate-limit cost per request: in memory (SQLite nodes) and shared through PostgreSQL.

Several serving processes share their rate limits through the database (issue 18,
``m015_rate_limits``): the client API counts every request with one upsert
(``SharedWindowCounter.hit``), a login attempt with a locked check-and-insert
(``SharedRateLimiter.attempt``). This measures what that adds to a request, against
two baselines in the same run: the in-memory counter a SQLite node uses, and the
cheapest round trip the pool can make (``SELECT 1``), interleaved call by call.

The cluster is tools/pg_cluster.py's throwaway one (fsync off unless ``--durable``:
an UNLOGGED table writes no WAL either way, so the upsert's figure hardly depends on it).

Usage: python bench/rate_limits.py [--calls N] [--keys N] [--durable]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))
sys.path.insert(0, str(HERE.parent))

from machine import calibration_line  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402

from xnode.clock import SystemClock  # noqa: E402
from xnode.errors import RateLimited  # noqa: E402
from xnode.ratelimit import (  # noqa: E402
    Limit,
    SharedRateLimiter,
    SharedWindowCounter,
    WindowCounter,
)
from xnode.store.database import open_database  # noqa: E402

API_LIMIT = Limit(count=1_000_000, window_s=300)  # never refuses: every call counts


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main_async(args: argparse.Namespace) -> None:
    """Time each variant, interleaved call by call, and print the table."""
    with PgCluster(durable=args.durable) as cluster:
        cluster.create_database("rate_bench")
        url = cluster.url("rate_bench")
        async with open_database(url) as db:
            clock = SystemClock()
            memory = WindowCounter(clock, API_LIMIT)
            shared = SharedWindowCounter(db, clock, API_LIMIT)
            limiter = SharedRateLimiter(db, clock)
            keys = [f"token:{n}" for n in range(args.keys)]

            async def round_trip(key: str) -> None:
                await db.fetchvalue("SELECT 1")

            async def in_memory(key: str) -> None:
                await memory.hit(key)

            async def upsert(key: str) -> None:
                await shared.hit(key)

            async def attempt(key: str) -> None:
                with contextlib.suppress(RateLimited):  # refused attempts cost the same
                    await limiter.attempt(key, Limit(count=30, window_s=300), "")

            variants: dict[str, Callable[[str], Awaitable[None]]] = {
                "in memory (WindowCounter, a SQLite node)": in_memory,
                "PostgreSQL SELECT 1 (one round trip)": round_trip,
                "PostgreSQL API count (SharedWindowCounter.hit)": upsert,
                "PostgreSQL login attempt (SharedRateLimiter.attempt)": attempt,
            }
            timings: dict[str, list[float]] = {name: [] for name in variants}
            order = list(variants.items())
            for n in range(args.warmup + args.calls):
                key = random.choice(keys)
                random.shuffle(order)
                for name, call in order:
                    start = time.perf_counter()
                    await call(key)
                    if n >= args.warmup:
                        timings[name].append((time.perf_counter() - start) * 1e6)
            rows = await db.fetchvalue("SELECT count(*) FROM rate_limit_windows")
    print(f"{args.calls} timed calls each ({args.warmup} untimed first), {args.keys} keys"
          f" ({rows} API windows at the end), load average {os.getloadavg()[0]:.2f}")
    print("| variant | p50 µs | p99 µs | mean µs | × SELECT 1 (p50) |")
    print("| --- | --- | --- | --- | --- |")
    base = statistics.median(timings["PostgreSQL SELECT 1 (one round trip)"])
    for name, values in timings.items():
        p50 = statistics.median(values)
        print(f"| {name} | {p50:.1f} | {percentile(values, 0.99):.1f} |"
              f" {statistics.fmean(values):.1f} | {p50 / base:.2f} |")


def main() -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args()
    print(f"rate limits: python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(calibration_line())
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
