"""The node's public figures: people, posts, known servers, weekly activity
(NodeInfo and the client API's instance endpoints read them here)."""

from __future__ import annotations

from dataclasses import dataclass

from xnode.clock import Clock
from xnode.store import node_stats
from xnode.store.database import Database

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class Usage:
    """Counts NodeInfo and ``/api/v1/instance`` report."""

    users: int
    active_month: int
    active_halfyear: int
    local_posts: int
    domains: int


@dataclass(frozen=True)
class Week:
    """One week of ``/api/v1/instance/activity``."""

    starts_at: float
    statuses: int
    logins: int
    registrations: int


class InstanceService:
    """Reads the node's figures."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def usage(self) -> Usage:
        """Users, active users, local posts and known servers now."""
        now = self.clock.now()
        return Usage(
            users=await node_stats.user_count(self.db),
            active_month=await node_stats.active_users_since(self.db, now - 30 * DAY_S),
            active_halfyear=await node_stats.active_users_since(self.db, now - 180 * DAY_S),
            local_posts=await node_stats.local_post_count(self.db),
            domains=await node_stats.domain_count(self.db),
        )

    async def peers(self) -> list[str]:
        """Servers this node knows people on."""
        return await node_stats.known_domains(self.db)

    async def weekly_activity(self, weeks: int = 12) -> list[Week]:
        """The last ``weeks`` weeks, newest first (the current week so far first)."""
        now = self.clock.now()
        start = now - (now % WEEK_S)
        found = []
        for _ in range(weeks):
            end = start + WEEK_S
            found.append(Week(
                starts_at=start,
                statuses=await node_stats.local_post_count(self.db, start, end),
                logins=await node_stats.logins_between(self.db, start, end),
                registrations=await node_stats.registrations_between(self.db, start, end),
            ))  # fmt: skip
            start -= WEEK_S
        return found
