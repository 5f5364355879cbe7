"""SQL for the node's public figures (NodeInfo, the client API's instance endpoints)."""

from __future__ import annotations

from xnode.store.database import Database

_LIVE_USERS = (
    "SELECT u.account_id FROM users u JOIN accounts a ON a.id = u.account_id"
    " WHERE u.state = 'active' AND a.deleted_at IS NULL AND a.suspended_at IS NULL"
)


async def user_count(db: Database) -> int:
    """People with a working login."""
    return int(await db.fetchvalue(f"SELECT COUNT(*) FROM ({_LIVE_USERS}) AS live") or 0)


async def active_users_since(db: Database, since: float) -> int:
    """People who posted or used the site since ``since``."""
    return int(
        await db.fetchvalue(
            f"SELECT COUNT(*) FROM ({_LIVE_USERS}) AS live WHERE account_id IN"
            " (SELECT account_id FROM posts WHERE local = 1 AND created_at > ?1"
            " UNION SELECT account_id FROM sessions WHERE last_seen_at > ?1)",
            (since,),
        )
        or 0
    )


async def local_post_count(
    db: Database, since: float | None = None, until: float | None = None
) -> int:
    """Posts written here (replies included, as Mastodon counts them; boosts not)."""
    sql = (
        "SELECT COUNT(*) FROM posts WHERE local = 1 AND reblog_of_id IS NULL"
        " AND deleted_at IS NULL"
    )
    params: list[float] = []
    if since is not None and until is not None:
        sql += " AND created_at >= ? AND created_at < ?"
        params = [since, until]
    return int(await db.fetchvalue(sql, params) or 0)


async def registrations_between(db: Database, since: float, until: float) -> int:
    """Sign-ups in a period."""
    return int(
        await db.fetchvalue(
            "SELECT COUNT(*) FROM users WHERE created_at >= ? AND created_at < ?", (since, until)
        )
        or 0
    )


async def logins_between(db: Database, since: float, until: float) -> int:
    """People whose sessions were used in a period (as near as sessions tell)."""
    return int(
        await db.fetchvalue(
            "SELECT COUNT(DISTINCT account_id) FROM sessions WHERE last_seen_at >= ?"
            " AND last_seen_at < ?",
            (since, until),
        )
        or 0
    )


async def known_domains(db: Database, limit: int = 10_000) -> list[str]:
    """Servers this node knows accounts of."""
    rows = await db.fetchall(
        "SELECT DISTINCT domain FROM accounts WHERE domain IS NOT NULL ORDER BY domain LIMIT ?",
        (limit,),
    )
    return [row["domain"] for row in rows]


async def domain_count(db: Database) -> int:
    """How many servers this node knows accounts of."""
    return int(
        await db.fetchvalue("SELECT COUNT(DISTINCT domain) FROM accounts WHERE domain IS NOT NULL")
        or 0
    )
