"""An account's counts kept as they change (``account_stats``), for the client API.

Apps show every account's followers, following and posts counts, on every status of a
page. Counting them per page (``COUNT(*)`` over follows and posts) took most of an API home
timeline's time at the benchmark's scale (docs/benchmarks.md, "Client API"). Triggers keep
the counts on every write path at once (local and remote posts, deletes, follows accepted,
undone or removed, cascades), so no service can forget one.

A post counts while it is not deleted and not direct; a follow while it is accepted.
``last_status_at`` is the newest counted post's time (never moved back by a delete, as in
Mastodon). The PostgreSQL backend will need the same triggers in its own dialect.
"""

_COUNTED_NEW = "NEW.deleted_at IS NULL AND NEW.visibility <> 'direct'"
_COUNTED_OLD = "OLD.deleted_at IS NULL AND OLD.visibility <> 'direct'"


def _bump(account: str, column: str, delta: str, extra: str = "") -> str:
    """An upsert adding ``delta`` to one count of one account."""
    last = ", last_status_at" if extra else ""
    last_value = f", {extra}" if extra else ""
    last_update = (
        ", last_status_at = MAX(COALESCE(last_status_at, 0), excluded.last_status_at)"
        if extra else ""
    )
    return (
        f"INSERT INTO account_stats (account_id, {column}{last}) VALUES ({account}, {delta}"
        f"{last_value}) ON CONFLICT (account_id) DO UPDATE SET {column} = {column} + {delta}"
        f"{last_update};"
    )


def _follow(row: str, delta: str) -> str:
    """Both sides of a follow counted up or down: the followed account's followers, the
    follower's following."""
    return (
        _bump(f"{row}.target_account_id", "followers_count", delta)
        + _bump(f"{row}.account_id", "following_count", delta)
    )


STATEMENTS = [
    """
    CREATE TABLE account_stats (
        account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        followers_count INTEGER NOT NULL DEFAULT 0,
        following_count INTEGER NOT NULL DEFAULT 0,
        statuses_count INTEGER NOT NULL DEFAULT 0,
        last_status_at REAL
    )
    """,
    # Today's counts, once.
    "INSERT INTO account_stats (account_id) SELECT id FROM accounts",
    "UPDATE account_stats SET"
    " followers_count = (SELECT COUNT(*) FROM follows f WHERE f.state = 'accepted'"
    " AND f.target_account_id = account_stats.account_id),"
    " following_count = (SELECT COUNT(*) FROM follows f WHERE f.state = 'accepted'"
    " AND f.account_id = account_stats.account_id),"
    " statuses_count = (SELECT COUNT(*) FROM posts p WHERE p.account_id ="
    " account_stats.account_id AND p.deleted_at IS NULL AND p.visibility <> 'direct'),"
    " last_status_at = (SELECT MAX(created_at) FROM posts p WHERE p.account_id ="
    " account_stats.account_id AND p.deleted_at IS NULL AND p.visibility <> 'direct')",
    f"""
    CREATE TRIGGER account_stats_post_insert AFTER INSERT ON posts WHEN {_COUNTED_NEW}
    BEGIN {_bump("NEW.account_id", "statuses_count", "1", "NEW.created_at")} END
    """,
    f"""
    CREATE TRIGGER account_stats_post_counted AFTER UPDATE OF deleted_at, visibility ON posts
    WHEN ({_COUNTED_NEW}) AND NOT ({_COUNTED_OLD})
    BEGIN {_bump("NEW.account_id", "statuses_count", "1", "NEW.created_at")} END
    """,
    f"""
    CREATE TRIGGER account_stats_post_uncounted AFTER UPDATE OF deleted_at, visibility ON posts
    WHEN ({_COUNTED_OLD}) AND NOT ({_COUNTED_NEW})
    BEGIN {_bump("OLD.account_id", "statuses_count", "-1")} END
    """,
    f"""
    CREATE TRIGGER account_stats_post_delete AFTER DELETE ON posts WHEN {_COUNTED_OLD}
    BEGIN {_bump("OLD.account_id", "statuses_count", "-1")} END
    """,
    f"""
    CREATE TRIGGER account_stats_follow_insert AFTER INSERT ON follows
    WHEN NEW.state = 'accepted'
    BEGIN {_follow("NEW", "1")} END
    """,
    f"""
    CREATE TRIGGER account_stats_follow_accepted AFTER UPDATE OF state ON follows
    WHEN NEW.state = 'accepted' AND OLD.state <> 'accepted'
    BEGIN {_follow("NEW", "1")} END
    """,
    f"""
    CREATE TRIGGER account_stats_follow_unaccepted AFTER UPDATE OF state ON follows
    WHEN OLD.state = 'accepted' AND NEW.state <> 'accepted'
    BEGIN {_follow("OLD", "-1")} END
    """,
    f"""
    CREATE TRIGGER account_stats_follow_delete AFTER DELETE ON follows
    WHEN OLD.state = 'accepted'
    BEGIN {_follow("OLD", "-1")} END
    """,
]


