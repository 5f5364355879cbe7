"""Notifications of missed calls (``missed_call``: someone rang and nobody answered).

SQLite cannot change a CHECK constraint in place, so the table is rebuilt with the
same columns and rows, and its indexes made again.
"""

STATEMENTS = [
    """
    CREATE TABLE notifications_new (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        type TEXT NOT NULL CHECK (type IN
            ('mention', 'reply', 'follow', 'follow_request', 'like', 'boost', 'missed_call')),
        from_account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER REFERENCES posts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        read_at REAL
    )
    """,
    "INSERT INTO notifications_new (id, account_id, type, from_account_id, post_id,"
    " created_at, read_at) SELECT id, account_id, type, from_account_id, post_id, created_at,"
    " read_at FROM notifications",
    "DROP TABLE notifications",
    "ALTER TABLE notifications_new RENAME TO notifications",
    "CREATE INDEX notifications_account ON notifications (account_id, id)",
    "CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL",
]

# The same change in PostgreSQL's dialect: it changes a CHECK in place (m002 named it),
# so no rebuild; the table, its rows, ids and indexes stay as they are.
POSTGRES = (
    "ALTER TABLE notifications DROP CONSTRAINT notifications_type_check",
    "ALTER TABLE notifications ADD CONSTRAINT notifications_type_check CHECK (type IN"
    " ('mention', 'reply', 'follow', 'follow_request', 'like', 'boost', 'missed_call'))",
)
