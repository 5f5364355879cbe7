"""The account stats triggers of m013 count down with an ``UPDATE`` (the account's row is
there, or the account is gone), not an upsert.

m013's triggers counted down by upserting the account's ``account_stats`` row. When the
account itself is deleted (a never-approved sign-up, the one hard delete the store
makes), the cascade first deletes its stats row, then its follows and posts, whose
triggers upserted the row again for an account that no longer exists: its foreign key
refused the deletion, on both backends. A count only goes down after it went up, which
made the row; so counting down never needs to insert one.
"""

from xnode.store.migrations.m013_account_stats import _COUNTED_NEW, _COUNTED_OLD


def _down(account: str, column: str) -> str:
    """One count of one account made one less (nothing when the account is gone)."""
    return f"UPDATE account_stats SET {column} = {column} - 1 WHERE account_id = {account};"


_POST_DOWN = _down("OLD.account_id", "statuses_count")
_FOLLOW_DOWN = _down("OLD.target_account_id", "followers_count") + _down(
    "OLD.account_id", "following_count"
)

STATEMENTS = [
    "DROP TRIGGER account_stats_post_uncounted",
    f"""
    CREATE TRIGGER account_stats_post_uncounted AFTER UPDATE OF deleted_at, visibility ON posts
    WHEN ({_COUNTED_OLD}) AND NOT ({_COUNTED_NEW})
    BEGIN {_POST_DOWN} END
    """,
    "DROP TRIGGER account_stats_post_delete",
    f"""
    CREATE TRIGGER account_stats_post_delete AFTER DELETE ON posts WHEN {_COUNTED_OLD}
    BEGIN {_POST_DOWN} END
    """,
    "DROP TRIGGER account_stats_follow_unaccepted",
    f"""
    CREATE TRIGGER account_stats_follow_unaccepted AFTER UPDATE OF state ON follows
    WHEN OLD.state = 'accepted' AND NEW.state <> 'accepted'
    BEGIN {_FOLLOW_DOWN} END
    """,
    "DROP TRIGGER account_stats_follow_delete",
    f"""
    CREATE TRIGGER account_stats_follow_delete AFTER DELETE ON follows
    WHEN OLD.state = 'accepted'
    BEGIN {_FOLLOW_DOWN} END
    """,
]


def _pg_down(account: str, column: str) -> str:
    """:func:`_down` in PL/pgSQL (the row's column qualified, as in m013)."""
    return (
        f"UPDATE account_stats SET {column} = account_stats.{column} - 1"
        f" WHERE account_id = {account};"
    )


# PostgreSQL's triggers call these functions: replacing them is the whole change.
POSTGRES = (
    "CREATE OR REPLACE FUNCTION account_stats_post_uncounted_fn() RETURNS trigger"
    f" LANGUAGE plpgsql AS $$ BEGIN {_pg_down('OLD.account_id', 'statuses_count')}"
    " RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION account_stats_follow_uncounted_fn() RETURNS trigger"
    f" LANGUAGE plpgsql AS $$ BEGIN {_pg_down('OLD.target_account_id', 'followers_count')}"
    f" {_pg_down('OLD.account_id', 'following_count')} RETURN NULL; END $$",
)
