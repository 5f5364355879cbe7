"""Domain events: what happened, published after the change is committed.

Services publish; other parts of the node subscribe without the services
knowing them: federation delivery (Create, Follow, Like… to other servers) and
live updates to open browser tabs hang off these events.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostPublished:
    """A post (or boost) was created."""

    post_id: int
    account_id: int


@dataclass(frozen=True)
class PostEdited:
    """A post's content changed."""

    post_id: int
    account_id: int


@dataclass(frozen=True)
class PostDeleted:
    """A post became a tombstone, or a boost was withdrawn."""

    post_id: int
    account_id: int
    uri: str | None
    visibility: str
    mentioned_ids: tuple[int, ...]


@dataclass(frozen=True)
class Liked:
    """An account liked (or, with ``undone``, unliked) a post."""

    account_id: int
    post_id: int
    undone: bool = False


@dataclass(frozen=True)
class PinChanged:
    """An account pinned (or, with ``unpinned``, unpinned) one of its posts."""

    account_id: int
    post_id: int
    unpinned: bool = False


@dataclass(frozen=True)
class FollowChanged:
    """A follow was requested, accepted, rejected or withdrawn."""

    follower_id: int
    target_id: int
    state: str  # 'pending', 'accepted', 'rejected', 'removed'


@dataclass(frozen=True)
class BlockChanged:
    """An account blocked or unblocked another."""

    account_id: int
    target_id: int
    blocked: bool


@dataclass(frozen=True)
class ProfileUpdated:
    """A local account's public profile changed."""

    account_id: int


@dataclass(frozen=True)
class AccountDeleted:
    """A local account was deleted (its tombstone row remains)."""

    account_id: int


@dataclass(frozen=True)
class ReactionChanged:
    """An account added (or, with ``undone``, removed) an emoji reaction to a post."""

    account_id: int
    post_id: int
    emoji: str
    undone: bool = False
    uri: str | None = None  # the EmojiReact's id, for a local reaction's Undo


@dataclass(frozen=True)
class ConversationChanged:
    """A local member read, accepted or declined a conversation (their tabs catch up)."""

    account_id: int
    conversation_id: int


@dataclass(frozen=True)
class NotificationCreated:
    """A local user has a new notification."""

    account_id: int


Handler = Callable[[Any], Awaitable[None]]


class EventBus:
    """Calls every subscriber of an event's type; one failing does not stop the others."""

    def __init__(self) -> None:
        self._subscribers: dict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Call ``handler(event)`` for every published event of ``event_type``."""
        self._subscribers[event_type].append(handler)

    async def publish(self, event: object) -> None:
        """Deliver an event to its subscribers."""
        for handler in self._subscribers.get(type(event), ()):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler %r failed on %r", handler, event)
