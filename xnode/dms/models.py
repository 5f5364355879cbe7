"""Conversations and messages as pages and live updates see them."""

from __future__ import annotations

from dataclasses import dataclass, field

from xnode.accounts.models import Account
from xnode.posts.models import PostView


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the conversation list."""

    id: int
    state: str
    participants: tuple[Account, ...]  # everyone but the viewer
    last_message: PostView | None
    unread: int
    last_activity_at: float

    @property
    def title(self) -> str:
        """The other participants' names, or the viewer's own notes."""
        if not self.participants:
            return "Just you"
        return ", ".join(a.name_for_display for a in self.participants)


@dataclass(frozen=True)
class Reaction:
    """One emoji on a message, with who used it."""

    emoji: str
    count: int
    mine: bool
    names: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    """A message in a conversation, with its reactions and the message it answers."""

    view: PostView
    reactions: tuple[Reaction, ...] = ()
    reply_to: PostView | None = None  # the message it answers, when worth quoting
    answers_unseen: bool = False  # it answers a message the reader cannot see

    @property
    def id(self) -> int:
        """The message's (post's) id."""
        return self.view.post.id

    @property
    def is_deleted(self) -> bool:
        """Whether only a tombstone is left."""
        return self.view.post.is_deleted


@dataclass(frozen=True)
class ConversationPage:
    """A conversation as one member sees it: participants, state and a page of messages."""

    id: int
    state: str
    participants: tuple[Account, ...]  # everyone but the viewer
    messages: list[Message] = field(default_factory=list)  # oldest first
    older_than: int | None = None  # cursor for the previous page, when there is one
    last_read_id: int = 0

    @property
    def title(self) -> str:
        """The other participants' names."""
        if not self.participants:
            return "Just you"
        return ", ".join(a.name_for_display for a in self.participants)
