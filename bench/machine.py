"""The machine's speed right now, printed by every throughput benchmark.

The reference machine's speed varies from day to day (same hardware kind, shared
host): the same-run baselines moved by 2-3x between runs a week apart. A fixed
pure-Python loop, timed before the benchmark, lets figures from different days
be compared: docs/benchmarks.md quotes it with every table.
"""

from __future__ import annotations

import time

# Run at module level (global variables), as `python -c` runs it: the figures
# quoted in docs/benchmarks.md since 2026-12-02 were taken that way.
_LOOP = compile("s = 0\nfor i in range(10_000_000):\n    s += i\n", "<calibration>", "exec")


def calibration_s() -> float:
    """Seconds CPython takes for ``for i in range(10_000_000): s += i`` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        exec(_LOOP, {})
        best = min(best, time.perf_counter() - start)
    return best


def calibration_line() -> str:
    """One line for a benchmark's output."""
    return f"CPU calibration: 10M-iteration Python loop in {calibration_s():.2f} s (best of 3)"


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from ``/proc``."""
    import os

    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after its ")" are fixed.
        fields = stat.read().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (e.g. the node's inbox process)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except FileNotFoundError:
        return []
