"""From domain events to queued activities: what local people do, told to the servers that care.

Subscribed to the event bus, the outbox turns each committed change into an
activity (via :class:`Serializer`) and an audience, and hands both to the
delivery queue. It never talks HTTP itself.

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

import logging
from typing import Any

from xnode.accounts.models import Account
from xnode.activitypub.delivery import DeliveryQueue
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
)
from xnode.ids import new_id
from xnode.posts.models import Post, PostView
from xnode.posts.service import PostService
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import conversations as conversation_store
from xnode.store import deliveries as delivery_store
from xnode.store import posts as post_store
from xnode.store.database import Database

log = logging.getLogger(__name__)


def _remote(accounts: list[Account | None]) -> list[Account]:
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

    def subscribe(self, events: EventBus) -> None:
        """Listen to the events that federate."""
        events.subscribe(PostPublished, self.on_post_published)
        events.subscribe(PostEdited, self.on_post_edited)
        events.subscribe(PostDeleted, self.on_post_deleted)
        events.subscribe(Liked, self.on_liked)
        events.subscribe(ReactionChanged, self.on_reaction_changed)
        events.subscribe(FollowChanged, self.on_follow_changed)
        events.subscribe(BlockChanged, self.on_block_changed)
        events.subscribe(ProfileUpdated, self.on_profile_updated)
        events.subscribe(PinChanged, self.on_pin_changed)
        events.subscribe(AccountDeleted, self.on_account_deleted)

    async def on_profile_updated(self, event: ProfileUpdated) -> None:
        """Update{Person} after a local profile edit."""
        account = await self._local(event.account_id)
        if account is not None:
            await self.profile_updated(account)

    async def on_pin_changed(self, event: PinChanged) -> None:
        """Add or Remove to the featured collection, to remote followers (as Mastodon does)."""
        account = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if account is None or post is None or post.uri is None:
            return
        activity = self.serializer.featured_change(
            account, post.uri, removed=event.unpinned, stamp=self.posts.clock.now()
        )
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        await self.delivery.enqueue(activity, account, (), inboxes=followers)

    async def on_account_deleted(self, event: AccountDeleted) -> None:
        """Delete{actor} after a local account was deleted."""
        account = await self._local(event.account_id)
        if account is not None:
            await self.account_deleted(account)

    async def _local(self, account_id: int) -> Account | None:
        """The account if it is local (the only ones whose actions we federate)."""
        # Every remote post stored from the inbox passes here: answer those from
        # one column rather than building the whole account.
        if not self.db.lookup_value(
            "SELECT domain IS NULL FROM accounts WHERE id = ?", (account_id,)
        ):
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
        audience = list(mentioned)
        if visibility == "direct":
            return _remote(audience), []
        if in_reply_to_id is not None:
            parent = await post_store.get_post(self.db, in_reply_to_id)
            if parent is not None:
                audience.append(await self._account(parent.account_id))
        followers = await delivery_store.remote_follower_inboxes(self.db, author.id)
        return _remote(audience), followers

    async def on_post_published(self, event: PostPublished) -> None:
        """Create{Note} for a new post, Announce for a boost."""
        author = await self._local(event.account_id)
        if author is None:
            return  # remote posts arrive here too (live updates need them); nothing to send
        post = await post_store.get_post(self.db, event.post_id)
        if post is None:
            return
        if post.is_boost:
            await self._announce(author, post)
            return
        view = await self._view(post)
        if view is None:
            return
        audience, followers = await self._audience(
            author, post.visibility, list(view.mentions), post.in_reply_to_id
        )
        await self.delivery.enqueue(
            self.serializer.create(view), author, audience, post_id=post.id, inboxes=followers
        )

    async def _announce(self, booster: Account, boost: Post) -> None:
        assert boost.reblog_of_id is not None
        original = await post_store.get_post(self.db, boost.reblog_of_id)
        if original is None or original.uri is None:
            return
        original_author = await self._account(original.account_id)
        if original_author is None:
            return
        activity = self.serializer.announce(booster, boost, original.uri, original_author)
        followers = await delivery_store.remote_follower_inboxes(self.db, booster.id)
        await self.delivery.enqueue(
            activity, booster, _remote([original_author]), post_id=boost.id, inboxes=followers
        )

    async def on_post_edited(self, event: PostEdited) -> None:
        """Update{Note} to the post's audience."""
        author = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if author is None or post is None or post.is_deleted:
            return
        view = await self._view(post)
        if view is None:
            return
        audience, followers = await self._audience(
            author, post.visibility, list(view.mentions), post.in_reply_to_id
        )
        await self.delivery.enqueue(
            self.serializer.update_note(view), author, audience, post_id=post.id,
            inboxes=followers,
        )

    async def on_post_deleted(self, event: PostDeleted) -> None:
        """Delete{Tombstone} to the original audience; Undo{Announce} for a withdrawn boost."""
        author = await self._local(event.account_id)
        if author is None or event.uri is None:
            return
        post = await post_store.get_post(self.db, event.post_id)
        if post is None:
            # Boost rows are removed outright; posts keep a tombstone row.
            if event.uri.endswith("/activity"):
                await self._undo_announce(author, event.uri)
            else:
                log.warning("post %d vanished without a tombstone; no Delete sent", event.post_id)
            return
        mentioned = list((await post_store.get_accounts(self.db, event.mentioned_ids)).values())
        view = PostView(post=post, author=author, mentions=tuple(mentioned))
        to, cc = self.serializer.addressing(view)
        activity = self.serializer.delete_post(author, event.uri, to, cc)
        audience, followers = await self._audience(
            author, event.visibility, mentioned, post.in_reply_to_id
        )
        # Everyone who got the post, even if they have unfollowed since, must drop it.
        reached = await delivery_store.inboxes_of(self.db, f"{event.uri}/activity")
        await self.delivery.enqueue(
            activity, author, audience, post_id=post.id, inboxes=[*followers, *reached]
        )

    async def _undo_announce(self, booster: Account, announce_id: str) -> None:
        inner = await delivery_store.payload_of(self.db, announce_id) or {
            "id": announce_id, "type": "Announce", "actor": self.serializer.actor_id(booster),
        }
        reached = await delivery_store.inboxes_of(self.db, announce_id)
        followers = await delivery_store.remote_follower_inboxes(self.db, booster.id)
        await self.delivery.enqueue(
            self.serializer.undo(booster, inner), booster, (), inboxes=[*followers, *reached]
        )

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

    async def on_liked(self, event: Liked) -> None:
        """Like or Undo{Like} to the author of a remote post."""
        liker = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if liker is None or post is None or post.uri is None:
            return
        author = await self._account(post.account_id)
        if author is None or author.is_local:
            return
        if not event.undone:
            like_id = await delivery_store.edge_id(self.db, "likes", liker.id, post.id)
            if like_id is None:
                return
            activity = self.serializer.like(liker, like_id, post.uri, author)
        else:
            fallback = self.serializer.like(liker, new_id(), post.uri, author)
            activity = await self._undo_of(liker, author, "Like", post.uri, fallback)
        await self.delivery.enqueue(activity, liker, [author])

    async def on_reaction_changed(self, event: ReactionChanged) -> None:
        """EmojiReact or Undo{EmojiReact}: to the post's author, and in a conversation to
        every remote participant (so each sees the reaction)."""
        reactor = await self._local(event.account_id)
        post = await post_store.get_post(self.db, event.post_id)
        if reactor is None or post is None or post.uri is None or event.uri is None:
            return
        audience = [await self._account(post.account_id)]
        if post.conversation_id is not None:
            members = await conversation_store.member_ids(self.db, post.conversation_id)
            audience += (await post_store.get_accounts(self.db, members)).values()
        recipients = [a for a in _remote(audience) if a.id != reactor.id]
        if not recipients:
            return
        activity = self.serializer.emoji_react(
            reactor, event.uri, post.uri, event.emoji, recipients
        )
        if event.undone:
            activity = self.serializer.undo(reactor, activity)
        await self.delivery.enqueue(activity, reactor, recipients)

    async def on_follow_changed(self, event: FollowChanged) -> None:
        """Follow / Undo{Follow} for our follows; Accept / Reject for follows of us."""
        follower = await self._account(event.follower_id)
        target = await self._account(event.target_id)
        if follower is None or target is None or follower.is_local == target.is_local:
            return
        if follower.is_local:
            await self._our_follow(follower, target, event.state)
        else:
            await self._their_follow(follower, target, event.state)

    async def _our_follow(self, follower: Account, target: Account, state: str) -> None:
        # 'accepted' also arrives when the remote Accept comes in; the Follow
        # has the same id as before, so enqueue finds it queued and adds nothing.
        if state in ("pending", "accepted"):
            row = await delivery_store.follow_row(self.db, follower.id, target.id)
            if row is None:
                return
            activity = self.serializer.follow(follower, row["id"], target)
        elif state == "removed":
            fallback = self.serializer.follow(follower, new_id(), target)
            activity = await self._undo_of(
                follower, target, "Follow", self.serializer.actor_id(target), fallback
            )
        else:
            return  # 'rejected': the remote side said no; nothing to tell it
        await self.delivery.enqueue(activity, follower, [target])

    async def _their_follow(self, follower: Account, target: Account, state: str) -> None:
        if state == "accepted":
            row = await delivery_store.follow_row(self.db, follower.id, target.id)
            if row is None:
                return
            activity = self.serializer.accept_or_reject(
                "Accept", target, row["id"], row["uri"], follower
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
            return  # a new request waits for approval; 'removed' comes with a Block
        await self.delivery.enqueue(activity, target, [follower])

    async def on_block_changed(self, event: BlockChanged) -> None:
        """Block or Undo{Block} to the blocked account's server."""
        actor = await self._local(event.account_id)
        target = await self._account(event.target_id)
        if actor is None or target is None or target.is_local:
            return
        if event.blocked:
            block_id = await delivery_store.edge_id(self.db, "blocks", actor.id, target.id)
            if block_id is None:
                return
            activity = self.serializer.block(actor, block_id, target)
        else:
            fallback = self.serializer.block(actor, new_id(), target)
            activity = await self._undo_of(
                actor, target, "Block", self.serializer.actor_id(target), fallback
            )
        await self.delivery.enqueue(activity, actor, [target])

    # --- the account itself ----------------------------------------------------------

    async def _public_keys(self, account: Account) -> PublicKeys:
        keys = await self.keys.for_account(account)
        return PublicKeys(
            keys.rsa.public_key.to_pem(),
            keys.ed25519.public_key.to_multibase() if keys.ed25519 else None,
        )

    async def profile_updated(self, account: Account) -> None:
        """Update{Person} to remote followers after a profile edit."""
        if not account.is_local:
            return
        activity = self.serializer.update_actor(account, await self._public_keys(account))
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        await self.delivery.enqueue(activity, account, (), inboxes=followers)

    async def account_deleted(self, account: Account) -> None:
        """Delete of the actor to every server that may know it."""
        if not account.is_local:
            return
        followers = await delivery_store.remote_follower_inboxes(self.db, account.id)
        reached = await delivery_store.inboxes_of_sender(self.db, account.id)
        await self.delivery.enqueue(
            self.serializer.delete_actor(account), account, (), inboxes=[*followers, *reached]
        )
