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

# The same change in PostgreSQL's dialect. ``xnode_host_shard`` is a database function
# there (the SQLite runner registers the Python one per connection instead): a bitwise
# CRC-32 (zlib's polynomial, reflected) of the host's UTF-8 bytes, mod 1024, so it gives
# exactly xnode.store.shards.host_shard. Slow per byte, but it only runs on backfills and
# hosts are short. IMMUTABLE although convert_to() is only STABLE: a database's encoding
# never changes, and the result must not depend on it anyway (always UTF-8 bytes).
POSTGRES = (
    """
    CREATE FUNCTION xnode_host_shard(host TEXT) RETURNS BIGINT
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
        bytes BYTEA := convert_to(host, 'UTF8');
        crc BIGINT := 4294967295;  -- 0xFFFFFFFF
    BEGIN
        FOR i IN 0 .. length(bytes) - 1 LOOP
            crc := crc # get_byte(bytes, i);
            FOR bit IN 1 .. 8 LOOP
                IF crc & 1 = 1 THEN
                    crc := (crc >> 1) # 3988292384;  -- 0xEDB88320
                ELSE
                    crc := crc >> 1;
                END IF;
            END LOOP;
        END LOOP;
        RETURN (crc # 4294967295) % 1024;
    END
    $$
    """,
    "ALTER TABLE deliveries ADD COLUMN shard BIGINT NOT NULL DEFAULT 0",
    "UPDATE deliveries SET shard = xnode_host_shard(host)",
)
