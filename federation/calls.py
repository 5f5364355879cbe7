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
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

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


# --- signals ---------------------------------------------------------------------------

SIGNAL_TYPES: Final = frozenset({"Invite", "Accept", "Reject", "Add", "Update", "Leave"})


@dataclass(frozen=True)
class CallSignal:
    """One signal of the protocol, as read from (or written to) an activity.

    ``kind`` is the activity type. ``call`` is the Call's id (for ``Accept`` and
    ``Reject``: what their ``object`` names, the Invite's id or the call's).
    """

    kind: str
    actor: str
    call: str
    activity_id: str | None = None
    participants: tuple[str, ...] = ()
    media: tuple[str, ...] = ()
    context: str | None = None
    sdp_type: str | None = None
    sdp: str | None = None
    candidates: tuple[dict[str, Any], ...] = ()
    reason: str | None = None


class InvalidSignal(ValueError):
    """An activity that looks like a call signal but breaks the protocol's rules."""


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


def _same_host(a: str, b: str) -> bool:
    return urlsplit(a).netloc.lower() == urlsplit(b).netloc.lower()


def _candidate(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("candidate"), str):
        raise InvalidSignal("an IceCandidate has a candidate string")
    mid, index, ufrag = item.get("sdpMid"), item.get("sdpMLineIndex"), item.get("usernameFragment")
    if (
        len(item["candidate"]) > 512
        or not (mid is None or (isinstance(mid, str) and len(mid) <= 32))
        or not (index is None or (isinstance(index, int) and not isinstance(index, bool)
                                  and 0 <= index < 64))
        or not (ufrag is None or (isinstance(ufrag, str) and len(ufrag) <= 256))
    ):  # fmt: skip
        raise InvalidSignal("an IceCandidate's fields are out of bounds")
    return {"candidate": item["candidate"], "sdpMid": mid, "sdpMLineIndex": index,
            "usernameFragment": ufrag}  # fmt: skip


def _sdp(doc: Mapping[str, Any], wanted: str) -> tuple[str, str]:
    kind, sdp = doc.get("sdpType"), doc.get("sdp")
    if kind != wanted or not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise InvalidSignal(f"an {wanted} is an sdpType and an sdp")
    if len(sdp) > MAX_SDP_CHARS:
        raise InvalidSignal(f"an sdp is at most {MAX_SDP_CHARS} characters")
    return kind, sdp


def looks_like_signal(doc: Mapping[str, Any]) -> bool:
    """Whether an activity is meant as a call signal (and must not go to the inbox queue).

    An ``Invite`` of a ``Call``; an ``Accept``, ``Update`` or ``Reject``/``Leave``
    carrying an ``sdp`` or a ``reason``; an ``Add`` of ``IceCandidate`` objects. (A
    receiver also treats as signals the activities whose object is a call it knows:
    a group call's ``Accept`` carries no ``sdp``.)
    """
    kind = doc.get("type")
    if kind not in SIGNAL_TYPES:
        return False
    obj = doc.get("object")
    if kind == "Invite":
        return isinstance(obj, dict) and obj.get("type") == "Call"
    if "sdp" in doc or "sdpType" in doc or (kind in ("Reject", "Leave") and "reason" in doc):
        return True
    if kind == "Add":
        return isinstance(obj, list) and any(
            isinstance(i, dict) and i.get("type") == "IceCandidate" for i in obj
        )
    return False


