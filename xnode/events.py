"""Domain events: what happened, published after the change is committed.

Services publish; other parts of the node subscribe without the services
knowing them: federation delivery (Create, Follow, Like… to other servers) and
live updates to open browser tabs hang off these events.

A service makes its change with :meth:`EventBus.change`: the events it emits
there are published once the transaction has committed, and those of a kind
someone must not miss (:meth:`EventBus.keep`: the federation outbox keeps the
kinds it sends) are also written to the ``outbox`` table inside the same
transaction. A crash right after the commit then loses nothing: the row is
still there after the restart (issue 14).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from xnode import faults
from xnode.clock import Clock, SystemClock
from xnode.ids import new_id
from xnode.store import outbox as outbox_store
from xnode.store.database import Connection, Database

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

EVENT_TYPES: dict[str, type] = {
    kind.__name__: kind
    for kind in (
        PostPublished, PostEdited, PostDeleted, Liked, PinChanged, FollowChanged, BlockChanged,
        ProfileUpdated, AccountDeleted, ReactionChanged, ConversationChanged, NotificationCreated,
    )
}  # fmt: skip
"""Every event, by name (how events travel between processes and sit in the outbox)."""


def event_fields(event: object) -> dict[str, Any]:
    """An event's fields, for JSON."""
    fields: dict[str, Any] = dataclasses.asdict(event)  # type: ignore[call-overload]
    return fields


def event_from(name: str, fields: Any) -> object | None:
    """The event of that name with those fields; None when they do not make one."""
    kind = EVENT_TYPES.get(name)
    if kind is None or not isinstance(fields, dict):
        return None
    # JSON has no tuples; the events' sequence fields are tuples.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    try:
        event: object = kind(**values)
    except TypeError:
        return None
    return event


@dataclass
class Change:
    """One write transaction and the events it causes (see :meth:`EventBus.change`)."""

    conn: Connection
    events: list[object] = field(default_factory=list)

    def emit(self, event: object) -> None:
        """Publish ``event`` once this change has committed (never if it rolls back)."""
        self.events.append(event)


class EventBus:
    """Calls every subscriber of an event's type; one failing does not stop the others."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._subscribers: dict[type, list[Handler]] = defaultdict(list)
        self._kept: set[type] = set()
        self.clock: Clock = clock or SystemClock()
        self.kept_count = 0
        """Changes through this bus that committed with events kept in the outbox table:
        the outbox relay drains the table only when this moved (a remote person's
        action, published without an entry, would only cost a query for nothing)."""

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Call ``handler(event)`` for every published event of ``event_type``."""
        self._subscribers[event_type].append(handler)

    def keep(self, event_type: type) -> None:
        """Record events of ``event_type`` in the outbox table, in their change's transaction.

        For subscribers that must act on every such event even if the process
        dies right after the commit (the federation outbox): they work from
        the table (:mod:`xnode.store.outbox`), not only from :meth:`publish`.
        """
        self._kept.add(event_type)

    @asynccontextmanager
    async def change(self, db: Database, *, federate: bool = True) -> AsyncIterator[Change]:
        """A write transaction whose emitted events are kept with it and published after it.

        ``async with events.change(db) as change:`` gives ``change.conn`` for
        the writes and ``change.emit(event)`` for what happened. Kept kinds
        (:meth:`keep`) go into the outbox table inside the transaction; every
        event is published, in order, once the transaction has committed.
        ``federate=False`` (a remote actor's action, which arrived from its server)
        keeps nothing: there is nothing to send, and the inbox's hot path skips the rows.
        """
        kept = False
        async with db.transaction() as conn:
            change = Change(conn)
            yield change
            now = self.clock.now()
            for event in change.events:
                if federate and type(event) in self._kept:
                    await outbox_store.insert(
                        conn, new_id(), type(event).__name__,
                        json.dumps(event_fields(event), ensure_ascii=False), now,
                    )  # fmt: skip
                    kept = True
        if kept:
            self.kept_count += 1
        if faults.enabled():
            for event in change.events:
                faults.point(f"after-commit:{type(event).__name__}")
        for event in change.events:
            await self.publish(event)

    async def publish(self, event: object) -> None:
        """Deliver an event to its subscribers."""
        for handler in self._subscribers.get(type(event), ()):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler %r failed on %r", handler, event)
