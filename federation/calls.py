"""The calls vocabulary: audio/video call signalling between ActivityPub actors.

Version 1 of the protocol in ``docs/calls-over-activitypub.md``. Signals are
ordinary activities (``Invite``, ``Accept``, ``Reject``, ``Add``, ``Update``,
``Join``, ``Leave``) with a few extension terms in the ``xcall`` namespace. The
terms go inline in each signal's ``@context`` (:data:`CALLS_CONTEXT`), so no
receiver fetches anything; the same definitions are bundled as a context document
(``contexts/xnode-calls-v1.json``) for senders that name it by URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

CALLS_NAMESPACE: Final = "https://w3id.org/xnode/calls#"
CALLS_CONTEXT_URL: Final = "https://w3id.org/xnode/calls/v1"
"""The context document's URL (bundled by ``federation.jsonld``; xnode serves a copy)."""
CALLS_PROTOCOL: Final = CALLS_CONTEXT_URL
"""What NodeInfo's ``metadata.calls.protocol`` names: this vocabulary, version 1."""
MAX_PARTICIPANTS: Final = 4
MEDIA_KINDS: Final = frozenset({"audio", "video"})
REASONS: Final = frozenset(
    {"declined", "busy", "unavailable", "timeout", "cancelled", "ended", "failed"}
)
MAX_SDP_CHARS: Final = 16 * 1024
MAX_CANDIDATES_PER_SIGNAL: Final = 20

CALLS_TERMS: Final[Mapping[str, Any]] = {
    "xcall": CALLS_NAMESPACE,
    "Call": "xcall:Call",
    "IceCandidate": "xcall:IceCandidate",
    "media": {"@id": "xcall:media", "@container": "@set"},
    "participants": {"@id": "xcall:participants", "@type": "@id", "@container": "@set"},
    "sdp": "xcall:sdp",
    "sdpType": "xcall:sdpType",
    "candidate": "xcall:candidate",
    "sdpMid": "xcall:sdpMid",
    "sdpMLineIndex": "xcall:sdpMLineIndex",
    "usernameFragment": "xcall:usernameFragment",
    "reason": "xcall:reason",
    "supportsCalls": "xcall:supportsCalls",
}
"""The extension terms, as they go inline in a ``@context``."""

CALLS_CONTEXT: Final[list[Any]] = ["https://www.w3.org/ns/activitystreams", dict(CALLS_TERMS)]
"""The ``@context`` of a signal."""


def context_document() -> dict[str, Any]:
    """The context document served at ``/ns/calls/v1`` (the bundled file's content)."""
    return {"@context": dict(CALLS_TERMS)}


def nodeinfo_metadata() -> dict[str, Any]:
    """What a server that speaks this protocol adds to its NodeInfo ``metadata``."""
    return {"calls": {"protocol": CALLS_PROTOCOL, "maxParticipants": MAX_PARTICIPANTS}}


def actor_supports_calls(actor: Mapping[str, Any]) -> bool:
    """Whether an actor document says its server speaks this protocol.

    Only a literal ``true`` counts (a string "true" from a sloppy server does not):
    signals sent to a server that does not know them could show up as posts.
    """
    return actor.get("supportsCalls") is True
