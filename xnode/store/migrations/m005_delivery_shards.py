"""Delivery shards: each delivery row records its host's shard (xnode/store/shards.py).

With several delivery processes (``delivery_processes``), each sends the rows
of its own shards. Rows queued before this migration get their shard here,
through ``xnode_host_shard``, which the migration runner registers (the same
CRC-32 the store computes for new rows).
"""

STATEMENTS = [
    "ALTER TABLE deliveries ADD COLUMN shard INTEGER NOT NULL DEFAULT 0",
    "UPDATE deliveries SET shard = xnode_host_shard(host)",
]