def parse_signal(doc: Mapping[str, Any]) -> CallSignal:
    """Read a signal (the HTTP signature has already tied it to its ``actor``).

    Raises:
        InvalidSignal: the activity breaks the protocol's rules.
    """
    kind, actor = doc.get("type"), _id(doc.get("actor"))
    if kind not in SIGNAL_TYPES or actor is None:
        raise InvalidSignal("not a call signal")
    activity_id = _id(doc.get("id"))
    obj = doc.get("object")
    if kind == "Invite":
        if not isinstance(obj, dict) or obj.get("type") != "Call":
            raise InvalidSignal("an Invite invites to a Call")
        call = _id(obj)
        if call is None or not _same_host(call, actor) or _id(obj.get("attributedTo")) != actor:
            raise InvalidSignal("a Call is on its caller's server and attributed to them")
        raw = obj.get("participants")
        participants = tuple(p for p in (_id(x) for x in raw) if p) if isinstance(raw, list) else ()
        if actor not in participants or not 2 <= len(set(participants)) <= MAX_PARTICIPANTS:
            raise InvalidSignal(f"a Call has its caller and 1 to {MAX_PARTICIPANTS - 1} others")
        media = obj.get("media")
        media_kinds = tuple(sorted(set(media))) if isinstance(media, list) else ()
        if media_kinds not in (("audio",), ("audio", "video")):
            raise InvalidSignal('media is ["audio"] or ["audio", "video"]')
        sdp_type = sdp = None
        if "sdp" in doc:
            sdp_type, sdp = _sdp(doc, "offer")
        context = obj.get("context")
        return CallSignal(
            kind=kind, actor=actor, call=call, activity_id=activity_id,
            participants=tuple(dict.fromkeys(participants)), media=media_kinds,
            context=context if isinstance(context, str) and len(context) <= 2048 else None,
            sdp_type=sdp_type, sdp=sdp,
        )  # fmt: skip
    if kind == "Add":
        target = _id(doc.get("target"))
        if target is None or not isinstance(obj, list):
            raise InvalidSignal("an Add of candidates names the call as its target")
        if not 0 < len(obj) <= MAX_CANDIDATES_PER_SIGNAL:
            raise InvalidSignal(f"1 to {MAX_CANDIDATES_PER_SIGNAL} candidates per Add")
        return CallSignal(kind=kind, actor=actor, call=target, activity_id=activity_id,
                          candidates=tuple(_candidate(c) for c in obj))  # fmt: skip
    call = _id(obj)
    if call is None:
        raise InvalidSignal(f"a {kind} names the call (or the invite) as its object")
    reason = doc.get("reason")
    if reason is not None and reason not in REASONS:
        reason = "failed"  # an unknown reason still ends the call
    sdp_type = sdp = None
    if kind == "Accept" and "sdp" in doc:
        sdp_type, sdp = _sdp(doc, "answer")
    elif kind == "Update":
        kind_wanted = doc.get("sdpType")
        if kind_wanted not in ("offer", "answer"):
            raise InvalidSignal("an Update carries an offer or an answer")
        sdp_type, sdp = _sdp(doc, kind_wanted)
    return CallSignal(kind=kind, actor=actor, call=call, activity_id=activity_id,
                      sdp_type=sdp_type, sdp=sdp, reason=reason)  # fmt: skip


def signal_activity(signal: CallSignal, activity_id: str, to: str) -> dict[str, Any]:
    """The activity for a signal from ``signal.actor`` to the actor ``to``."""
    doc: dict[str, Any] = {
        "@context": CALLS_CONTEXT, "id": activity_id, "type": signal.kind,
        "actor": signal.actor, "to": [to],
    }  # fmt: skip
    if signal.kind == "Invite":
        doc["object"] = {
            "id": signal.call, "type": "Call", "attributedTo": signal.actor,
            "participants": list(signal.participants), "media": list(signal.media),
            **({"context": signal.context} if signal.context else {}),
        }  # fmt: skip
        doc["target"] = to
    elif signal.kind == "Add":
        doc["object"] = [{"type": "IceCandidate", **c} for c in signal.candidates]
        doc["target"] = signal.call
    else:
        doc["object"] = signal.call
    if signal.sdp is not None:
        doc["sdpType"], doc["sdp"] = signal.sdp_type, signal.sdp
    if signal.reason is not None:
        doc["reason"] = signal.reason
    return doc
