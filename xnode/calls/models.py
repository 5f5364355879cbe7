"""What a call is, for the service and the pages (frozen, built from rows)."""

from __future__ import annotations

from dataclasses import dataclass

from xnode.store.database import Row

CALL_POLICIES = ("everyone", "following", "conversations", "nobody")
"""Who may ring a person: anyone, people they follow, people they have an accepted
conversation with, or nobody."""
MEDIA_CHOICES = {("audio",): "audio", ("audio", "video"): "audio video"}


@dataclass(frozen=True)
class Call:
    """One call: placed here or elsewhere, ringing, running or over."""

    id: int
    uri: str
    initiator_id: int
    conversation_id: int | None
    media: tuple[str, ...]
    state: str
    end_reason: str | None
    created_at: float
    answered_at: float | None
    ended_at: float | None

    @property
    def video(self) -> bool:
        """Whether the caller asked for video."""
        return "video" in self.media

    @property
    def is_over(self) -> bool:
        """Whether the call has ended (no more signals)."""
        return self.state == "ended"

    @classmethod
    def from_row(cls, row: Row) -> Call:
        """Build from a ``calls`` row."""
        return cls(
            id=row["id"], uri=row["uri"], initiator_id=row["initiator_id"],
            conversation_id=row["conversation_id"], media=tuple(row["media"].split()),
            state=row["state"], end_reason=row["end_reason"], created_at=row["created_at"],
            answered_at=row["answered_at"], ended_at=row["ended_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class Participant:
    """One person invited into a call, and how far they got."""

    call_id: int
    account_id: int
    state: str
    joined_at: float | None
    left_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Participant:
        """Build from a ``call_participants`` row."""
        return cls(
            call_id=row["call_id"], account_id=row["account_id"], state=row["state"],
            joined_at=row["joined_at"], left_at=row["left_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class CallRecord:
    """One call as a conversation's history shows it to one of its participants."""

    call: Call
    outgoing: bool
    summary: str  # "Outgoing video call", "Missed call", "Declined call", ...
    duration_s: float | None

    @property
    def at(self) -> float:
        """When the call was placed (where it sits among the messages)."""
        return self.call.created_at
