"""Accounts (local and, later, remote), local users, sessions, invites, node settings."""

STATEMENTS = [
    # One row per actor we know: local (domain NULL) or remote. Profile data
    # lives here so that remote actors fit the same shape once federation lands.
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL,
        domain TEXT,
        display_name TEXT NOT NULL DEFAULT '',
        bio_source TEXT NOT NULL DEFAULT '',
        bio_html TEXT NOT NULL DEFAULT '',
        fields_json TEXT NOT NULL DEFAULT '[]',
        avatar_file TEXT,
        header_file TEXT,
        locked INTEGER NOT NULL DEFAULT 0,
        discoverable INTEGER NOT NULL DEFAULT 1,
        uri TEXT,
        url TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        suspended_at REAL,
        deleted_at REAL
    )
    """,
    "CREATE UNIQUE INDEX accounts_local_username ON accounts (username_key)"
    " WHERE domain IS NULL",
    "CREATE UNIQUE INDEX accounts_remote_username ON accounts (username_key, domain)"
    " WHERE domain IS NOT NULL",
    "CREATE UNIQUE INDEX accounts_uri ON accounts (uri) WHERE uri IS NOT NULL",
    """
    CREATE TABLE invites (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        created_by INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at REAL
    )
    """,
    # Login data of the people who have an account on this node.
    """
    CREATE TABLE users (
        account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('active', 'pending')),
        must_change_password INTEGER NOT NULL DEFAULT 0,
        signup_reason TEXT NOT NULL DEFAULT '',
        invite_id INTEGER REFERENCES invites (id) ON DELETE SET NULL,
        created_at REAL NOT NULL,
        password_changed_at REAL NOT NULL
    )
    """,
    "CREATE INDEX users_state ON users (state)",
    # Server-side sessions; the cookie carries a random token, we keep its hash.
    """
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        ip TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX sessions_account ON sessions (account_id)",
    "CREATE INDEX sessions_expires ON sessions (expires_at)",
    # Settings an admin changes at run time (the file gives the defaults).
    """
    CREATE TABLE node_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
]
