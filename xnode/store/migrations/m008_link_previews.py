"""Link preview cards: what a linked page says of itself, once per URL, and which post shows which.

``link_previews``: one row per URL that a post linked (the URL as written in
the post is the key), with what the page's OpenGraph / Twitter-card / HTML
head said (bounded, cleaned text; http(s) URLs only), or ``failed`` and why.
``fetched_at`` says when the node last asked, so a URL is fetched once, a dead
link is not asked again on every post, and old entries are refreshed after
some days (xnode/link_previews/service.py).

``post_link_previews``: the card a post shows (at most one: its first link).
"""

STATEMENTS = [
    """
    CREATE TABLE link_previews (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('ok', 'failed')),
        card_url TEXT,
        title TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        site_name TEXT NOT NULL DEFAULT '',
        image_url TEXT,
        image_width INTEGER,
        image_height INTEGER,
        error TEXT,
        fetched_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE post_link_previews (
        post_id INTEGER PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
        preview_id INTEGER NOT NULL REFERENCES link_previews (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX post_link_previews_preview ON post_link_previews (preview_id)",
]
