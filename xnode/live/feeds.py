"""What open tabs are told: new messages, deletions, reactions, typing and unread counts.

Each logged-in tab holds one WebSocket (``xnode/live/hub.py`` keeps them per
account); the feeds push JSON frames when domain events say something changed. It never decides
visibility itself: message HTML comes from a renderer that hydrates the post
for that viewer (and returns None when they may not see it).

Frames (server → browser):
- ``{"type": "message", "conversation": c, "id": m, "html": ..., "mine": bool}``
- ``{"type": "deleted", "conversation": c, "id": m}``
- ``{"type": "reactions", "conversation": c, "id": m, "html": ...}``
- ``{"type": "typing", "conversation": c, "name": ...}``
- ``{"type": "unread", "messages": n, "requests": r, "notifications": k}``
- ``{"type": "timeline", "id": p, "home": bool, "local": bool}``: a new post (or boost)
  for that timeline; the page offers to show it ("1 new post")

Frames (browser → server): ``{"type": "typing", "conversation": c}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.dms.service import DirectMessages
from xnode.events import (
    ConversationChanged,
    EventBus,
    Handler,
    NotificationCreated,
    PostDeleted,
    PostEdited,
    PostPublished,
    ReactionChanged,
)
from xnode.live.hub import LiveHub, frame_id
from xnode.posts.models import Post
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store

log = logging.getLogger(__name__)

TYPING_INTERVAL_S = 2.0
LIVE_EVENTS: tuple[type, ...] = (
    PostPublished, PostEdited, PostDeleted, ReactionChanged, ConversationChanged,
    NotificationCreated,
)
"""What open tabs and the client API's streams show; the inbox process relays these
(xnode.activitypub.inbox_process). Edits are for the streams' ``status.update``."""

Renderer = Callable[[int, int], Awaitable[str | None]]


async def _no_html(viewer_id: int, message_id: int) -> str | None:
    return None


