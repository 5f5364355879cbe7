"""Start-up benchmark: time from `xnode serve` to the first 200 on `/`, and idle RSS.

Targets (issue 2): ready <= 1.5 s, idle RSS <= 80 MB.

For scale, the same figures are measured in the same run for a baseline peer: a
bare aiohttp "hello" server started the same way. The gap between the two is what
xnode itself costs.

Usage: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil

READY_TARGET_S = 1.5
RSS_TARGET_MB = 80.0
IDLE_SETTLE_S = 1.0

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 20.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(0.005)
    raise RuntimeError("server did not become ready")


def measure(cmd: list[str], port: int) -> tuple[float, float]:
    """Start a server, return (seconds to first 200, idle RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/", proc)
        time.sleep(IDLE_SETTLE_S)
        rss = psutil.Process(proc.pid).memory_info().rss / (1024 * 1024)
        return ready - start, rss
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def init_node(data: Path, port: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "xnode", "init", "--data", str(data), "--domain", "localhost",
         "--http", "--port", str(port), "--listen", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )


def summarise(name: str, samples: list[tuple[float, float]]) -> tuple[float, float]:
    ready = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    print(
        f"{name:<18} ready median {statistics.median(ready) * 1000:7.0f} ms"
        f"  max {max(ready) * 1000:7.0f} ms   idle RSS median {statistics.median(rss):6.1f} MB"
        f"  max {max(rss):6.1f} MB"
    )
    return max(ready), max(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    print(f"start-up benchmark: {args.runs} runs each ({env_note})")
    with tempfile.TemporaryDirectory() as tmp:
        baseline_script = Path(tmp) / "hello.py"
        baseline_script.write_text(BASELINE_SERVER)
        baseline, node = [], []
        for run in range(args.runs):
            port = free_port()
            baseline.append(measure([sys.executable, str(baseline_script), str(port)], port))
            port = free_port()
            data = Path(tmp) / f"node{run}"
            init_node(data, port)
            node.append(
                measure([sys.executable, "-m", "xnode", "serve", "--data", str(data)], port)
            )
    summarise("aiohttp hello", baseline)
    worst_ready, worst_rss = summarise("xnode serve", node)
    ok = worst_ready <= READY_TARGET_S and worst_rss <= RSS_TARGET_MB
    print(
        f"targets: ready <= {READY_TARGET_S} s, idle RSS <= {RSS_TARGET_MB:.0f} MB -> "
        f"{'PASS' if ok else 'FAIL'} (worst run: {worst_ready:.2f} s, {worst_rss:.1f} MB)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
