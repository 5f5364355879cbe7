"""Federation: remote actor data, keys, the inbox queue, deliveries, hosts, domain blocks,
reports and emoji reactions."""

STATEMENTS = [
    # What we know of remote actors (local accounts derive these from base_url).
    "ALTER TABLE accounts ADD COLUMN actor_type TEXT NOT NULL DEFAULT 'Person'",
    "ALTER TABLE accounts ADD COLUMN inbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN shared_inbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN outbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN followers_url TEXT",
    "ALTER TABLE accounts ADD COLUMN following_url TEXT",
    "ALTER TABLE accounts ADD COLUMN featured_url TEXT",
    "ALTER TABLE accounts ADD COLUMN also_known_as TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE accounts ADD COLUMN moved_to_account_id INTEGER REFERENCES accounts (id)",
    "ALTER TABLE accounts ADD COLUMN avatar_remote_url TEXT",
    "ALTER TABLE accounts ADD COLUMN header_remote_url TEXT",
    "ALTER TABLE accounts ADD COLUMN fetched_at REAL",
    "CREATE INDEX accounts_domain ON accounts (domain) WHERE domain IS NOT NULL",
    # Signing keys: private halves only for our own accounts and the instance actor.
    # Remote keys are cached here too, so a rotation is a new row.
    """
    CREATE TABLE account_keys (
        id INTEGER PRIMARY KEY,
        account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
        key_id TEXT NOT NULL UNIQUE,
        algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
        public_pem TEXT NOT NULL,
        private_pem TEXT,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX account_keys_account ON account_keys (account_id, algorithm)",
    # Verified incoming activities, persisted before the 202 and processed later.
    """
    CREATE TABLE inbox_queue (
        id INTEGER PRIMARY KEY,
        activity_id TEXT NOT NULL UNIQUE,
        actor_uri TEXT NOT NULL,
        signer_key_id TEXT,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        processed_at REAL
    )
    """,
    "CREATE INDEX inbox_queue_pending ON inbox_queue (id) WHERE state = 'pending'",
    # One row per (activity, target inbox); shared inboxes de-duplicate targets.
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        activity_id TEXT NOT NULL,
        sender_account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER REFERENCES posts (id) ON DELETE SET NULL,
        inbox_url TEXT NOT NULL,
        host TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        delivered_at REAL,
        UNIQUE (activity_id, inbox_url)
    )
    """,
    "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX deliveries_post ON deliveries (post_id)",
    "CREATE INDEX deliveries_host ON deliveries (host, state)",
    # Per-host delivery health: backoff, circuit breaker, the signature scheme that worked.
    """
    CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        circuit_open_until REAL,
        retry_after_until REAL,
        signature_scheme TEXT CHECK (signature_scheme IN ('rfc9421', 'cavage')),
        last_success_at REAL,
        last_failure_at REAL
    )
    """,
    """
    CREATE TABLE domain_blocks (
        domain TEXT PRIMARY KEY,
        severity TEXT NOT NULL CHECK (severity IN ('suspend', 'silence')),
        reason TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    )
    """,
    # Flag activities and local reports, for the admins.
    """
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        reporter_account_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
        target_account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
        post_ids TEXT NOT NULL DEFAULT '[]',
        comment TEXT NOT NULL DEFAULT '',
        activity_uri TEXT,
        created_at REAL NOT NULL,
        resolved_at REAL
    )
    """,
    # Emoji reactions (Misskey/Akkoma EmojiReact, Like with content); DMs reuse them.
    """
    CREATE TABLE reactions (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        emoji TEXT NOT NULL,
        uri TEXT,
        created_at REAL NOT NULL,
        UNIQUE (account_id, post_id, emoji)
    )
    """,
    "CREATE INDEX reactions_post ON reactions (post_id)",
    "CREATE UNIQUE INDEX follows_uri ON follows (uri) WHERE uri IS NOT NULL",
    "CREATE UNIQUE INDEX likes_uri ON likes (uri) WHERE uri IS NOT NULL",
]

# The same change in PostgreSQL's dialect (see the package docstring for the type
# mapping): the PostgreSQL backend applies these instead, from the same numbered list.
POSTGRES = (
    "ALTER TABLE accounts ADD COLUMN actor_type TEXT NOT NULL DEFAULT 'Person'",
    "ALTER TABLE accounts ADD COLUMN inbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN shared_inbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN outbox_url TEXT",
    "ALTER TABLE accounts ADD COLUMN followers_url TEXT",
    "ALTER TABLE accounts ADD COLUMN following_url TEXT",
    "ALTER TABLE accounts ADD COLUMN featured_url TEXT",
    "ALTER TABLE accounts ADD COLUMN also_known_as TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE accounts ADD COLUMN moved_to_account_id BIGINT REFERENCES accounts (id)",
    "ALTER TABLE accounts ADD COLUMN avatar_remote_url TEXT",
    "ALTER TABLE accounts ADD COLUMN header_remote_url TEXT",
    "ALTER TABLE accounts ADD COLUMN fetched_at DOUBLE PRECISION",
    "CREATE INDEX accounts_domain ON accounts (domain) WHERE domain IS NOT NULL",
    """
    CREATE TABLE account_keys (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
        key_id TEXT NOT NULL UNIQUE,
        algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
        public_pem TEXT NOT NULL,
        private_pem TEXT,
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX account_keys_account ON account_keys (account_id, algorithm)",
    """
    CREATE TABLE inbox_queue (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        activity_id TEXT NOT NULL UNIQUE,
        actor_uri TEXT NOT NULL,
        signer_key_id TEXT,
        payload TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        processed_at DOUBLE PRECISION
    )
    """,
    "CREATE INDEX inbox_queue_pending ON inbox_queue (id) WHERE state = 'pending'",
    """
    CREATE TABLE deliveries (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        activity_id TEXT NOT NULL,
        sender_account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT REFERENCES posts (id) ON DELETE SET NULL,
        inbox_url TEXT NOT NULL,
        host TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        last_status BIGINT,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION,
        UNIQUE (activity_id, inbox_url)
    )
    """,
    "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX deliveries_post ON deliveries (post_id)",
    "CREATE INDEX deliveries_host ON deliveries (host, state)",
    """
    CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        consecutive_failures BIGINT NOT NULL DEFAULT 0,
        circuit_open_until DOUBLE PRECISION,
        retry_after_until DOUBLE PRECISION,
        signature_scheme TEXT CHECK (signature_scheme IN ('rfc9421', 'cavage')),
        last_success_at DOUBLE PRECISION,
        last_failure_at DOUBLE PRECISION
    )
    """,
    """
    CREATE TABLE domain_blocks (
        domain TEXT PRIMARY KEY,
        severity TEXT NOT NULL CHECK (severity IN ('suspend', 'silence')),
        reason TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    """
    CREATE TABLE reports (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        reporter_account_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
        target_account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
        post_ids TEXT NOT NULL DEFAULT '[]',
        comment TEXT NOT NULL DEFAULT '',
        activity_uri TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        resolved_at DOUBLE PRECISION
    )
    """,
    """
    CREATE TABLE reactions (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        emoji TEXT NOT NULL,
        uri TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, post_id, emoji)
    )
    """,
    "CREATE INDEX reactions_post ON reactions (post_id)",
    "CREATE UNIQUE INDEX follows_uri ON follows (uri) WHERE uri IS NOT NULL",
    "CREATE UNIQUE INDEX likes_uri ON likes (uri) WHERE uri IS NOT NULL",
)
