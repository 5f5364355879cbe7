"""Reading notifications: mention, reply, follow, follow request, like, boost.

They are written by the services that cause them (in the same transaction as
the action); this module lists them for their recipient, re-checking that the
recipient may still see the post each one is about.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.errors import NotFound
from xnode.posts.models import PostView
from xnode.posts.service import PostService
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store.database import Database, Row

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


DAY_S = 86_400.0
GROUPABLE_KINDS = frozenset({"like", "boost", "follow"})
"""Kinds the client API's grouped notifications gather: likes and boosts of one post,
follows of one day (UTC); every other notification is a group of its own."""
_GROUP_KEY = re.compile(r"(?:(?P<kind>like|boost)-(?P<post>\d{1,19})|(?P<day_kind>follow)-d"
                        r"(?P<day>\d{1,7})|ungrouped-(?P<id>\d{1,19}))")  # fmt: skip


@dataclass(frozen=True)
class GroupKey:
    """Which notifications make one group of the client API's grouped notifications: one
    kind about one post, one kind on one day, or a single notification."""

    kind: str | None = None
    post_id: int | None = None
    day: int | None = None
    notification_id: int | None = None

    @property
    def text(self) -> str:
        """The key as apps see it (opaque to them; ``ungrouped-ID`` as Mastodon's)."""
        if self.notification_id is not None:
            return f"ungrouped-{self.notification_id}"
        if self.day is not None:
            return f"{self.kind}-d{self.day}"
        return f"{self.kind}-{self.post_id}"

    @classmethod
    def parse(cls, text: str) -> GroupKey | None:
        """A key from its text, or None when it is not one."""
        match = _GROUP_KEY.fullmatch(text)
        if match is None:
            return None
        if match["id"] is not None:
            return cls(notification_id=int(match["id"]))
        if match["day"] is not None:
            return cls(kind=match["day_kind"], day=int(match["day"]))
        return cls(kind=match["kind"], post_id=int(match["post"]))

    @classmethod
    def of(cls, item: Notification, groupable: Collection[str] = GROUPABLE_KINDS) -> GroupKey:
        """The group a notification belongs to (ungrouped unless its kind is groupable)."""
        post_id = item.post.post.id if item.post is not None else None
        return cls.for_row(item.kind, item.id, post_id, item.created_at, groupable)

    @classmethod
    def for_row(
        cls, kind: str, notification_id: int, post_id: int | None, created_at: float,
        groupable: Collection[str] = GROUPABLE_KINDS,
    ) -> GroupKey:
        """:meth:`of` from a notification's stored facts."""
        if kind not in groupable or kind not in GROUPABLE_KINDS:
            return cls(notification_id=notification_id)
        if kind == "follow":
            return cls(kind="follow", day=int(created_at // DAY_S))
        if post_id is None:
            return cls(notification_id=notification_id)
        return cls(kind=kind, post_id=post_id)

    @property
    def span(self) -> tuple[float | None, float | None]:
        """The times a day's group covers (from, until), or (None, None)."""
        if self.day is None:
            return None, None
        return self.day * DAY_S, (self.day + 1) * DAY_S


@dataclass(frozen=True)
class ApiGroup:
    """A group of notifications for the client API: those of it in view, newest first,
    and how many it holds in all."""

    key: GroupKey
    kind: str
    items: list[Notification]
    total: int


@dataclass(frozen=True)
class GroupPage:
    """Groups to show, and the ids of every notification read for them (cursors)."""

    groups: list[ApiGroup]
    scanned: list[int]


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
    of the newest: the web page gathers :data:`GROUPABLE_KINDS` per page, not per day);
    mentions, replies and follow requests one by one."""
    order: list[tuple[object, ...]] = []
    groups: dict[tuple[object, ...], list[Notification]] = {}
    for item in items:
        if item.kind in GROUPABLE_KINDS:
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
        rows = await notification_store.select_notifications(
            self.db, account_id, kinds=sorted(KINDS), max_id=max_id, limit=PAGE_SIZE
        )
        items = await self._shown(account_id, rows)
        next_max_id = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
        return items, next_max_id

    async def _shown(self, account_id: int, rows: Sequence[Row]) -> list[Notification]:
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

    async def groups(
        self,
        account_id: int,
        kinds: Collection[str],
        *,
        groupable: Collection[str] = GROUPABLE_KINDS,
        from_account_id: int | None = None,
        max_id: int | None = None,
        min_id: int | None = None,
        since_id: int | None = None,
        limit: int = PAGE_SIZE,
    ) -> GroupPage:
        """A page of notifications gathered into groups (the client API's grouped
        notifications), in the order of each group's newest notification in the page."""
        page = await self.listing(
            account_id, kinds, from_account_id=from_account_id, max_id=max_id,
            min_id=min_id, since_id=since_id, limit=limit,
        )  # fmt: skip
        gathered: dict[GroupKey, list[Notification]] = {}
        for item in page.items:
            gathered.setdefault(GroupKey.of(item, groupable), []).append(item)
        totals = await self._totals(account_id, list(gathered))
        return GroupPage(
            [ApiGroup(key, items[0].kind, items, max(totals.get(key, 0), len(items)))
             for key, items in gathered.items()],
            page.scanned,
        )  # fmt: skip

    async def _totals(self, account_id: int, keys: Sequence[GroupKey]) -> dict[GroupKey, int]:
        """How many notifications each group holds in all (beyond the page too)."""
        totals: dict[GroupKey, int] = {k: 1 for k in keys if k.notification_id is not None}
        by_post = [k for k in keys if k.post_id is not None and k.kind is not None]
        counts = await notification_store.count_by_post(
            self.db, account_id, sorted({k.kind for k in by_post if k.kind}),
            sorted({k.post_id for k in by_post if k.post_id is not None}),
        )  # fmt: skip
        for key in by_post:
            totals[key] = counts.get((key.kind or "", key.post_id or 0), 0)
        days = [k.day for k in keys if k.day is not None]
        if days:
            per_day = await notification_store.count_by_day(
                self.db, account_id, "follow", min(days) * DAY_S, (max(days) + 1) * DAY_S,
                DAY_S,
            )  # fmt: skip
            for key in keys:
                if key.day is not None:
                    totals[key] = per_day.get(key.day, 0)
        return totals

    async def group(
        self, account_id: int, key: GroupKey, kinds: Collection[str] = KINDS, *,
        sample: int = MAX_LIMIT,
    ) -> ApiGroup:
        """One group of the recipient's notifications (its newest ``sample``).

        Raises:
            NotFound: no such group among theirs (of these kinds) that they may see.
        """
        since, until = key.span
        rows = await notification_store.select_group(
            self.db, account_id, key.kind, post_id=key.post_id, since=since, until=until,
            notification_id=key.notification_id, limit=sample,
        )
        items = [n for n in await self._shown(account_id, rows) if n.kind in kinds]
        if not items:
            raise NotFound("Record not found")
        total = (await self._totals(account_id, [key])).get(key, len(items))
        return ApiGroup(key, items[0].kind, items, max(total, len(items)))

    async def dismiss_group(
        self, account_id: int, key: GroupKey, kinds: Collection[str] = KINDS
    ) -> None:
        """Delete every notification of one of the recipient's groups.

        Raises:
            NotFound: no such group among theirs (of these kinds).
        """
        if key.kind is None:
            row = await notification_store.get_notification(
                self.db, account_id, key.notification_id or 0
            )
            if row is None or row["type"] not in kinds:
                raise NotFound("Record not found")
        elif key.kind not in kinds:
            raise NotFound("Record not found")
        since, until = key.span
        if not await notification_store.delete_group(
            self.db, account_id, key.kind, post_id=key.post_id, since=since, until=until,
            notification_id=key.notification_id,
        ):
            raise NotFound("Record not found")

    async def count_unread_groups(
        self,
        account_id: int,
        kinds: Collection[str],
        *,
        groupable: Collection[str] = GROUPABLE_KINDS,
        from_account_id: int | None = None,
        cap: int = notification_store.UNREAD_COUNT_CAP,
    ) -> int:
        """Groups with unread notifications (of some kinds, from one account), counted
        among the newest ``cap`` unread notifications."""
        rows = await notification_store.select_unread(
            self.db, account_id, kinds=sorted(kinds), from_account_id=from_account_id,
            limit=cap,
        )  # fmt: skip
        return len({
            GroupKey.for_row(r["type"], r["id"], r["post_id"], r["created_at"], groupable)
            for r in rows
        })  # fmt: skip

    async def unread_count(self, account_id: int) -> int:
        """How many notifications are unread."""
        return await notification_store.unread_count(self.db, account_id)

    async def mark_read(self, account_id: int, up_to_id: int | None = None) -> None:
        """Mark notifications read (all of them, or up to an id)."""
        await notification_store.mark_read(self.db, account_id, self.clock.now(), up_to_id)
