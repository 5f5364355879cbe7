"""Reading notifications: mention, reply, follow, follow request, like, boost.

They are written by the services that cause them (in the same transaction as
the action); this module lists them for their recipient, re-checking that the
recipient may still see the post each one is about.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.errors import NotFound
from xnode.posts.models import PostView
from xnode.posts.service import PostService
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store.database import Database

PAGE_SIZE = 40
MAX_LIMIT = 80
KINDS = frozenset({"mention", "reply", "follow", "follow_request", "like", "boost", "missed_call"})
"""Every kind of notification the node writes."""


@dataclass(frozen=True)
class Notification:
    """One notification, ready to show."""

    id: int
    kind: str
    from_account: Account
    post: PostView | None
    created_at: float
    read: bool


@dataclass(frozen=True)
class NotificationPage:
    """Notifications to show, and the ids of every row read for them (pagination cursors)."""

    items: list[Notification]
    scanned: list[int]


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
        items = await self._shown(account_id, rows)
        next_max_id = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
        return items, next_max_id

    async def _shown(self, account_id: int, rows: Sequence[sqlite3.Row]) -> list[Notification]:
        """The rows as notifications, leaving out those about posts the recipient can no
        longer see and those from deleted or suspended accounts."""
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
        return items

    async def listing(
        self,
        account_id: int,
        kinds: Collection[str],
        *,
        from_account_id: int | None = None,
        max_id: int | None = None,
        min_id: int | None = None,
        since_id: int | None = None,
        limit: int = PAGE_SIZE,
    ) -> NotificationPage:
        """Notifications of some kinds (from one account), newest first, for the client API.

        ``min_id`` pages upwards (the ones just above it), ``since_id`` gives the newest
        above it; the page also names every id it read, so a page whose notifications
        were all left out still has cursors to go on from.
        """
        rows = await notification_store.select_notifications(
            self.db, account_id, kinds=sorted(kinds), from_account_id=from_account_id,
            max_id=max_id, min_id=min_id, since_id=since_id, limit=max(1, min(limit, MAX_LIMIT)),
        )  # fmt: skip
        return NotificationPage(await self._shown(account_id, rows), [r["id"] for r in rows])

    async def get(
        self, account_id: int, notification_id: int, kinds: Collection[str] = KINDS
    ) -> Notification:
        """One of the recipient's notifications, as :meth:`listing` would show it.

        Raises:
            NotFound: someone else's, gone, of another kind, or left out (the post is no
                longer visible, the sender is gone): the same answer for all.
        """
        row = await notification_store.get_notification(self.db, account_id, notification_id)
        if row is None or row["type"] not in kinds:
            raise NotFound("Record not found")
        found = await self._shown(account_id, [row])
        if not found:
            raise NotFound("Record not found")
        return found[0]

    async def dismiss(
        self, account_id: int, notification_id: int, kinds: Collection[str] = KINDS
    ) -> None:
        """Delete one of the recipient's notifications.

        Raises:
            NotFound: not theirs, or not of these kinds.
        """
        if not await notification_store.delete_notification(
            self.db, account_id, notification_id, sorted(kinds)
        ):
            raise NotFound("Record not found")

    async def clear(self, account_id: int, kinds: Collection[str] = KINDS) -> int:
        """Delete every notification of these kinds of the recipient; how many went."""
        return await notification_store.delete_all(self.db, account_id, sorted(kinds))

    async def count_unread(
        self,
        account_id: int,
        kinds: Collection[str],
        *,
        from_account_id: int | None = None,
        cap: int = notification_store.UNREAD_COUNT_CAP,
    ) -> int:
        """Unread notifications of some kinds (from one account), counted up to ``cap``."""
        return await notification_store.count_unread(
            self.db, account_id, kinds=sorted(kinds), from_account_id=from_account_id,
            cap=cap,
        )

    async def unread_count(self, account_id: int) -> int:
        """How many notifications are unread."""
        return await notification_store.unread_count(self.db, account_id)

    async def mark_read(self, account_id: int, up_to_id: int | None = None) -> None:
        """Mark notifications read (all of them, or up to an id)."""
        await notification_store.mark_read(self.db, account_id, self.clock.now(), up_to_id)
