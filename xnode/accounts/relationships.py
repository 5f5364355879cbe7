"""The social graph: follows (with requests for locked accounts), blocks and mutes.

Mutes may be for a while (``expires_at``, the client API's ``duration``). A mute whose
time ran out is deleted by :meth:`RelationshipService.purge_expired_mutes`, which the serving
process runs when the first timed mute ends (:meth:`RelationshipService.wait_for_mute_end`);
the relationship and the mute list already ignore it from that moment, and timelines,
notifications and who may call (which test for the row) follow at the delete, within
moments rather than at the next round of a periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from xnode.accounts.models import Account, Follow
from xnode.clock import Clock
from xnode.errors import Conflict, Forbidden, NotFound
from xnode.events import BlockChanged, EventBus, FollowChanged, NotificationCreated
from xnode.ids import new_id
from xnode.store import accounts as account_store
from xnode.store import notifications as notification_store
from xnode.store import relationships as rel_store
from xnode.store.database import Database

PAGE_SIZE = 40


@dataclass(frozen=True)
class Relationship:
    """How the viewer stands towards another account (for profile buttons)."""

    following: bool = False
    requested: bool = False
    followed_by: bool = False
    blocking: bool = False
    blocked_by: bool = False
    muting: bool = False
    has_pending_request_from: bool = False


class RelationshipService:
    """Follow, unfollow, approve requests, block, mute."""

    def __init__(self, db: Database, clock: Clock, events: EventBus) -> None:
        self.db = db
        self.clock = clock
        self.events = events
        # Set when a timed mute is made here, so that the waiting purge looks at the new
        # end (one made through another serving process is seen at that one's purge, or at
        # this one's next look, at most ``wait_for_mute_end``'s ``at_most_s`` later).
        self._timed_mute_made = asyncio.Event()

    async def _target(self, account_id: int) -> Account:
        account = await account_store.get_account(self.db, account_id)
        if account is None or account.is_deleted or account.is_suspended:
            raise NotFound("No such account.")
        return account

    async def live_account(self, account_id: int) -> Account:
        """An account people can see and relate to: not suspended or deleted, and for a
        local one, an approved user (a sign-up waiting for approval is nobody yet).

        Raises:
            NotFound: no such account, or not one of those.
        """
        account = await self._target(account_id)
        if account.is_local:
            user = await account_store.get_user(self.db, account.id)
            if user is None or user.state != "active":
                raise NotFound("No such account.")
        return account

    async def live_account_by_handle(self, username: str, domain: str | None) -> Account:
        """:meth:`live_account` by ``username`` (local, ``domain`` None) or ``username@domain``
        among the remote accounts this node knows (nothing is fetched).

        Raises:
            NotFound: no such known, live account.
        """
        if domain is None:
            found = await account_store.get_local_account(self.db, username)
        else:
            found = await account_store.get_remote_account_by_handle(self.db, username, domain)
        if found is None:
            raise NotFound("No such account.")
        return await self.live_account(found.id)

    async def relationship(self, viewer_id: int, target_id: int) -> Relationship:
        """The viewer's relationship to ``target_id``."""
        found = await rel_store.relationship_facts(self.db, viewer_id, target_id, self.clock.now())
        return Relationship(
            following=("out", "accepted") in found,
            requested=("out", "pending") in found,
            followed_by=("in", "accepted") in found,
            has_pending_request_from=("in", "pending") in found,
            blocking=("blocking", "") in found,
            blocked_by=("blocked_by", "") in found,
            muting=("muting", "") in found,
        )

    async def follow(self, follower_id: int, target_id: int) -> str:
        """Follow an account, or ask to if it is locked.

        Returns:
            'accepted' or 'pending'.

        Raises:
            NotFound: no such account.
            Conflict: following oneself.
            Forbidden: a block stands between the two.
        """
        return (await self.add_follow(follower_id, target_id)).state

    async def add_follow(
        self, follower_id: int, target_id: int, *, uri: str | None = None,
        federate: bool = True,
    ) -> Follow:
        """:meth:`follow`, whoever follows: a click here, or a Follow from another server
        (``uri`` its id, ``federate=False``: its server sends nothing more for it). The
        follow as it stands (one that existed is left as it was)."""
        if follower_id == target_id:
            raise Conflict("You cannot follow yourself.")
        target = await self._target(target_id)
        if await rel_store.blocked_either_way(self.db, follower_id, target_id):
            raise Forbidden("You cannot follow this account.")
        # A remote follow is only real once the other server sends its Accept.
        state = "pending" if target.locked or not target.is_local else "accepted"
        now = self.clock.now()
        async with self.events.change(self.db, federate=federate) as change:
            conn = change.conn
            created = await rel_store.upsert_follow(
                conn, new_id(), follower_id, target_id, state, now, uri
            )
            notified = created and await notification_store.insert_notification(
                conn,
                new_id(),
                recipient_id=target_id,
                kind="follow_request" if state == "pending" else "follow",
                from_id=follower_id,
                post_id=None,
                now=now,
            )
            if created:
                change.emit(FollowChanged(follower_id, target_id, state))
            if notified:
                change.emit(NotificationCreated(target_id))
        follow = await rel_store.follow_between(self.db, follower_id, target_id)
        if follow is None:  # unfollowed in the meantime
            raise NotFound("No such follow.")
        return follow

    async def unfollow(self, follower_id: int, target_id: int, *, federate: bool = True) -> bool:
        """Stop following, or withdraw a request (``federate=False``: an Undo{Follow} from
        the follower's server). False if there was no follow."""
        async with self.events.change(self.db, federate=federate) as change:
            removed = await rel_store.delete_follow(change.conn, follower_id, target_id)
            if removed:
                change.emit(FollowChanged(follower_id, target_id, "removed"))
        return removed

    async def accept_request(
        self, target_id: int, follower_id: int, *, federate: bool = True
    ) -> None:
        """Approve a pending follow request to ``target_id`` (``federate=False``: the
        Accept of a remote account that a local one asked to follow).

        Raises:
            NotFound: there is no such pending request.
        """
        async with self.events.change(self.db, federate=federate) as change:
            conn = change.conn
            if not await rel_store.accept_follow(conn, follower_id, target_id):
                raise NotFound("There is no pending follow request from that account.")
            await notification_store.delete_notifications(
                conn, kind="follow_request", from_id=follower_id, recipient_id=target_id
            )
            if await notification_store.insert_notification(
                conn,
                new_id(),
                recipient_id=target_id,
                kind="follow",
                from_id=follower_id,
                post_id=None,
                now=self.clock.now(),
            ):
                change.emit(NotificationCreated(target_id))
            change.emit(FollowChanged(follower_id, target_id, "accepted"))

    async def reject_request(self, target_id: int, follower_id: int) -> None:
        """Refuse a pending follow request.

        Raises:
            NotFound: there is no such pending request.
        """
        if await rel_store.get_follow_state(self.db, follower_id, target_id) != "pending":
            raise NotFound("There is no pending follow request from that account.")
        await self.remove_follower(target_id, follower_id)

    async def remove_follower(
        self, account_id: int, follower_id: int, *, federate: bool = True
    ) -> bool:
        """Make someone stop following you, or refuse their request (``federate=False``:
        a Reject from the followed account's server). False if there was no follow."""
        async with self.events.change(self.db, federate=federate) as change:
            removed = await rel_store.delete_follow(change.conn, follower_id, account_id)
            if removed:
                change.emit(FollowChanged(follower_id, account_id, "rejected"))
        return removed

    async def block(
        self, account_id: int, target_id: int, *, uri: str | None = None,
        federate: bool = True,
    ) -> None:
        """Block an account: follows both ways end, and neither sees the other.
        ``uri``, ``federate=False``: a Block from the blocker's server.

        Raises:
            Conflict: blocking oneself.
            NotFound: no such account.
        """
        if account_id == target_id:
            raise Conflict("You cannot block yourself.")
        await self._target(target_id)
        async with self.events.change(self.db, federate=federate) as change:
            created, ended = await rel_store.add_block(
                change.conn, new_id(), account_id, target_id, self.clock.now(), uri
            )
            for follower, followed in ended:
                change.emit(FollowChanged(follower, followed, "removed"))
            if created:
                change.emit(BlockChanged(account_id, target_id, True))

    async def unblock(
        self, account_id: int, target_id: int | None = None, *, uri: str | None = None,
        federate: bool = True,
    ) -> bool:
        """Lift a block, named by its target or (an Undo{Block} from the blocker's server,
        ``federate=False``) by the Block's id. False if there was no such block."""
        async with self.events.change(self.db, federate=federate) as change:
            target = await rel_store.delete_block(
                change.conn, account_id, target_id=target_id, uri=uri
            )
            if target is not None:
                change.emit(BlockChanged(account_id, target, False))
        return target is not None

    async def set_mute(
        self, account_id: int, target_id: int, muted: bool, *, duration: float | None = None
    ) -> None:
        """Mute (hide from my timelines and notifications) or unmute an account; a mute
        with a ``duration`` (seconds) ends by itself. Muting again replaces the duration.

        Raises:
            Conflict: muting oneself.
            NotFound: no such account.
        """
        if account_id == target_id:
            raise Conflict("You cannot mute yourself.")
        await self._target(target_id)
        now = self.clock.now()
        expires_at = now + duration if muted and duration else None
        async with self.db.transaction() as conn:
            await rel_store.set_mute(conn, new_id(), account_id, target_id, now, muted, expires_at)
        if expires_at is not None:
            self._timed_mute_made.set()

    async def purge_expired_mutes(self) -> int:
        """Delete the mutes whose time ran out (so timelines and notifications show the
        account again); how many went."""
        now = self.clock.now()
        # Read first: an idle node must not write (and wake the disk) every minute.
        earliest = await rel_store.earliest_mute_end(self.db)
        if earliest is None or earliest > now:
            return 0
        async with self.db.transaction() as conn:
            return await rel_store.purge_expired_mutes(conn, now)

    async def wait_for_mute_end(self, at_most_s: float) -> None:
        """Sleep until the first timed mute ends, a timed mute is made here, or ``at_most_s``
        passed (the longest an end set through another serving process waits)."""
        self._timed_mute_made.clear()
        earliest = await rel_store.earliest_mute_end(self.db)
        wait_s = at_most_s
        if earliest is not None:
            # Not below a few milliseconds: a clock that stands still (tests) must not spin.
            wait_s = min(at_most_s, max(0.01, earliest - self.clock.now()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._timed_mute_made.wait(), wait_s)

    async def blocked(
        self, account_id: int, *, limit: int | None = None, max_id: int | None = None,
        min_id: int | None = None, since_id: int | None = None,
    ) -> list[tuple[int, Account]]:
        """A page of the accounts ``account_id`` blocks: (block id, account), newest first."""
        rows = await rel_store.list_edges(
            self.db, "blocks", account_id, now=self.clock.now(), limit=limit or PAGE_SIZE,
            max_id=max_id, min_id=min_id, since_id=since_id,
        )  # fmt: skip
        return [(edge_id, account) for edge_id, account, _ in rows]

    async def muted(
        self, account_id: int, *, limit: int | None = None, max_id: int | None = None,
        min_id: int | None = None, since_id: int | None = None,
    ) -> list[tuple[int, Account, float | None]]:
        """A page of the accounts ``account_id`` mutes now: (mute id, account, when the
        mute ends or None), newest first."""
        return await rel_store.list_edges(
            self.db, "mutes", account_id, now=self.clock.now(), limit=limit or PAGE_SIZE,
            max_id=max_id, min_id=min_id, since_id=since_id,
        )  # fmt: skip

    async def familiar_followers(
        self, viewer_id: int, target_id: int, limit: int | None = None
    ) -> list[Account]:
        """Accounts the viewer follows that follow ``target_id``; none when the target
        hides its network from others."""
        target = await account_store.get_account(self.db, target_id)
        if target is None or (target.hide_network and target_id != viewer_id):
            return []
        return await rel_store.familiar_followers(
            self.db, viewer_id, target_id, limit or PAGE_SIZE
        )

    async def followers(
        self, account_id: int, max_id: int | None = None, state: str = "accepted", *,
        limit: int | None = None, min_id: int | None = None, since_id: int | None = None,
    ) -> list[tuple[int, Account]]:
        """A page of followers (or, with state='pending', follow requests), newest first,
        as (follow id, account)."""
        return await rel_store.list_related(
            self.db,
            column="target",
            account_id=account_id,
            state=state,
            limit=limit or PAGE_SIZE,
            max_id=max_id,
            min_id=min_id,
            since_id=since_id,
        )

    async def following(
        self, account_id: int, max_id: int | None = None, *, limit: int | None = None,
        min_id: int | None = None, since_id: int | None = None,
    ) -> list[tuple[int, Account]]:
        """A page of accounts this account follows, newest first, as (follow id, account)."""
        return await rel_store.list_related(
            self.db,
            column="follower",
            account_id=account_id,
            state="accepted",
            limit=limit or PAGE_SIZE,
            max_id=max_id,
            min_id=min_id,
            since_id=since_id,
        )

    async def pending_request_count(self, account_id: int) -> int:
        """How many follow requests wait for ``account_id`` (``counts`` has accepted only)."""
        return await rel_store.pending_request_count(self.db, account_id)

    async def counts(self, account_id: int) -> tuple[int, int]:
        """(followers, following) counts."""
        return (
            await rel_store.count_related(self.db, column="target", account_id=account_id),
            await rel_store.count_related(self.db, column="follower", account_id=account_id),
        )