def _pg_bump(account: str, column: str, delta: str, extra: str = "") -> str:
    """The PL/pgSQL of :func:`_bump`: SQLite's two-argument ``MAX`` is ``GREATEST`` (both
    arguments are never NULL here, where the two would differ: a post's created_at is NOT
    NULL), and the existing row's columns are qualified, as PL/pgSQL would otherwise take
    a bare name for a variable if one were ever declared."""
    last = ", last_status_at" if extra else ""
    last_value = f", {extra}" if extra else ""
    last_update = (
        ", last_status_at = GREATEST(COALESCE(account_stats.last_status_at, 0),"
        " EXCLUDED.last_status_at)"
        if extra else ""
    )
    return (
        f"INSERT INTO account_stats (account_id, {column}{last}) VALUES ({account}, {delta}"
        f"{last_value}) ON CONFLICT (account_id) DO UPDATE SET"
        f" {column} = account_stats.{column} + {delta}{last_update};"
    )


def _pg_function(name: str, body: str) -> str:
    """A trigger function running ``body`` (PostgreSQL triggers call a function; SQLite's
    carry their statements)."""
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {body} RETURN NULL; END $$"
    )


# The same change in PostgreSQL's dialect: one trigger function per kind of change (a
# post counted or uncounted, a follow counted or uncounted), called by triggers with the
# SQLite triggers' names, events and WHEN conditions. The backfill statements are the
# same SQL.
POSTGRES = (
    """
    CREATE TABLE account_stats (
        account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        followers_count BIGINT NOT NULL DEFAULT 0,
        following_count BIGINT NOT NULL DEFAULT 0,
        statuses_count BIGINT NOT NULL DEFAULT 0,
        last_status_at DOUBLE PRECISION
    )
    """,
    STATEMENTS[1],
    STATEMENTS[2],
    _pg_function(
        "account_stats_post_counted_fn",
        _pg_bump("NEW.account_id", "statuses_count", "1", "NEW.created_at"),
    ),
    _pg_function(
        "account_stats_post_uncounted_fn", _pg_bump("OLD.account_id", "statuses_count", "-1")
    ),
    _pg_function(
        "account_stats_follow_counted_fn",
        _pg_bump("NEW.target_account_id", "followers_count", "1")
        + _pg_bump("NEW.account_id", "following_count", "1"),
    ),
    _pg_function(
        "account_stats_follow_uncounted_fn",
        _pg_bump("OLD.target_account_id", "followers_count", "-1")
        + _pg_bump("OLD.account_id", "following_count", "-1"),
    ),
    f"""
    CREATE TRIGGER account_stats_post_insert AFTER INSERT ON posts
    FOR EACH ROW WHEN ({_COUNTED_NEW}) EXECUTE FUNCTION account_stats_post_counted_fn()
    """,
    f"""
    CREATE TRIGGER account_stats_post_counted AFTER UPDATE OF deleted_at, visibility ON posts
    FOR EACH ROW WHEN (({_COUNTED_NEW}) AND NOT ({_COUNTED_OLD}))
    EXECUTE FUNCTION account_stats_post_counted_fn()
    """,
    f"""
    CREATE TRIGGER account_stats_post_uncounted AFTER UPDATE OF deleted_at, visibility ON posts
    FOR EACH ROW WHEN (({_COUNTED_OLD}) AND NOT ({_COUNTED_NEW}))
    EXECUTE FUNCTION account_stats_post_uncounted_fn()
    """,
    f"""
    CREATE TRIGGER account_stats_post_delete AFTER DELETE ON posts
    FOR EACH ROW WHEN ({_COUNTED_OLD}) EXECUTE FUNCTION account_stats_post_uncounted_fn()
    """,
    """
    CREATE TRIGGER account_stats_follow_insert AFTER INSERT ON follows
    FOR EACH ROW WHEN (NEW.state = 'accepted')
    EXECUTE FUNCTION account_stats_follow_counted_fn()
    """,
    """
    CREATE TRIGGER account_stats_follow_accepted AFTER UPDATE OF state ON follows
    FOR EACH ROW WHEN (NEW.state = 'accepted' AND OLD.state <> 'accepted')
    EXECUTE FUNCTION account_stats_follow_counted_fn()
    """,
    """
    CREATE TRIGGER account_stats_follow_unaccepted AFTER UPDATE OF state ON follows
    FOR EACH ROW WHEN (OLD.state = 'accepted' AND NEW.state <> 'accepted')
    EXECUTE FUNCTION account_stats_follow_uncounted_fn()
    """,
    """
    CREATE TRIGGER account_stats_follow_delete AFTER DELETE ON follows
    FOR EACH ROW WHEN (OLD.state = 'accepted')
    EXECUTE FUNCTION account_stats_follow_uncounted_fn()
    """,
)
