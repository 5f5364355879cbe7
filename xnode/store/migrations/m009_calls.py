"""Audio and video calls (xnode/calls/, docs/calls-over-activitypub.md).

``calls``: one row per call this node takes part in, placed here or arriving from
another server (``uri`` is the Call's ActivityPub id either way). The row is the
call's history: who placed it, in which conversation, what media, and how it
ended. What travels during a call (SDP, ICE candidates) is never stored.

``call_participants``: who was invited and how far each got (``ringing``,
``joined``, ``declined``, ``left``).

``accounts.call_policy``: who may ring this person; ``accounts.call_always_relay``:
their calls go through the relay only, so the other side never sees their address.
"""

STATEMENTS = [
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        uri TEXT NOT NULL UNIQUE,
        initiator_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        conversation_id INTEGER REFERENCES conversations (id) ON DELETE SET NULL,
        media TEXT NOT NULL CHECK (media IN ('audio', 'audio video')),
        state TEXT NOT NULL CHECK (state IN ('ringing', 'active', 'ended')),
        end_reason TEXT,
        created_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL
    )
    """,
    "CREATE INDEX calls_open ON calls (state) WHERE state <> 'ended'",
    "CREATE INDEX calls_conversation ON calls (conversation_id, id)",
    """
    CREATE TABLE call_participants (
        call_id INTEGER NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('ringing', 'joined', 'declined', 'left')),
        joined_at REAL,
        left_at REAL,
        PRIMARY KEY (call_id, account_id)
    )
    """,
    "CREATE INDEX call_participants_account ON call_participants (account_id, state)",
    "ALTER TABLE accounts ADD COLUMN call_policy TEXT NOT NULL DEFAULT 'following'"
    " CHECK (call_policy IN ('everyone', 'following', 'conversations', 'nobody'))",
    "ALTER TABLE accounts ADD COLUMN call_always_relay INTEGER NOT NULL DEFAULT 0",
]
