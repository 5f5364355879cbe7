"""Direct messages: conversations, their members (requests, read markers) and DM settings.

A message is a ``posts`` row with visibility 'direct' and a ``conversation_id``:
it federates, replies, carries media, is deleted and reacted to like any post.
What is particular to chat lives here: which conversation a message belongs to,
who takes part, who has accepted it, and how far each local member has read.

End-to-end encryption (MLS over ActivityPub) slots in without a redesign: a
conversation records its ``protocol`` ('plain' now, 'mls' later, with the MLS
group id), and a message row carries its ``media_type``; an MLS
``PrivateMessage`` is stored as ``message/mls`` with the ciphertext in
``payload`` and an empty ``content_html``, so the node only stores and forwards it.
"""

STATEMENTS = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        uri TEXT,
        protocol TEXT NOT NULL DEFAULT 'plain' CHECK (protocol IN ('plain', 'mls')),
        mls_group_id TEXT,
        created_by INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
        last_message_id INTEGER,
        last_activity_at REAL NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    # Several conversations may share a context only when their members differ
    # (a remote server reusing one context for different people); lookups by
    # uri therefore also check membership.
    "CREATE INDEX conversations_uri ON conversations (uri) WHERE uri IS NOT NULL",
    # Every participant, local or remote. ``state`` and ``last_read_id`` only
    # mean something for local members: 'accepted' shows in the inbox,
    # 'request' waits in Requests, 'declined' is hidden until a new request.
    """
    CREATE TABLE conversation_members (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        state TEXT NOT NULL DEFAULT 'accepted'
            CHECK (state IN ('accepted', 'request', 'declined')),
        last_read_id INTEGER NOT NULL DEFAULT 0,
        joined_at REAL NOT NULL,
        PRIMARY KEY (conversation_id, account_id)
    )
    """,
    "CREATE INDEX conversation_members_account ON conversation_members (account_id, state)",
    "ALTER TABLE posts ADD COLUMN conversation_id INTEGER REFERENCES conversations (id)",
    "ALTER TABLE posts ADD COLUMN media_type TEXT NOT NULL DEFAULT 'text/html'",
    "ALTER TABLE posts ADD COLUMN payload BLOB",
    "CREATE INDEX posts_conversation ON posts (conversation_id, id)"
    " WHERE conversation_id IS NOT NULL",
    # Who may start a conversation with a local account.
    "ALTER TABLE accounts ADD COLUMN dm_policy TEXT NOT NULL DEFAULT 'everyone'"
    " CHECK (dm_policy IN ('everyone', 'following', 'nobody'))",
]
