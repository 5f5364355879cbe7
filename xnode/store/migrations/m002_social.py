"""Posts, media, the social graph, notifications and full-text search."""

STATEMENTS = [
    "ALTER TABLE accounts ADD COLUMN hide_network INTEGER NOT NULL DEFAULT 0",
    # Notes and articles, local and (later) remote, and boosts: a boost is a row
    # whose reblog_of_id names the boosted post, as in Mastodon, so timelines
    # are one ordered scan. Deleting keeps a tombstone row (replies stay).
    """
    CREATE TABLE posts (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        url TEXT,
        kind TEXT NOT NULL DEFAULT 'note' CHECK (kind IN ('note', 'article', 'question')),
        title TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        source_format TEXT NOT NULL DEFAULT 'plain'
            CHECK (source_format IN ('plain', 'markdown', 'html')),
        content_html TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        sensitive INTEGER NOT NULL DEFAULT 0,
        visibility TEXT NOT NULL
            CHECK (visibility IN ('public', 'unlisted', 'followers', 'direct')),
        language TEXT,
        in_reply_to_id INTEGER REFERENCES posts (id) ON DELETE SET NULL,
        in_reply_to_uri TEXT,
        reblog_of_id INTEGER REFERENCES posts (id) ON DELETE CASCADE,
        context TEXT,
        local INTEGER NOT NULL,
        replies_count INTEGER NOT NULL DEFAULT 0,
        reblogs_count INTEGER NOT NULL DEFAULT 0,
        likes_count INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        edited_at REAL,
        deleted_at REAL
    )
    """,
    "CREATE INDEX posts_account ON posts (account_id, id)",
    "CREATE INDEX posts_reply ON posts (in_reply_to_id)",
    "CREATE UNIQUE INDEX posts_uri ON posts (uri) WHERE uri IS NOT NULL",
    "CREATE UNIQUE INDEX posts_one_boost ON posts (reblog_of_id, account_id)"
    " WHERE reblog_of_id IS NOT NULL",
    # Partial indexes that exactly match the local and federated timelines.
    "CREATE INDEX posts_local_public ON posts (id) WHERE local = 1 AND visibility = 'public'"
    " AND reblog_of_id IS NULL AND deleted_at IS NULL",
    "CREATE INDEX posts_public ON posts (id) WHERE visibility = 'public'"
    " AND reblog_of_id IS NULL AND deleted_at IS NULL",
    # Earlier versions of edited posts.
    """
    CREATE TABLE post_edits (
        id INTEGER PRIMARY KEY,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        source TEXT NOT NULL,
        content_html TEXT NOT NULL,
        summary TEXT NOT NULL,
        sensitive INTEGER NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX post_edits_post ON post_edits (post_id, id)",
    """
    CREATE TABLE mentions (
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        PRIMARY KEY (post_id, account_id)
    )
    """,
    "CREATE INDEX mentions_account ON mentions (account_id, post_id)",
    """
    CREATE TABLE post_tags (
        tag TEXT NOT NULL,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        PRIMARY KEY (tag, post_id)
    )
    """,
    "CREATE INDEX post_tags_post ON post_tags (post_id)",
    """
    CREATE TABLE likes (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        uri TEXT,
        created_at REAL NOT NULL,
        UNIQUE (account_id, post_id)
    )
    """,
    "CREATE INDEX likes_post ON likes (post_id)",
    """
    CREATE TABLE bookmarks (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        UNIQUE (account_id, post_id)
    )
    """,
    """
    CREATE TABLE pins (
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        PRIMARY KEY (account_id, post_id)
    )
    """,
    # Images attached to posts; a row exists from upload until it is attached.
    """
    CREATE TABLE media_attachments (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER REFERENCES posts (id) ON DELETE CASCADE,
        file_name TEXT,
        thumbnail_file TEXT,
        remote_url TEXT,
        content_type TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        description TEXT NOT NULL DEFAULT '',
        position INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX media_post ON media_attachments (post_id, position)",
    # Who follows whom; 'pending' until a locked account approves.
    """
    CREATE TABLE follows (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
        created_at REAL NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    "CREATE INDEX follows_target ON follows (target_account_id, state, account_id)",
    """
    CREATE TABLE blocks (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        created_at REAL NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    "CREATE INDEX blocks_target ON blocks (target_account_id, account_id)",
    """
    CREATE TABLE mutes (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        type TEXT NOT NULL CHECK (type IN
            ('mention', 'reply', 'follow', 'follow_request', 'like', 'boost')),
        from_account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id INTEGER REFERENCES posts (id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        read_at REAL
    )
    """,
    "CREATE INDEX notifications_account ON notifications (account_id, id)",
    "CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL",
    # Full-text search; rowid is the post or account id. Only the text lives
    # here: who may see a hit is decided by joining back to posts.
    "CREATE VIRTUAL TABLE posts_fts USING fts5 (text, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE accounts_fts USING fts5"
    " (handle, display_name, bio, tokenize = 'unicode61 remove_diacritics 2')",
]

# What FTS5's ``unicode61 remove_diacritics 2`` tokenizer does to text, for PostgreSQL,
# without an extension (``unaccent`` would need a superuser to install it, and strips
# more than FTS5 does): diacritics are removed from Latin letters only (NFD, then the
# combining marks that follow an ASCII letter, as FTS5 leaves e.g. Greek and Cyrillic
# accents), letters are lowered, and ASCII punctuation becomes a space, as FTS5 splits
# words there (PostgreSQL's parser would keep "foo-bar" or "a@b.com" whole). IMMUTABLE
# (all it calls is), so a generated column may use it; the search query must fold its
# words with it too. Needs a UTF8 database (normalize()); lower() and the parser's
# handling of non-ASCII letters follow the database's LC_CTYPE (a UTF-8 locale, as
# C.UTF-8, folds the case of all scripts; "C" would fold ASCII only).
_SEARCH_TEXT_FUNCTION = r"""
    CREATE FUNCTION xnode_search_text(value TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT lower(regexp_replace(
            normalize(regexp_replace(normalize(value, NFD),
                                     '([A-Za-z])[\u0300-\u036f]+', '\1', 'g'), NFC),
            '[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+', ' ', 'g'))
    $$
"""

# The same change in PostgreSQL's dialect (see the package docstring for the type
# mapping): the PostgreSQL backend applies these instead, from the same numbered list.
POSTGRES = (
    "ALTER TABLE accounts ADD COLUMN hide_network BIGINT NOT NULL DEFAULT 0",
    """
    CREATE TABLE posts (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        url TEXT,
        kind TEXT NOT NULL DEFAULT 'note' CHECK (kind IN ('note', 'article', 'question')),
        title TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        source_format TEXT NOT NULL DEFAULT 'plain'
            CHECK (source_format IN ('plain', 'markdown', 'html')),
        content_html TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        sensitive BIGINT NOT NULL DEFAULT 0,
        visibility TEXT NOT NULL
            CHECK (visibility IN ('public', 'unlisted', 'followers', 'direct')),
        language TEXT,
        in_reply_to_id BIGINT REFERENCES posts (id) ON DELETE SET NULL,
        in_reply_to_uri TEXT,
        reblog_of_id BIGINT REFERENCES posts (id) ON DELETE CASCADE,
        context TEXT,
        local BIGINT NOT NULL,
        replies_count BIGINT NOT NULL DEFAULT 0,
        reblogs_count BIGINT NOT NULL DEFAULT 0,
        likes_count BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        edited_at DOUBLE PRECISION,
        deleted_at DOUBLE PRECISION
    )
    """,
    "CREATE INDEX posts_account ON posts (account_id, id)",
    "CREATE INDEX posts_reply ON posts (in_reply_to_id)",
    "CREATE UNIQUE INDEX posts_uri ON posts (uri) WHERE uri IS NOT NULL",
    "CREATE UNIQUE INDEX posts_one_boost ON posts (reblog_of_id, account_id)"
    " WHERE reblog_of_id IS NOT NULL",
    "CREATE INDEX posts_local_public ON posts (id) WHERE local = 1 AND visibility = 'public'"
    " AND reblog_of_id IS NULL AND deleted_at IS NULL",
    "CREATE INDEX posts_public ON posts (id) WHERE visibility = 'public'"
    " AND reblog_of_id IS NULL AND deleted_at IS NULL",
    """
    CREATE TABLE post_edits (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        source TEXT NOT NULL,
        content_html TEXT NOT NULL,
        summary TEXT NOT NULL,
        sensitive BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX post_edits_post ON post_edits (post_id, id)",
    """
    CREATE TABLE mentions (
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        PRIMARY KEY (post_id, account_id)
    )
    """,
    "CREATE INDEX mentions_account ON mentions (account_id, post_id)",
    """
    CREATE TABLE post_tags (
        tag TEXT NOT NULL,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        PRIMARY KEY (tag, post_id)
    )
    """,
    "CREATE INDEX post_tags_post ON post_tags (post_id)",
    """
    CREATE TABLE likes (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        uri TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, post_id)
    )
    """,
    "CREATE INDEX likes_post ON likes (post_id)",
    """
    CREATE TABLE bookmarks (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, post_id)
    )
    """,
    """
    CREATE TABLE pins (
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account_id, post_id)
    )
    """,
    """
    CREATE TABLE media_attachments (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT REFERENCES posts (id) ON DELETE CASCADE,
        file_name TEXT,
        thumbnail_file TEXT,
        remote_url TEXT,
        content_type TEXT NOT NULL,
        width BIGINT,
        height BIGINT,
        description TEXT NOT NULL DEFAULT '',
        position BIGINT NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX media_post ON media_attachments (post_id, position)",
    """
    CREATE TABLE follows (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    "CREATE INDEX follows_target ON follows (target_account_id, state, account_id)",
    """
    CREATE TABLE blocks (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        uri TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    "CREATE INDEX blocks_target ON blocks (target_account_id, account_id)",
    """
    CREATE TABLE mutes (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        target_account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (account_id, target_account_id)
    )
    """,
    """
    CREATE TABLE notifications (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        -- Named (it is PostgreSQL's own default name) because m011 replaces it.
        type TEXT NOT NULL CONSTRAINT notifications_type_check CHECK (type IN
            ('mention', 'reply', 'follow', 'follow_request', 'like', 'boost')),
        from_account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        post_id BIGINT REFERENCES posts (id) ON DELETE CASCADE,
        created_at DOUBLE PRECISION NOT NULL,
        read_at DOUBLE PRECISION
    )
    """,
    "CREATE INDEX notifications_account ON notifications (account_id, id)",
    "CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL",
    # Full-text search (FTS5 has no PostgreSQL counterpart): plain tables with the FTS5
    # tables' names and columns, so the store's INSERT/DELETE by rowid are the same on
    # both backends, plus a generated ``document`` (a tsvector, config 'simple', over
    # xnode_search_text of the text) with a GIN index. A search is then
    # ``document @@ to_tsquery('simple', <words folded by xnode_search_text>)``.
    _SEARCH_TEXT_FUNCTION,
    """
    CREATE TABLE posts_fts (
        rowid BIGINT PRIMARY KEY,
        text TEXT,
        document tsvector GENERATED ALWAYS AS
            (to_tsvector('simple', xnode_search_text(text))) STORED
    )
    """,
    "CREATE INDEX posts_fts_document ON posts_fts USING gin (document)",
    """
    CREATE TABLE accounts_fts (
        rowid BIGINT PRIMARY KEY,
        handle TEXT,
        display_name TEXT,
        bio TEXT,
        document tsvector GENERATED ALWAYS AS (to_tsvector('simple', xnode_search_text(
            COALESCE(handle, '') || ' ' || COALESCE(display_name, '') || ' '
            || COALESCE(bio, '')))) STORED
    )
    """,
    "CREATE INDEX accounts_fts_document ON accounts_fts USING gin (document)",
)
