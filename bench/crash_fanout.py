"""Crash in the middle of a fan-out: how long until every follower has the post, and duplicates.

Issue 14: a node (a real `xnode serve` with its inbox process and two delivery
processes, as `xnode init` writes them on two cores) has 2,000 remote
followers on 40 hosts, each with a personal inbox: one post is 2,000 signed
deliveries. The hosts are receivers in this process that record every arrival.

Each run:

1. baseline: a post goes out with nothing armed; seconds from the form's
   submission until all 2,000 inboxes have it;
2. crash: the node restarts with the fault point ``after-sends:N`` armed (each
   delivery process freezes after N answers), a second post goes out, the
   whole process group is SIGKILLed at the first freeze, and the node starts
   again; seconds from that start (process start-up included) until all 2,000
   inboxes have the post, and how many deliveries arrived twice.

Uses the crash tests' harness (tests/served_node.py).

Usage: python bench/crash_fanout.py [--runs N] [--crash-after N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # pg_cluster

from machine import calibration_line
from served_node import Receivers, ServedNode, WebUser, add_followers

HOSTS = 40
PER_HOST = 50


async def _all_reached(receivers: Receivers, activity_id: str, everyone: set[str]) -> None:
    while set(receivers.reached(activity_id)) != everyone:
        await asyncio.sleep(0.01)


def _post_uri(node: ServedNode, text: str) -> str:
    with node.database() as db:
        return db.execute("SELECT uri FROM posts WHERE source = ?", (text,)).fetchone()[0]


async def one_run(tmp: Path, n: int, crash_after: int) -> tuple[float, float, float, int, int]:
    """(baseline s, drain s after restart, of which start-up s, sent before crash, duplicates)."""
    receivers = Receivers()
    await receivers.start(HOSTS)
    node = await ServedNode.create(tmp, f"run{n}", users=("alice",))
    followers = add_followers(node, "alice", receivers.ports, PER_HOST)
    everyone = set(receivers.inboxes(PER_HOST))
    try:
        node.start()
        await node.wait_serving()
        alice = WebUser(node)
        await alice.login("alice")
        await asyncio.sleep(2)  # helpers ready
        started = time.perf_counter()
        await alice.submit("/posts", {"source": "baseline post"})
        await _all_reached(receivers, f"{_post_uri(node, 'baseline post')}/activity", everyone)
        baseline_s = time.perf_counter() - started
        await alice.close()
        node.stop()

        node.start(pause_at=f"after-sends:{crash_after}")
        await node.wait_serving()
        alice = WebUser(node)
        await alice.login("alice")
        await asyncio.sleep(2)
        await alice.submit("/posts", {"source": "crashed post"})
        await alice.close()
        activity_id = f"{_post_uri(node, 'crashed post')}/activity"
        await node.wait_paused(f"after-sends:{crash_after}")
        node.kill()
        before = len(receivers.reached(activity_id))
        restarted = time.perf_counter()
        node.start()
        await node.wait_serving()
        serving_s = time.perf_counter() - restarted
        await _all_reached(receivers, activity_id, everyone)
        drain_s = time.perf_counter() - restarted
        duplicates = len(receivers.reached(activity_id)) - followers
        return baseline_s, drain_s, serving_s, before, duplicates
    finally:
        node.stop()
        await receivers.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--crash-after", type=int, default=400,
                        help="answers per delivery process before it freezes")  # fmt: skip
    args = parser.parse_args()
    print(calibration_line())
    print(f"{HOSTS * PER_HOST} followers on {HOSTS} hosts (personal inboxes); "
          f"crash after {args.crash_after} answers per delivery process")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            baseline_s, drain_s, serving_s, before, duplicates = await one_run(
                Path(tmp), n, args.crash_after
            )
            print(
                f"run {n + 1}: baseline fan-out {baseline_s:.2f} s "
                f"({HOSTS * PER_HOST / baseline_s:,.0f}/s); crash after {before} arrivals, "
                f"restart to all delivered {drain_s:.2f} s (serving after {serving_s:.2f} s), "
                f"{duplicates} duplicates"
            )


if __name__ == "__main__":
    asyncio.run(main())
