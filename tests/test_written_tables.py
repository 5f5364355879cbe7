"""Which cached tables a statement invalidates (``database.written_tables``).

A write invalidates the in-memory caches of the tables it writes, on PostgreSQL in
every serving process (a NOTIFY); a table it only reads must not be invalidated, or
every queued activity (whose insert reads ``domain_blocks``) reloads the block list.
"""

from __future__ import annotations

import pytest

from xnode.store.database import written_tables


@pytest.mark.parametrize(
    ("sql", "written"),
    [
        ("SELECT * FROM domain_blocks", []),
        ("  select a.* from accounts a join account_keys k on k.account_id = a.id", []),
        ("INSERT INTO domain_blocks (domain, created_at) VALUES (?, ?)", ["domain_blocks"]),
        ("UPDATE accounts SET display_name = ? WHERE id = ?", ["accounts"]),
        ("DELETE FROM account_keys WHERE account_id = ?", ["account_keys"]),
        ("INSERT OR IGNORE INTO accounts (id) VALUES (?)", ["accounts"]),
        # The inbox's insert: it reads the block list, it writes the queue.
        ("INSERT INTO inbox_queue (id, actor_uri) SELECT ?, ? WHERE NOT EXISTS"
         " (SELECT 1 FROM domain_blocks WHERE domain = ?)", []),
        ("INSERT INTO account_keys (key_id) VALUES (?) ON CONFLICT (key_id) DO UPDATE SET"
         " public_pem = excluded.public_pem", ["account_keys"]),
        ("WITH gone AS (DELETE FROM domain_blocks WHERE domain = ? RETURNING domain)"
         " UPDATE accounts SET suspended_at = ? WHERE domain IN (SELECT domain FROM gone)",
         ["accounts", "domain_blocks"]),
        ("UPDATE posts SET likes_count = likes_count + 1 WHERE account_id IN"
         " (SELECT id FROM accounts WHERE domain = ?)", []),
        # Anything else (schema changes) invalidates every cached table it names.
        ("ALTER TABLE accounts ADD COLUMN x TEXT", ["accounts"]),
    ],
)
def test_only_the_tables_a_statement_writes_are_invalidated(sql, written):
    assert sorted(written_tables(sql)) == written
