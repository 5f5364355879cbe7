"""Pages: time to first byte and bytes sent for the main pages, and a node under mixed load.

Targets (issue 15): p99 time to first byte <= 50 ms on loopback for home, profile,
thread, messages and notifications (40 items); the home page <= 100 KB transferred
(compressed, as browsers ask); and under load (``--clients`` concurrent clients for
``--seconds``, mixing anonymous pages, signed-in timelines and signed inbox
deliveries) >= 1.5 x the requests/s of the code before the issue, with p99 <= 3 x p50.

Each version runs as a real `xnode serve` (`python -m xnode` with that version's code
first on the path), in a fresh data directory set up by bench/pages_setup.py with the
same code. ``--before DIR`` names a checkout of the earlier code (a git worktree);
both are measured in the same run, one after the other.

Usage: python bench/pages.py [--before DIR] [--seconds N] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from inbox import RemoteActors, free_port, wait_ready
from machine import calibration_line

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PASSWORD = "correct horse battery staple"
TTFB_TARGET_MS = 50.0
HOME_TARGET_KB = 100.0
SAMPLES = 50


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Node:
    """`xnode serve` from a source tree, in a fresh data directory."""

    def __init__(self, source: Path, tmp: Path) -> None:
        self.source = source
        link = source / "xnode" / "templates"
        if source != ROOT and not link.exists():
            # The installed package maps xnode.templates to this checkout's templates;
            # another checkout first on the path must find its own.
            link.symlink_to("../templates")
        self.port = free_port()
        self.data = tmp / f"node-{self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "PYTHONPATH": str(source), "XNODE_ALLOW_PRIVATE_ADDRESSES": "true",
        }  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def run(self, *args: str, **options: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, *args], env=self.env, cwd=self.source, check=True,
            stdout=subprocess.PIPE, **options,  # type: ignore[arg-type]
        )  # fmt: skip

    def start(self) -> tuple[int, int]:
        """Initialise, fill and serve; (a post id of bob's, the conversation id)."""
        self.run("-m", "xnode", "init", "--data", str(self.data), "--domain",
                 f"127.0.0.1:{self.port}", "--http", "--listen", f"127.0.0.1:{self.port}",
                 "--registration", "open")  # fmt: skip
        setup = self.run(str(HERE / "pages_setup.py"), str(self.data))
        post_id, conversation = (int(x) for x in setup.stdout.split()[-2:])
        log = open(self.data / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xnode", "serve", "--data", str(self.data)],
            env=self.env, cwd=self.source, stdout=log, stderr=log,
        )  # fmt: skip
        wait_ready(f"{self.base}/", self.process)
        return post_id, conversation

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def login(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/login") as response:
        page = await response.text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    async with session.post(f"{base}/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, response.status


async def first_bytes(base: str, paths: dict[str, str]) -> dict[str, tuple[float, float, int]]:
    """Per page: (p50 ms, p99 ms to the first byte, bytes on the wire, compressed)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await login(session, base)
    found: dict[str, tuple[float, float, int]] = {}
    # Bodies counted as they travel: compressed when the server compresses.
    async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=False) as session:
        for name, path in paths.items():
            times, size = [], 0
            for _ in range(SAMPLES):
                start = time.perf_counter()
                async with session.get(f"{base}{path}",
                                       headers={"Accept-Encoding": "gzip, deflate"}) as response:
                    times.append(1e3 * (time.perf_counter() - start))  # headers are in
                    body = await response.read()
                    assert response.status == 200, (path, response.status)
                    size = len(body)
            found[name] = (percentile(times, 0.5), percentile(times, 0.99), size)
    return found


async def mixed_load(
    base: str, actors: RemoteActors, clients: int, seconds: float
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) for ``clients`` concurrent clients."""
    inbox, mention = f"{base}/inbox", f"{base}/users/alice"
    deliveries = iter(actors.signed_creates(inbox, mention, 10_000, 20_000))
    latencies: list[float] = []
    errors = 0
    signed_in = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=signed_in) as session:
        await login(session, base)
    cookie = "; ".join(f"{c.key}={c.value}" for c in signed_in)
    kinds = itertools.cycle(["anon", "anon", "user", "user", "inbox"] * 2)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as s:

        async def client(n: int) -> None:
            nonlocal errors
            pages = itertools.cycle(["/local", "/@bob"] if n % 2 else ["/@bob", "/local"])
            mine = itertools.cycle(["/", "/notifications"])
            while time.perf_counter() < deadline:
                kind = next(kinds)
                start = time.perf_counter()
                try:
                    if kind == "inbox":
                        body, headers = next(deliveries)
                        response = await s.post(inbox, data=body, headers=headers)
                    elif kind == "user":
                        response = await s.get(f"{base}{next(mine)}", headers={"Cookie": cookie})
                    else:
                        response = await s.get(f"{base}{next(pages)}")
                    async with response:
                        await response.read()
                        ok = response.status in (200, 202)
                except (aiohttp.ClientError, StopIteration):
                    ok = False
                latencies.append(1e3 * (time.perf_counter() - start))
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return (len(latencies) / elapsed, statistics.median(latencies),
            percentile(latencies, 0.99), errors)  # fmt: skip


async def measure(source: Path, tmp: Path, args: argparse.Namespace, actors: RemoteActors) -> dict:
    node = Node(source, tmp)
    post_id, conversation = node.start()
    try:
        pages = {
            "home": "/", "profile": "/@bob", "thread": f"/@bob/{post_id}",
            "messages": "/messages", "conversation": f"/messages/{conversation}",
            "notifications (40)": "/notifications",
        }  # fmt: skip
        ttfb = await first_bytes(node.base, pages)
        load = await mixed_load(node.base, actors, args.clients, args.seconds)
    finally:
        node.stop()
    return {"ttfb": ttfb, "load": load}


def show(label: str, result: dict) -> None:
    print(f"\n{label}")
    for name, (p50, p99, size) in result["ttfb"].items():
        print(f"  {name:<20} first byte p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
              f"{size / 1024:6.1f} KB sent")  # fmt: skip
    rate, p50, p99, errors = result["load"]
    print(f"  mixed load: {rate:7.0f} requests/s  p50 {p50:6.0f} ms  p99 {p99:6.0f} ms"
          f"  (p99/p50 {p99 / p50:.1f}; {errors} errors)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="checkout of the code before issue 15")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    print(calibration_line())
    actors = RemoteActors(free_port(), 100)
    runner = await actors.serve()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            before = await measure(args.before, tmp, args, actors) if args.before else None
            after = await measure(ROOT, tmp, args, actors)
    finally:
        await runner.cleanup()
    if before:
        show(f"before ({args.before})", before)
    show("now", after)
    worst_ttfb = max(p99 for _, p99, _ in after["ttfb"].values())
    home_kb = after["ttfb"]["home"][2] / 1024
    rate, p50, p99, _ = after["load"]
    verdicts = [
        f"p99 first byte <= {TTFB_TARGET_MS:.0f} ms: "
        f"{'PASS' if worst_ttfb <= TTFB_TARGET_MS else 'FAIL'} ({worst_ttfb:.1f} ms worst)",
        f"home <= {HOME_TARGET_KB:.0f} KB: {'PASS' if home_kb <= HOME_TARGET_KB else 'FAIL'}"
        f" ({home_kb:.1f} KB)",
        f"p99 <= 3 x p50 under load: {'PASS' if p99 <= 3 * p50 else 'FAIL'} ({p99 / p50:.1f} x)",
    ]
    if before:
        ratio = rate / before["load"][0]
        verdicts.append(f"requests/s >= 1.5 x before: {'PASS' if ratio >= 1.5 else 'FAIL'}"
                        f" ({ratio:.2f} x)")  # fmt: skip
    print("\ntargets:\n  " + "\n  ".join(verdicts))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    asyncio.run(main())
