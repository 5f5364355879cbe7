"""From domain events to queued activities: what local people do, told to the servers that care.

The outbox turns each committed change into an activity (via
:class:`Serializer`) and an audience, and hands both to the delivery queue. It
never talks HTTP itself.

Nothing is lost to a crash (issue 14): the events it sends are kept
(:meth:`EventBus.keep`), so each is written to the ``outbox`` table in the
same transaction as the change itself. :meth:`Outbox.drain` turns the table's
entries into delivery rows and deletes each entry in the transaction that
queues its rows; it runs when an event is published (so a post is queued
before ``publish`` returns, as before), at start-up, and every
``SWEEP_INTERVAL_S`` (entries left by a crash, or by a helper process that
died). A crash before that transaction leaves the entry; after it, the rows.
Each entry becomes rows once: the claim (:func:`xnode.store.outbox.claim`) is
a delete inside that transaction, so of two processes only one wins.

Only local people's actions are federated. The incoming side publishes the
same events for what remote people do (so notifications and live updates
work); those are recognised by the acting account not being local, and ignored.

Audiences, as Mastodon addresses them:

| what | goes to |
| --- | --- |
| public, unlisted, followers-only post | remote followers + mentioned + parent's author |
| direct post | the mentioned only |
| edit / delete | the same audience (a delete also reaches every inbox the post went to) |
| boost (Announce) / un-boost | the booster's remote followers + the original's author |
| like / unlike | the post's author |
| follow, unfollow, block, unblock | the other account |
| accept / reject of a follow | the follower |
| profile update, account deletion | remote followers (deletion: every inbox we ever used) |

Only remote accounts are passed on: local ones share this database, so the
post, like or follow is already there for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from xnode import faults
from xnode.accounts.models import Account
from xnode.activitypub import retry
from xnode.activitypub.delivery import DeliveryQueue, Planned
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.serialize import PublicKeys, Serializer
from xnode.events import (
    AccountDeleted,
    BlockChanged,
    EventBus,
    FollowChanged,
    Liked,
    PinChanged,
    PostDeleted,
    PostEdited,
    PostPublished,
    ProfileUpdated,
    ReactionChanged,
    event_from,
)
from xnode.ids import new_id
from xnode.posts.models import Post, PostView
from xnode.posts.service import PostService
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import conversations as conversation_store
from xnode.store import deliveries as delivery_store
from xnode.store import outbox as outbox_store
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

DRAIN_BATCH = 64
"""Outbox entries expanded per transaction at most."""
SWEEP_INTERVAL_S = 30.0
"""How often the serving process looks for entries nobody expanded (a crash, a dead helper)."""
MAX_EXPANSION_ATTEMPTS = 12
"""An entry whose expansion fails this often (a bug, never a peer) is kept as failed."""


@dataclass(frozen=True)
class Outgoing:
    """One activity to queue, and whom for (see :meth:`DeliveryQueue.enqueue`)."""

    activity: dict[str, Any]
    sender: Account | None
    recipients: Sequence[Account] = ()
    post_id: int | None = None
    inboxes: Sequence[str] = field(default_factory=tuple)


Expansion = Callable[[Any], Awaitable[list[Outgoing]]]


def _remote(accounts: Sequence[Account | None]) -> list[Account]:
    return [a for a in accounts if a is not None and not a.is_local]


class Outbox:
    """Turns local people's actions into activities for other servers."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        serializer: Serializer,
        keys: KeyRing,
        posts: PostService,
        delivery: DeliveryQueue,
    ) -> None:
        self.db = db
        self.settings = settings
        self.serializer = serializer
        self.keys = keys
        self.posts = posts
        self.delivery = delivery
        self.clock = posts.clock
        self._drain_lock = asyncio.Lock()
        self._events: EventBus | None = None
        self._drained_kept: int | None = None  # the bus's kept_count at the last drain
        self._expansions: dict[type, Expansion] = {
            PostPublished: self._post_published,
            PostEdited: self._post_edited,
            PostDeleted: self._post_deleted,
            Liked: self._liked,
            ReactionChanged: self._reaction_changed,
            FollowChanged: self._follow_changed,
            BlockChanged: self._block_changed,
            ProfileUpdated: self._profile_updated,
            PinChanged: self._pin_changed,
            AccountDeleted: self._account_deleted,
        }

    def subscribe(self, events: EventBus) -> None:
        """Keep the events that federate in their changes' transactions, and drain on each."""
        self._events = events
        for kind in self._expansions:
            events.keep(kind)
            events.subscribe(kind, self._on_event)

    async def _on_event(self, event: object) -> None:
        # The event's own entry is in the table (it was kept with the change);
        # draining now queues it before the service call returns. Events the
        # incoming side publishes for remote people's actions have no entry: no
        # change kept one since the last drain here, so there is nothing to queue
        # (the inbox's every Create would otherwise cost a query of the outbox; what
        # another process recorded and could not queue is the sweep's, as before).
        kept = self._events.kept_count if self._events is not None else None
        if kept is not None and kept == self._drained_kept:
            return
        self._drained_kept = kept
        await self.drain()

    # --- the transactional outbox ----------------------------------------------------

    async def drain(self) -> int:
        """Turn every due outbox entry into delivery rows; returns how many this call queued.

        One transaction per batch claims the entries and queues their rows, so
        an entry becomes rows exactly once, whichever process gets to it first.
        """
        queued = 0
        async with self._drain_lock:
            while True:
                entries = await outbox_store.due(self.db, self.clock.now(), DRAIN_BATCH)
                if not entries:
                    return queued
                plans: list[tuple[int, list[Planned]]] = []
                for entry in entries:
                    planned = await self._plan(entry)
                    if planned is not None:
                        plans.append((entry.id, planned))
                queued += await self._queue(plans)
                if len(entries) < DRAIN_BATCH:
                    return queued

    async def _plan(self, entry: outbox_store.OutboxEntry) -> list[Planned] | None:
        """The deliveries an entry stands for; None if working them out failed (retried later)."""
        try:
            event = event_from(entry.event, json.loads(entry.fields))
            if event is None:
                raise ValueError(f"not an event: {entry.event} {entry.fields[:200]}")
            expand = self._expansions.get(type(event))
            outgoing = await expand(event) if expand is not None else []
            return [
                await self.delivery.plan(
                    o.activity, o.sender, o.recipients, post_id=o.post_id, inboxes=o.inboxes
                )
                for o in outgoing
            ]
        except Exception as exc:
            attempts = entry.attempts + 1
            failed = attempts >= MAX_EXPANSION_ATTEMPTS
            log.log(logging.ERROR if failed else logging.WARNING,
                    "outbox entry %d (%s) could not be expanded (attempt %d): %r",
                    entry.id, entry.event, attempts, exc, exc_info=True)  # fmt: skip
            now = self.clock.now()
            await outbox_store.postpone(
                self.db, entry.id, error=repr(exc), failed=failed,
                next_attempt_at=retry.schedule(attempts, now, self.delivery.rng),
            )  # fmt: skip
            return None

    async def _queue(self, plans: list[tuple[int, list[Planned]]]) -> int:
        """Claim the entries and queue their rows in one transaction; then wake the senders.

        Returns:
            How many entries were ours (the others were claimed by someone else).
        """
        won: list[Planned] = []
        claimed = 0
        async with self.db.transaction() as conn:
            for entry_id, planned in plans:
                if await outbox_store.claim(conn, entry_id):
                    claimed += 1
                    won.extend(planned)
            added = await self.delivery.insert_planned(conn, won)
        faults.point("after-outbox")
        await self.delivery.queued(added, won)
        return claimed

    async def _send(self, outgoing: Iterable[Outgoing]) -> None:
        """Queue activities at once, outside the outbox table (for direct calls)."""
        for o in outgoing:
            await self.delivery.enqueue(
                o.activity, o.sender, o.recipients, post_id=o.post_id, inboxes=o.inboxes
            )

    # --- what each event sends ------------------------------------------------------------

    async def _profile_updated(self, event: ProfileUpdated) -> list[Outgoing]:
        """Update{Person} after a local profile edit."""
        account = await self._local(event.account_id)
        return await self._update_actor(account) if account is not None else []

    async def _pin_changed(self, event: PinChanged) -> list[Outgoing]:
        """Add or Remove to the featured collection, to remote followers (as Mastodon does)."""
        account = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if account is None or post is None or post.uri is None:
            return []
        activity = self.serializer.featured_change(
            account, post.uri, removed=event.unpinned, stamp=self.clock.now()
        )
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        return [Outgoing(activity, account, inboxes=followers)]

    async def _account_deleted(self, event: AccountDeleted) -> list[Outgoing]:
        """Delete{actor} after a local account was deleted."""
        account = await self._local(event.account_id)
        return await self._delete_actor(account) if account is not None else []

    async def _local(self, account_id: int) -> Account | None:
        """The account if it is local (the only ones whose actions we federate)."""
        # Remote people's events pass here too: answer those from one column
        # rather than building the whole account.
        if not await account_store.is_local(self.db, account_id):
            return None
        account = await account_store.get_account(self.db, account_id)
        return account if account is not None and account.is_local else None

    async def _account(self, account_id: int) -> Account | None:
        return await account_store.get_account(self.db, account_id)

    # --- posts ---------------------------------------------------------------------

    async def _view(self, post: Post) -> PostView | None:
        views = await self.posts.hydrate(post.account_id, [post])
        return views[0] if views else None

    async def _audience(
        self, author: Account, visibility: str, mentioned: list[Account],
        in_reply_to_id: int | None,
    ) -> tuple[list[Account], list[str]]:
        """Who a post (or its edit or deletion) goes to: remote accounts, and the
        inboxes of the author's remote followers (none for a direct post)."""
        audience: list[Account | None] = list(mentioned)
        if visibility == "direct":
            return _remote(audience), []
        if in_reply_to_id is not None:
            parent = await post_store.get_post(self.db, in_reply_to_id)
            if parent is not None:
                audience.append(await self._account(parent.account_id))
        followers = await delivery_store.remote_follower_inboxes(self.db, author.id)
        return _remote(audience), followers

    async def _post_published(self, event: PostPublished) -> list[Outgoing]:
        """Create{Note} for a new post, Announce for a boost."""
        author = await self._local(event.account_id)
        if author is None:
            return []  # remote posts arrive here too (live updates need them); nothing to send
        post = await post_store.get_post(self.db, event.post_id)
        if post is None:
            return []
        if post.is_boost:
            return await self._announce(author, post)
        view = await self._view(post)
        if view is None:
            return []  # deleted since (its Delete follows)
        audience, followers = await self._audience(
            author, post.visibility, list(view.mentions), post.in_reply_to_id
        )
        return [Outgoing(self.serializer.create(view), author, audience, post.id, followers)]

    async def _announce(self, booster: Account, boost: Post) -> list[Outgoing]:
        assert boost.reblog_of_id is not None
        original = await post_store.get_post(self.db, boost.reblog_of_id)
        if original is None or original.uri is None:
            return []
        original_author = await self._account(original.account_id)
        if original_author is None:
            return []
        activity = self.serializer.announce(booster, boost, original.uri, original_author)
        followers = await delivery_store.remote_follower_inboxes(self.db, booster.id)
        return [Outgoing(activity, booster, _remote([original_author]), boost.id, followers)]

    async def _post_edited(self, event: PostEdited) -> list[Outgoing]:
        """Update{Note} to the post's audience."""
        author = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if author is None or post is None or post.is_deleted:
            return []
        view = await self._view(post)
        if view is None:
            return []
        audience, followers = await self._audience(
            author, post.visibility, list(view.mentions), post.in_reply_to_id
        )
        return [Outgoing(self.serializer.update_note(view), author, audience, post.id, followers)]

    async def _post_deleted(self, event: PostDeleted) -> list[Outgoing]:
        """Delete{Tombstone} to the original audience; Undo{Announce} for a withdrawn boost."""
        author = await self._local(event.account_id)
        if author is None or event.uri is None:
            return []
        post = await post_store.get_post(self.db, event.post_id)
        if post is None:
            # Boost rows are removed outright; posts keep a tombstone row.
            if event.uri.endswith("/activity"):
                return await self._undo_announce(author, event.uri)
            log.warning("post %d vanished without a tombstone; no Delete sent", event.post_id)
            return []
        mentioned = list((await post_store.get_accounts(self.db, event.mentioned_ids)).values())
        view = PostView(post=post, author=author, mentions=tuple(mentioned))
        to, cc = self.serializer.addressing(view)
        activity = self.serializer.delete_post(author, event.uri, to, cc)
        audience, followers = await self._audience(
            author, event.visibility, mentioned, post.in_reply_to_id
        )
        # Everyone who got the post, even if they have unfollowed since, must drop it.
        reached = await delivery_store.inboxes_of(self.db, f"{event.uri}/activity")
        return [Outgoing(activity, author, audience, post.id, [*followers, *reached])]

    async def _undo_announce(self, booster: Account, announce_id: str) -> list[Outgoing]:
        inner = await delivery_store.payload_of(self.db, announce_id) or {
            "id": announce_id, "type": "Announce", "actor": self.serializer.actor_id(booster),
        }
        reached = await delivery_store.inboxes_of(self.db, announce_id)
        followers = await delivery_store.remote_follower_inboxes(self.db, booster.id)
        activity = self.serializer.undo(booster, inner)
        return [Outgoing(activity, booster, inboxes=[*followers, *reached])]

    # --- interactions --------------------------------------------------------------

    async def _undo_of(
        self, actor: Account, target: Account, kind: str, object_id: str,
        fallback: dict[str, Any],
    ) -> dict[str, Any]:
        """Undo of the ``kind`` we sent about ``object_id`` (the local row is gone by now).

        The queued payload has the exact activity; when it has been purged, an
        embedded activity with the right actor and object still works: Mastodon
        and Fedify match an Undo by those when the id is unknown.
        """
        inner = None
        if target.delivery_inbox:
            inner = await delivery_store.last_sent(
                self.db, actor.id, target.delivery_inbox, kind, object_id
            )
        return self.serializer.undo(actor, inner or fallback)

    async def _liked(self, event: Liked) -> list[Outgoing]:
        """Like or Undo{Like} to the author of a remote post."""
        liker = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if liker is None or post is None or post.uri is None:
            return []
        author = await self._account(post.account_id)
        if author is None or author.is_local:
            return []
        if not event.undone:
            like_id = await delivery_store.edge_id(self.db, "likes", liker.id, post.id)
            if like_id is None:
                return []  # unliked since (its Undo follows)
            activity = self.serializer.like(liker, like_id, post.uri, author)
        else:
            fallback = self.serializer.like(liker, new_id(), post.uri, author)
            activity = await self._undo_of(liker, author, "Like", post.uri, fallback)
        return [Outgoing(activity, liker, [author])]

    async def _reaction_changed(self, event: ReactionChanged) -> list[Outgoing]:
        """EmojiReact or Undo{EmojiReact}: to the post's author, and in a conversation to
        every remote participant (so each sees the reaction)."""
        reactor = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if reactor is None or post is None or post.uri is None or event.uri is None:
            return []
        audience = [await self._account(post.account_id)]
        if post.conversation_id is not None:
            members = await conversation_store.member_ids(self.db, post.conversation_id)
            audience += (await post_store.get_accounts(self.db, members)).values()
        recipients = [a for a in _remote(audience) if a.id != reactor.id]
        if not recipients:
            return []
        activity = self.serializer.emoji_react(
            reactor, event.uri, post.uri, event.emoji, recipients
        )
        if event.undone:
            activity = self.serializer.undo(reactor, activity)
        return [Outgoing(activity, reactor, recipients)]

    async def _follow_changed(self, event: FollowChanged) -> list[Outgoing]:
        """Follow / Undo{Follow} for our follows; Accept / Reject for follows of us."""
        follower = await self._account(event.follower_id)
        target = await self._account(event.target_id)
        if follower is None or target is None or follower.is_local == target.is_local:
            return []
        if follower.is_local:
            return await self._our_follow(follower, target, event.state)
        return await self._their_follow(follower, target, event.state)

    async def _our_follow(self, follower: Account, target: Account, state: str) -> list[Outgoing]:
        # 'accepted' also arrives when the remote Accept comes in; the Follow
        # has the same id as before, so enqueue finds it queued and adds nothing.
        if state in ("pending", "accepted"):
            row = await rel_store.follow_between(self.db, follower.id, target.id)
            if row is None:
                return []  # withdrawn since (its Undo follows)
            activity = self.serializer.follow(follower, row.id, target)
        elif state == "removed":
            fallback = self.serializer.follow(follower, new_id(), target)
            activity = await self._undo_of(
                follower, target, "Follow", self.serializer.actor_id(target), fallback
            )
        else:
            return []  # 'rejected': the remote side said no; nothing to tell it
        return [Outgoing(activity, follower, [target])]

    async def _their_follow(
        self, follower: Account, target: Account, state: str
    ) -> list[Outgoing]:
        if state == "accepted":
            row = await rel_store.follow_between(self.db, follower.id, target.id)
            if row is None:
                return []
            activity = self.serializer.accept_or_reject(
                "Accept", target, row.id, row.uri, follower
            )
        elif state == "rejected":
            # The follow row (and the remote Follow's id with it) is already
            # gone. Mastodon and Fedify match a Reject by the embedded Follow's
            # actor and object, so an id we would have to invent is left out.
            activity = self.serializer.accept_or_reject(
                "Reject", target, new_id(), None, follower
            )
            activity["object"].pop("id", None)
        else:
            return []  # a new request waits for approval; 'removed' comes with a Block
        return [Outgoing(activity, target, [follower])]

    async def _block_changed(self, event: BlockChanged) -> list[Outgoing]:
        """Block or Undo{Block} to the blocked account's server."""
        actor = await self._local(event.account_id)
        target = await self._account(event.target_id)
        if actor is None or target is None or target.is_local:
            return []
        if event.blocked:
            block_id = await delivery_store.edge_id(self.db, "blocks", actor.id, target.id)
            if block_id is None:
                return []  # lifted since (its Undo follows)
            activity = self.serializer.block(actor, block_id, target)
        else:
            fallback = self.serializer.block(actor, new_id(), target)
            activity = await self._undo_of(
                actor, target, "Block", self.serializer.actor_id(target), fallback
            )
        return [Outgoing(activity, actor, [target])]

    # --- the account itself ----------------------------------------------------------

    async def _public_keys(self, account: Account) -> PublicKeys:
        keys = await self.keys.for_account(account)
        return PublicKeys(
            keys.rsa.public_key.to_pem(),
            keys.ed25519.public_key.to_multibase() if keys.ed25519 else None,
        )

    async def _update_actor(self, account: Account) -> list[Outgoing]:
        activity = self.serializer.update_actor(account, await self._public_keys(account))
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        return [Outgoing(activity, account, inboxes=followers)]

    async def _delete_actor(self, account: Account) -> list[Outgoing]:
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        reached = await delivery_store.inboxes_of_sender(self.db, account.id)
        activity = self.serializer.delete_actor(account)
        return [Outgoing(activity, account, inboxes=[*followers, *reached])]

    async def profile_updated(self, account: Account) -> None:
        """Queue Update{Person} to remote followers now (services emit ProfileUpdated)."""
        if account.is_local:
            await self._send(await self._update_actor(account))

    async def account_deleted(self, account: Account) -> None:
        """Queue Delete of the actor to every server that may know it, now."""
        if account.is_local:
            await self._send(await self._delete_actor(account))


OUTBOX = web.AppKey("ap_outbox", Outbox)
"""The node's outbox in the application (set by the wiring)."""


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: drain the outbox at start, then every ``SWEEP_INTERVAL_S``.

    At start, what a crash left (changes committed, deliveries not queued) goes
    out; later sweeps catch what another process recorded and could not queue.
    """
    outbox = app[OUTBOX]

    async def sweep() -> None:
        while True:
            try:
                drained = await outbox.drain()
                if drained:
                    log.info("outbox sweep queued %d entries", drained)
            except Exception:
                log.exception("outbox sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL_S)

    task = asyncio.create_task(sweep(), name="outbox-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
