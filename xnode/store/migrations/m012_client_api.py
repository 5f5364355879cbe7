"""The Mastodon-compatible client API (xnode/api/, xnode/oauth/, docs/clients.md).

``oauth_applications``: apps registered through ``POST /api/v1/apps``; the client
secret is stored as its SHA-256 only.

``oauth_codes``: authorization codes waiting to be exchanged (single use, ten minutes),
with the PKCE challenge when the app sent one; stored hashed.

``oauth_tokens``: access tokens (hashed), the app and the person they act for (NULL
for ``client_credentials`` tokens, which act for the app alone), their scopes, when
last used, and when revoked.

``markers``: where a person stopped reading their home timeline and notifications
(``/api/v1/markers``), so another app resumes there.

``api_idempotency``: the status a client's ``Idempotency-Key`` created, so a retried
request returns it instead of posting twice (kept a day).

``mutes.expires_at``: mutes with a duration (``mutes_expiring`` finds the ones to purge
when their time is up); ``media_attachments.focus_x/focus_y``:
the focal point apps crop thumbnails around.
"""

STATEMENTS = [
    """
    CREATE TABLE oauth_applications (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        website TEXT,
        redirect_uris TEXT NOT NULL,
        scopes TEXT NOT NULL,
        client_id TEXT NOT NULL UNIQUE,
        client_secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE oauth_codes (
        code_hash TEXT PRIMARY KEY,
        application_id INTEGER NOT NULL REFERENCES oauth_applications (id) ON DELETE CASCADE,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        redirect_uri TEXT NOT NULL,
        scopes TEXT NOT NULL,
        code_challenge TEXT,
        code_challenge_method TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE oauth_tokens (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        application_id INTEGER NOT NULL REFERENCES oauth_applications (id) ON DELETE CASCADE,
        account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    )
    """,
    "CREATE INDEX oauth_tokens_account ON oauth_tokens (account_id, application_id)",
    """
    CREATE TABLE markers (
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        timeline TEXT NOT NULL CHECK (timeline IN ('home', 'notifications')),
        last_read_id INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        updated_at REAL NOT NULL,
        PRIMARY KEY (account_id, timeline)
    )
    """,
    """
    CREATE TABLE api_idempotency (
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        PRIMARY KEY (account_id, key)
    )
    """,
    "ALTER TABLE mutes ADD COLUMN expires_at REAL",
    "ALTER TABLE media_attachments ADD COLUMN focus_x REAL",
    "ALTER TABLE media_attachments ADD COLUMN focus_y REAL",
    "CREATE INDEX mutes_expiring ON mutes (expires_at) WHERE expires_at IS NOT NULL",
    "ALTER TABLE conversation_members ADD COLUMN removed_up_to INTEGER",
]
