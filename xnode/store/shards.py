"""Which delivery process serves a host: hosts are split into fixed shards.

With ``delivery_processes = N``, process ``k`` sends the deliveries whose
shard is ``k`` modulo ``N``. Every row of one host has the same shard, so one
process owns each host and the per-host concurrency limit and circuit breaker
still hold. The shard is a CRC-32 of the host: stable across runs and Python
versions (``hash()`` is salted per process), and stored in each delivery row
so the due-rows query can filter on it.
"""

from __future__ import annotations

import zlib

Shard = tuple[int, int]
"""(k, n): the rows of delivery process k of n (those whose shard is k modulo n)."""

SHARDS = 1024
"""Shards in all; any process count up to this splits them evenly enough."""


def host_shard(host: str) -> int:
    """The shard (0 to ``SHARDS`` - 1) of a ``host[:port]`` as deliveries key it."""
    return zlib.crc32(host.encode("utf-8")) % SHARDS
