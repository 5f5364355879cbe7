"""Reading notifications: mention, reply, follow, follow request, like, boost.

They are written by the services that cause them (in the same transaction as
the action); this module lists them for their recipient, re-checking that the
recipient may still see the post each one is about.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.posts.models import PostView
from xnode.posts.service import PostService
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store.database import Database

PAGE_SIZE = 40


@dataclass(frozen=True)
class Notification:
    """One notification, ready to show."""

    id: int
    kind: str
    from_account: Account
    post: PostView | None
    created_at: float
    read: bool


GROUPED_KINDS = frozenset({"like", "boost", "follow"})
"""Kinds shown as one entry per post (likes, boosts) or per page (follows)."""


@dataclass(frozen=True)
class NotificationGroup:
    """Notifications shown as one entry: "Ana and 3 others liked your post".

    ``accounts`` newest first; a mention or a reply is always a group of one.
    """

    kind: str
    accounts: tuple[Account, ...]
    post: PostView | None
    created_at: float  # the newest
    read: bool  # all of them
    id: int  # the newest one's

    @property
    def others(self) -> int:
        """How many people besides the first two are named by count only."""
        return max(len(self.accounts) - 1, 0)


def grouped(items: list[Notification]) -> list[NotificationGroup]:
    """Likes and boosts of the same post, and follows, as one entry each (at the place
    of the newest); mentions, replies and follow requests one by one."""
    order: list[tuple[object, ...]] = []
    groups: dict[tuple[object, ...], list[Notification]] = {}
    for item in items:
        if item.kind in GROUPED_KINDS:
            key: tuple[object, ...] = (item.kind, item.post.post.id if item.post else None)
        else:
            key = ("single", item.id)
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(item)
    found = []
    for key in order:
        members = groups[key]
        accounts: dict[int, Account] = {}
        for member in members:
            accounts.setdefault(member.from_account.id, member.from_account)
        first = members[0]
        found.append(NotificationGroup(
            kind=first.kind, accounts=tuple(accounts.values()), post=first.post,
            created_at=first.created_at, read=all(m.read for m in members), id=first.id,
        ))  # fmt: skip
    return found


class NotificationService:
    """Lists notifications and tracks what was read."""

    def __init__(self, db: Database, clock: Clock, posts: PostService) -> None:
        self.db = db
        self.clock = clock
        self.posts = posts

    async def page(
        self, account_id: int, max_id: int | None = None
    ) -> tuple[list[Notification], int | None]:
        """A page of notifications, newest first, and the cursor for the next page."""
        rows = await notification_store.list_notifications(
            self.db, account_id, limit=PAGE_SIZE, max_id=max_id
        )
        senders = await post_store.get_accounts(self.db, {r["from_account_id"] for r in rows})
        posts = await post_store.get_posts(
            self.db, [r["post_id"] for r in rows if r["post_id"] is not None]
        )
        views = {
            v.post.id: v for v in await self.posts.hydrate(account_id, list(posts.values()))
        }
        items = []
        for row in rows:
            sender = senders.get(row["from_account_id"])
            if sender is None or sender.is_deleted or sender.is_suspended:
                continue
            view = views.get(row["post_id"]) if row["post_id"] is not None else None
            if row["post_id"] is not None and view is None:
                continue  # the post is gone or no longer visible to the recipient
            items.append(
                Notification(
                    id=row["id"], kind=row["type"], from_account=sender, post=view,
                    created_at=row["created_at"], read=row["read_at"] is not None,
                )
            )
        next_max_id = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
        return items, next_max_id

    async def unread_count(self, account_id: int) -> int:
        """How many notifications are unread."""
        return await notification_store.unread_count(self.db, account_id)

    async def mark_read(self, account_id: int, up_to_id: int | None = None) -> None:
        """Mark notifications read (all of them, or up to an id)."""
        await notification_store.mark_read(self.db, account_id, self.clock.now(), up_to_id)
