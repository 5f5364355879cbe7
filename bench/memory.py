"""Memory of a whole node (every process it starts), idle, under load, and idle again.

Target (issue 15): `make run`'s node, configured as `xnode init` writes it on
this machine, uses at most 100 MB PSS in all when idle. PSS (proportional set
size) shares each page among the processes that map it, so the sum over the
processes is what the node costs the machine.

Steps, with a real `xnode serve` (tests/served_node.py's harness, set up as
`xnode init` does here; `helper_idle_stop_s` shortened so the run is short):

1. idle: start, wait for the first page, let it settle, measure;
2. load: 2,000 followers on 40 hosts, one post (2,000 deliveries): the
   delivery processes start on demand; measure once they are running;
3. idle again: wait until the helpers have stopped for lack of load, measure.

Baseline in the same run: a bare aiohttp "hello" server.

Usage: python bench/memory.py [--idle-stop-s N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # pg_cluster

from ports import free_port
from served_node import Receivers, ServedNode, WebUser, add_followers

from xnode.bootstrap import helper_processes_for

TARGET_MB = 100.0
SETTLE_S = 2.0

BASELINE_SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web

    async def hello(request):
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
    """
)


def group_pss_mb(pid: int) -> tuple[float, int]:
    """PSS of a process and all its descendants, in MB, and how many processes."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6, len(processes)


async def baseline_mb(tmp: Path) -> float:
    script = tmp / "hello.py"
    script.write_text(BASELINE_SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        await asyncio.sleep(1.5 + SETTLE_S)
        return group_pss_mb(proc.pid)[0]
    finally:
        proc.terminate()
        proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-stop-s", type=int, default=10,
                        help="helper_idle_stop_s for the run (default 10; nodes: 300)")  # fmt: skip
    args = parser.parse_args()
    helpers = helper_processes_for(os.cpu_count())
    print(f"node as `xnode init` writes it on {os.cpu_count()} cores: {helpers or 'no helpers'}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = await baseline_mb(tmp)
        print(f"baseline: aiohttp hello server, idle          {base:6.1f} MB PSS")
        receivers = Receivers()
        await receivers.start(40)
        node = await ServedNode.create(
            tmp, "node", users=("alice",), helper_idle_stop_s=args.idle_stop_s,
            **{k: v for k, v in helpers.items()},
        )  # fmt: skip
        add_followers(node, "alice", receivers.ports, 50)
        node.start()
        try:
            await node.wait_serving()
            assert node.process is not None
            await asyncio.sleep(SETTLE_S)
            idle, count = group_pss_mb(node.process.pid)
            print(f"xnode serve, idle ({count} process{'es' * (count > 1)})"
                  f"{'':<16}{idle:6.1f} MB PSS")  # fmt: skip
            alice = WebUser(node)
            await alice.login("alice")
            await alice.submit("/posts", {"source": "to all 2,000 of you"})
            await alice.close()
            loaded, count = idle, 1
            if helpers:
                await node.wait_log("delivery process 1/2 ready", timeout_s=30)
                await asyncio.sleep(1.0)
                loaded, count = group_pss_mb(node.process.pid)
            print(f"xnode serve, under load ({count} processes){'':<10}{loaded:6.1f} MB PSS")
            started = time.monotonic()
            if helpers:
                await node.wait_log("delivery processes idle", timeout_s=args.idle_stop_s + 60)
                await asyncio.sleep(SETTLE_S)
            again, count = group_pss_mb(node.process.pid)
            print(f"xnode serve, idle again after {time.monotonic() - started:.0f} s "
                  f"({count} process{'es' * (count > 1)})   {again:6.1f} MB PSS")  # fmt: skip
        finally:
            node.stop()
            await receivers.close()
        worst = max(idle, again)
        verdict = "PASS" if worst <= TARGET_MB else "FAIL"
        print(f"target: whole node idle <= {TARGET_MB:.0f} MB PSS -> {verdict} ({worst:.1f} MB;"
              f" xnode costs {worst - base:.1f} MB over the bare framework)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