class LiveFeeds:
    """What open tabs show, fed from the event bus and pushed through the hub."""

    def __init__(self, hub: LiveHub, dms: DirectMessages, clock: Clock) -> None:
        self.hub = hub
        self.dms = dms
        self.db = dms.db
        self.clock = clock
        self._last_typing: dict[tuple[int, int], float] = {}
        # The web layer sets these: HTML of one message / its reactions for one viewer.
        self.render_message: Renderer = _no_html
        self.render_reactions: Renderer = _no_html
        hub.on_connect(self.send_unread)
        hub.on_frame("typing", self._typing_frame)

    def subscribe(self, events: EventBus) -> None:
        """Listen to the events that change what an open tab shows (``LIVE_EVENTS``)."""
        handlers: dict[type, Handler] = {
            PostPublished: self.on_post_published,
            PostDeleted: self.on_post_deleted,
            ReactionChanged: self.on_reaction_changed,
            ConversationChanged: self.on_conversation_changed,
            NotificationCreated: self.on_notification_created,
        }
        for kind in LIVE_EVENTS:
            if kind in handlers:  # edits are relayed for the API's streams only
                events.subscribe(kind, handlers[kind])

    async def send_unread(self, account_id: int) -> None:
        """Push the account's unread counts (messages, requests, notifications)."""
        if not self.hub.is_connected(account_id):
            return
        messages, requests = await self.dms.unread_summary(account_id)
        notifications = await notification_store.unread_count(self.db, account_id)
        await self.hub.send(
            account_id,
            {"type": "unread", "messages": messages, "requests": requests,
             "notifications": notifications},
        )  # fmt: skip

    # --- events --------------------------------------------------------------------------

    async def _watchers(self, conversation_id: int) -> list[tuple[int, str]]:
        """Local members of a conversation with an open tab."""
        return [
            (account_id, state)
            for account_id, state in await self.dms.local_members(conversation_id)
            if self.hub.is_connected(account_id)
        ]

    async def on_post_published(self, event: PostPublished) -> None:
        """A new message: its HTML to every member who may see it, then their counts."""
        if not self.hub.has_tabs:
            return  # nobody has a tab open: nothing to push (the common case for a busy inbox)
        post = await post_store.get_post(self.db, event.post_id)
        if post is None:
            return
        if post.conversation_id is None:
            await self._new_in_timelines(post)
            return
        for account_id, state in await self._watchers(post.conversation_id):
            if state == "declined" and account_id != post.account_id:
                continue
            html = await self.render_message(account_id, post.id)
            if html is None:
                continue
            await self.hub.send(
                account_id,
                {"type": "message", "conversation": post.conversation_id, "id": post.id,
                 "html": html, "mine": account_id == post.account_id, "state": state},
            )  # fmt: skip
            await self.send_unread(account_id)

    async def _new_in_timelines(self, post: Post) -> None:
        """Tell open tabs whose home (or local) timeline shows this post that it exists.

        Only a nudge with the id: the page fetches the posts itself, as its viewer,
        so visibility is decided where it always is.
        """
        if post.visibility not in ("public", "unlisted", "followers") or post.deleted_at:
            return
        connected = self.hub.connected_accounts
        home = set(await relationship_store.followers_among(self.db, post.account_id, connected))
        if self.hub.is_connected(post.account_id):
            home.add(post.account_id)  # one's own posts are on one's home timeline
        local = post.local and post.visibility == "public" and post.reblog_of_id is None
        for account_id in connected:
            if account_id in home or local:
                await self.hub.send(
                    account_id,
                    {"type": "timeline", "id": post.id, "home": account_id in home,
                     "local": local},
                )  # fmt: skip

    async def on_post_deleted(self, event: PostDeleted) -> None:
        """A deleted message disappears from every open conversation view."""
        post = await post_store.get_post(self.db, event.post_id)
        if post is None or post.conversation_id is None:
            return
        for account_id, _ in await self._watchers(post.conversation_id):
            await self.hub.send(
                account_id,
                {"type": "deleted", "conversation": post.conversation_id, "id": post.id},
            )
            await self.send_unread(account_id)

    async def on_reaction_changed(self, event: ReactionChanged) -> None:
        """The reaction bar of a message, re-rendered for each member."""
        post = await post_store.get_post(self.db, event.post_id)
        if post is None or post.conversation_id is None:
            return
        for account_id, _ in await self._watchers(post.conversation_id):
            html = await self.render_reactions(account_id, post.id)
            if html is not None:
                await self.hub.send(
                    account_id,
                    {"type": "reactions", "conversation": post.conversation_id,
                     "id": post.id, "html": html},
                )  # fmt: skip

    async def on_conversation_changed(self, event: ConversationChanged) -> None:
        """Read, accepted or declined in one tab: the others' counts follow."""
        await self.send_unread(event.account_id)

    async def on_notification_created(self, event: NotificationCreated) -> None:
        """A new notification: the badge follows."""
        await self.send_unread(event.account_id)

    async def _typing_frame(self, account: Account, frame: Mapping[str, Any], tab: object) -> None:
        """``{"type": "typing", "conversation": id}`` from a tab."""
        await self.typing(account, frame_id(frame, "conversation"))

    async def typing(self, account: Account, conversation_id: int) -> None:
        """Tell the other local members with an open tab that ``account`` is typing.

        Throttled per account and conversation; members only (others are ignored).
        """
        key = (account.id, conversation_id)
        now = self.clock.now()
        if now - self._last_typing.get(key, float("-inf")) < TYPING_INTERVAL_S:
            return
        members = await self.dms.local_members(conversation_id)
        if account.id not in {member for member, _ in members}:
            return
        self._last_typing[key] = now
        for account_id, state in members:
            if account_id == account.id or state == "declined":
                continue
            if self.hub.is_connected(account_id):
                await self.hub.send(
                    account_id,
                    {"type": "typing", "conversation": conversation_id,
                     "name": account.name_for_display},
                )  # fmt: skip
