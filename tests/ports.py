"""Loopback ports for servers a test starts before it can ask them which port they got.

Binding port 0 and closing the probe leaves a window in which the kernel can hand the same
number to anything else on the machine (an outgoing connection's local port, another
worker's port-0 listener), and the server then fails with EADDRINUSE. The kernel only picks
ephemeral ports from ``ip_local_port_range`` (32768-60999 by default), so the ports here come
from below it, and each pytest-xdist worker draws from its own slice: no other test worker and
no kernel choice can take a number between the probe and the bind.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

_FIRST_PORT = 20000
_LAST_PORT = 32000  # below the default ephemeral range


def _worker_slice() -> range:
    """This worker's share of the reserved ports (the whole range outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_LAST_PORT - _FIRST_PORT) // max(count, 1)
    start = _FIRST_PORT + (index % max(count, 1)) * size
    return range(start, start + size)


_SLICE = _worker_slice()
# Start somewhere random in the slice so back-to-back runs do not reuse the same numbers.
_CANDIDATES = itertools.cycle(
    itertools.chain(
        _SLICE[(offset := random.randrange(len(_SLICE))):], _SLICE[:offset]
    )
)


def _bindable(port: int) -> bool:
    """True if both a TCP and a UDP socket can bind the port on 127.0.0.1 right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port no other test worker will be given, free on 127.0.0.1 right now."""
    for _ in range(len(_SLICE)):
        port = next(_CANDIDATES)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port left in {_SLICE}")
