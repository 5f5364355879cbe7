"""Placing, ringing, answering and ending calls, and passing their signalling between tabs.

A call's media flow between browsers; the node rings, decides who may ring whom,
and passes the WebRTC signalling (the SDP offer and answer, ICE candidates) from
one participant's tab to the other's. Tabs talk to the node over the live socket
(``xnode/live/hub.py``); this service registers the ``call.*`` frame types there:

Frames from a tab:
- ``{"type": "call.place", "ref": r, "to": "@bob", "media": ["audio", "video"]}``, then
  ``{"type": "call.offer", "call": id, "offer": sdp}`` made with the ICE servers the
  node answered with (``call.placed``)
- ``{"type": "call.accept", "call": id, "answer": sdp}``
- ``{"type": "call.decline", "call": id}``
- ``{"type": "call.hangup", "call": id}`` (before an answer: the caller cancels)
- ``{"type": "call.signal", "call": id, "candidates": [...]}``, or with ``sdpType`` and
  ``sdp`` to renegotiate (camera on, screen sharing)

Frames to tabs (ids as strings: they pass 2**53):
- ``call.placed`` (caller: the call's id, the tab's ``ref``, ICE servers),
  ``call.ringing`` (caller: the callee's tabs ring), ``call.incoming`` (callee: ring,
  with the caller, the offer and ICE servers), ``call.accepted`` (caller: the answer),
  ``call.taken`` (the callee's other tabs: stop ringing), ``call.signal``, ``call.ended`` (with a
  ``reason``: declined, busy, unavailable, timeout, cancelled, ended, failed) and
  ``call.error`` (a frame about a call the sender is not in, or one that is over: the
  late candidate after a hang-up is normal, so this answers rather than closing).

A malformed frame raises :class:`~xnode.live.hub.BadFrame` (the socket closes). Who
may ring: the callee's ``call_policy``, blocks either way, the callee's mutes, and a
rate limit per caller; a refused call ends as ``unavailable``, the one reason for all
of these so a caller cannot tell a block from a setting. Calls to people on other
servers travel as the activities of ``docs/calls-over-activitypub.md``; until that
path is built, they end as ``unavailable`` too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from federation.calls import MAX_CANDIDATES_PER_SIGNAL, MAX_SDP_CHARS, CallSignal
from xnode.accounts.models import Account
from xnode.calls.models import CALL_POLICIES, MEDIA_CHOICES, Call, CallRecord, Participant
from xnode.clock import Clock
from xnode.errors import InvalidInput, NotFound, RateLimited
from xnode.events import EventBus, NotificationCreated
from xnode.ids import new_id
from xnode.live.hub import BadFrame, LiveHub, frame_id
from xnode.posts import content
from xnode.ratelimit import Limit, rate_limiter_for
from xnode.store import accounts as account_store
from xnode.store import calls as call_store
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

RING_TIMEOUT_S = 45.0
MAX_GROUP_PARTICIPANTS = 4
"""Group calls are a full mesh: every browser sends to every other, so a few at most."""
MISSED_REASONS = frozenset({"timeout", "cancelled"})
"""Ends that leave the person rung with a missed call (they rang, nobody answered)."""
CALLS_PER_CALLER = Limit(count=10, window_s=60.0)
CALLS_PER_PAIR = Limit(count=3, window_s=60.0)
MAX_BUFFERED_CANDIDATES = 50
"""Candidates a caller trickles while the callee's tabs still ring, kept for the answer."""


REMOTE_RING_GRACE_S = 5.0
"""A caller waits this much longer than the ring time for the other server's answer."""


async def _always() -> bool:
    """The default ``still_wanted``: a signal worth every retry."""
    return True


class SignalTransport(Protocol):
    """How calls reach people on other servers (``xnode/activitypub/call_signals.py``)."""

    async def resolve(self, handle: str) -> Account | None:
        """The account of a remote handle (looked up by WebFinger when new), or None."""
        ...

    def send(
        self, sender: Account, recipient: Account, call: Call, kind: str, *,
        participants: Sequence[Account] = (), media: Sequence[str] = (),
        object_id: str | None = None, sdp_type: str | None = None, sdp: str | None = None,
        candidates: Sequence[dict[str, Any]] = (), reason: str | None = None,
        still_wanted: Callable[[], Awaitable[bool]] = _always,
    ) -> None:
        """Send one signal at once, retrying briefly while ``still_wanted()``; returns at once."""
        ...


def _sdp(frame: Mapping[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value.startswith("v=0") or len(value) > MAX_SDP_CHARS:
        raise BadFrame(f"{key} is a session description (at most {MAX_SDP_CHARS} characters)")
    return value


def _candidates(frame: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ICE candidates as ``RTCIceCandidateInit`` dictionaries, checked and copied."""
    value = frame.get("candidates")
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CANDIDATES_PER_SIGNAL:
        raise BadFrame(f"candidates: a list of 1 to {MAX_CANDIDATES_PER_SIGNAL}")
    checked = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("candidate"), str):
            raise BadFrame("a candidate is an object with a candidate string")
        mid, index = item.get("sdpMid"), item.get("sdpMLineIndex")
        ufrag = item.get("usernameFragment")
        if (
            len(item["candidate"]) > 512
            or not (mid is None or (isinstance(mid, str) and len(mid) <= 32))
            or not (index is None or (isinstance(index, int) and 0 <= index < 64))
            or not (ufrag is None or (isinstance(ufrag, str) and len(ufrag) <= 256))
        ):
            raise BadFrame("a candidate's fields are out of bounds")
        checked.append(
            {"candidate": item["candidate"], "sdpMid": mid, "sdpMLineIndex": index,
             "usernameFragment": ufrag}
        )  # fmt: skip
    return checked


def _media(frame: Mapping[str, Any]) -> tuple[str, ...]:
    value = frame.get("media", ["audio"])
    media = tuple(sorted(set(value))) if isinstance(value, list) else ()
    if media not in MEDIA_CHOICES:
        raise BadFrame('media is ["audio"] or ["audio", "video"]')
    return media


def _summary(account: Account) -> dict[str, Any]:
    """Who is calling, as a tab shows it."""
    return {
        "id": str(account.id), "acct": account.acct, "name": account.name_for_display,
        "avatar": account.avatar_url,
    }  # fmt: skip


class CallService:
    """Calls between people on this node, and their signalling between tabs."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        hub: LiveHub,
        *,
        base_url: str,
        domain: str,
        events: EventBus | None = None,
        ring_timeout_s: float = RING_TIMEOUT_S,
    ) -> None:
        self.db = db
        self.clock = clock
        self.hub = hub
        self.base_url = base_url.rstrip("/")
        self.domain = domain.lower()
        self.events = events
        self.ring_timeout_s = ring_timeout_s
        self.limiter = rate_limiter_for(db, clock)
        # Per caller, and per caller and callee (a benchmark raises them).
        self.caller_limit = CALLS_PER_CALLER
        self.pair_limit = CALLS_PER_PAIR
        self._ring_timers: dict[int, asyncio.Task[None]] = {}
        self._waiting_candidates: dict[int, list[dict[str, Any]]] = {}
        self._awaiting_offer: dict[int, int] = {}  # call -> callee, until the offer comes
        # Calls to or from other servers: the Invite's id (what Accept/Reject answer), and
        # which calls have signalled another server (only those hear of the end).
        self.transport: SignalTransport | None = None
        self._invite_ids: dict[int, str] = {}
        self._signalled: set[int] = set()
        # The tab that holds each local participant's end of a call: when it closes, the
        # call is over for them (their browser's connection died with the page).
        self._call_tabs: dict[int, dict[int, object]] = {}
        self._groups: set[int] = set()  # calls placed from a group conversation (mesh)
        hub.on_disconnect(self._tab_closed)
        # The ICE servers (STUN/TURN with short-lived credentials) a participant's tab
        # uses; set by the node (xnode/calls/ice.py). None: the browser's own host
        # candidates only, never a third-party STUN server.
        self.ice_servers: Callable[[int], list[dict[str, Any]]] = lambda _account_id: []
        for kind, handler in {
            "call.place": self._place_frame,
            "call.offer": self._offer_frame,
            "call.accept": self._accept_frame,
            "call.decline": self._decline_frame,
            "call.hangup": self._hangup_frame,
            "call.signal": self._signal_frame,
        }.items():
            hub.on_frame(kind, handler)

    async def start(self) -> None:
        """End the calls a previous run left open: their tabs and timers are gone."""
        async with self.db.transaction() as conn:
            ended = await call_store.end_stale_calls(conn, self.clock.now())
        if ended:
            log.info("ended %d calls left open by the last run", ended)

    async def close(self) -> None:
        """Stop the ring timers (at shutdown)."""
        for task in self._ring_timers.values():
            task.cancel()
        await asyncio.gather(*self._ring_timers.values(), return_exceptions=True)
        self._ring_timers.clear()

    # --- settings ------------------------------------------------------------------------

    async def policy(self, account_id: int) -> tuple[str, bool]:
        """(who may ring the account, whether their calls go through the relay only)."""
        return await call_store.call_policy(self.db, account_id)

    async def set_policy(self, account_id: int, policy: str, always_relay: bool) -> None:
        """Change who may ring the account, and whether its calls are relayed only.

        Raises:
            InvalidInput: not one of :data:`CALL_POLICIES`.
        """
        if policy not in CALL_POLICIES:
            raise InvalidInput("Choose who may call you from the list.", field="call_policy")
        async with self.db.transaction() as conn:
            await call_store.set_call_policy(conn, account_id, policy, always_relay)

    async def may_ring(self, caller: Account, callee: Account) -> bool:
        """Whether ``caller`` may ring ``callee`` (their policy, blocks, mutes)."""
        policy, _ = await call_store.call_policy(self.db, callee.id)
        facts = await relationship_store.relationship_facts(self.db, callee.id, caller.id)
        if {("blocking", ""), ("blocked_by", ""), ("muting", "")} & facts:
            return False
        if policy == "everyone":
            return True
        if policy == "following":
            return ("out", "accepted") in facts
        if policy == "conversations":
            return await call_store.shares_accepted_conversation(self.db, callee.id, caller.id)
        return False

    # --- reading -------------------------------------------------------------------------

    async def call(self, call_id: int) -> Call | None:
        """A call by id."""
        return await call_store.get_call(self.db, call_id)

    async def participants(self, call_id: int) -> list[Participant]:
        """Everyone invited into a call."""
        return await call_store.participants_of(self.db, call_id)

    async def history(
        self, viewer_id: int, other_id: int, *, since: float | None, until: float | None
    ) -> list[CallRecord]:
        """The calls between two people, as ``viewer_id`` sees them, oldest first."""
        records = []
        for call in await call_store.calls_between(
            self.db, viewer_id, other_id, since=since, until=until
        ):
            outgoing = call.initiator_id == viewer_id
            kind = "video call" if call.video else "call"
            reason = call.end_reason
            if call.answered_at is not None:
                summary = f"{'Outgoing' if outgoing else 'Incoming'} {kind}"
            elif reason in MISSED_REASONS and not outgoing:
                summary = f"Missed {kind}"
            elif reason == "declined":
                summary = f"Declined {kind}"
            elif not call.is_over:
                summary = f"{'Outgoing' if outgoing else 'Incoming'} {kind}, ringing"
            else:
                summary = f"{'Outgoing' if outgoing else 'Incoming'} {kind}, not answered"
            duration = (
                call.ended_at - call.answered_at
                if call.answered_at is not None and call.ended_at is not None else None
            )  # fmt: skip
            records.append(CallRecord(call, outgoing, summary, duration))
        return records

    async def _connection(self, account_id: int) -> dict[str, Any]:
        """What a participant's tab makes its connection with: the node's ICE servers, and
        whether it relays only (their setting)."""
        _, relay_only = await call_store.call_policy(self.db, account_id)
        return {"relayOnly": relay_only, "iceServers": self.ice_servers(account_id)}

    async def _new_call(
        self, initiator_id: int, participants: Iterable[tuple[int, str]], media: str, *,
        uri: str | None = None, conversation_id: int | None = None,
    ) -> Call:  # fmt: skip
        """Insert a call and its participants (with their first states) in one transaction;
        the call. ``uri``: another server's id for it (by default, ours)."""
        now = self.clock.now()
        call_id = new_id()
        async with self.db.transaction() as conn:
            await call_store.insert_call(
                conn, call_id=call_id, uri=uri or f"{self.base_url}/calls/{call_id}",
                initiator_id=initiator_id, conversation_id=conversation_id, media=media,
                now=now,
            )  # fmt: skip
            await call_store.insert_participants(conn, call_id, participants, now)
        call = await call_store.get_call(self.db, call_id)
        assert call is not None
        return call

    async def _participant(self, call_id: int, account_id: int) -> tuple[Call, Participant] | None:
        call = await call_store.get_call(self.db, call_id)
        if call is None:
            return None
        for participant in await call_store.participants_of(self.db, call_id):
            if participant.account_id == account_id:
                return call, participant
        return None

    # --- placing -------------------------------------------------------------------------

    async def place(
        self, caller: Account, to: str, media: tuple[str, ...], ref: str | None = None
    ) -> Call:
        """Start a call to ``to`` (a handle); the call, which may end at once.

        The caller's tabs hear of the call first (``call.placed``, with the tab's
        ``ref`` and the ICE servers to make the offer with); the callee's tabs ring
        once the offer comes (:meth:`offer`). A call that may not ring (policy, block,
        mute, no open tab, the callee on another server for now) ends as
        ``unavailable``; one to someone already in a call, ``busy``.

        Raises:
            InvalidInput: ``to`` is not a handle, is the caller, or the caller is in a
                call already.
            NotFound: nobody here has that name.
            RateLimited: the caller placed too many calls in the last minute.
        """
        handles = content.extract_entities(to.strip() if to.startswith("@") else f"@{to.strip()}")
        if len(handles.handles) != 1:
            raise InvalidInput("Call someone by their handle, like @bob or @bob@other.example.")
        handle = handles.handles[0]
        local = handle.domain is None or handle.domain.lower() == self.domain
        if local:
            callee = await account_store.get_local_account(self.db, handle.username)
        else:
            callee = await self.transport.resolve(handle.key) if self.transport else None
        if callee is None or callee.is_deleted or callee.is_suspended:
            raise NotFound(f"@{handle.key} could not be found.")
        if callee is not None and callee.id == caller.id:
            raise InvalidInput("You can't call yourself.")
        await self.limiter.check(
            f"caller:{caller.id}", self.caller_limit, "Too many calls; wait a minute."
        )
        pair = f"pair:{caller.id}:{callee.id}"
        await self.limiter.check(pair, self.pair_limit, "Too many calls to them; wait a minute.")
        if await call_store.in_open_call(self.db, caller.id):
            raise InvalidInput("You are in a call already.")
        await self.limiter.hit(f"caller:{caller.id}", self.caller_limit)
        await self.limiter.hit(pair, self.pair_limit)

        call = await self._new_call(
            caller.id, [(caller.id, "joined"), (callee.id, "ringing")], MEDIA_CHOICES[media]
        )
        call_id = call.id
        await self.hub.send(caller.id, {"type": "call.placed", "call": str(call_id), "ref": ref,
                                        **await self._connection(caller.id)})  # fmt: skip
        if callee.domain is not None:
            # Another server: it decides who may ring (docs/calls-over-activitypub.md).
            if not callee.supports_calls or self.transport is None or (
                await relationship_store.blocked_either_way(self.db, caller.id, callee.id)
            ):
                await self._end(call, "unavailable", detail=(
                    None if callee.supports_calls else "Their server does not support calls."
                ))  # fmt: skip
            else:
                self._awaiting_offer[call_id] = callee.id
                self._ring_timers[call_id] = asyncio.create_task(
                    self._ring_timeout(call_id, self.ring_timeout_s + REMOTE_RING_GRACE_S),
                    name=f"call-ring-{call_id}",
                )
        elif not await self.may_ring(caller, callee) or not self.hub.is_connected(callee.id):
            # A callee with no tab open cannot answer.
            await self._end(call, "unavailable")
        elif await call_store.in_open_call(self.db, callee.id):
            await self._end(call, "busy")
        else:
            # The ring time counts from here: a tab that never sends its offer ends it too.
            self._awaiting_offer[call_id] = callee.id
            self._ring_timers[call_id] = asyncio.create_task(
                self._ring_timeout(call_id, self.ring_timeout_s), name=f"call-ring-{call_id}"
            )
        return await call_store.get_call(self.db, call_id) or call

    async def offer(self, caller: Account, call_id: int, offer: str) -> bool:
        """The caller's offer: ring the callee's tabs with it. False if not theirs to ring."""
        call = await call_store.get_call(self.db, call_id)
        if call is None or call.initiator_id != caller.id or call.state != "ringing":
            return False
        callee_id = self._awaiting_offer.pop(call_id, None)
        callee = await account_store.get_account(self.db, callee_id) if callee_id else None
        if callee is None:
            return False
        await self.hub.send(caller.id, {"type": "call.ringing", "call": str(call_id),
                                        "peer": _summary(callee)})  # fmt: skip
        if callee.domain is not None and self.transport is not None:
            self._signalled.add(call_id)
            self.transport.send(
                caller, callee, call, "Invite", participants=(caller, callee),
                media=call.media, sdp_type="offer", sdp=offer,
                still_wanted=self._still_on(call_id),
            )  # fmt: skip
            return True
        await self.hub.send(
            callee.id,
            {"type": "call.incoming", "call": str(call_id), "from": _summary(caller),
             "media": list(call.media), "offer": offer, **await self._connection(callee.id)},
        )  # fmt: skip
        return True

    def _still_on(self, call_id: int) -> Callable[[], Awaitable[bool]]:
        """For retries: whether the call is still going (signals of an ended call stop)."""

        async def still_on() -> bool:
            call = await call_store.get_call(self.db, call_id)
            return call is not None and not call.is_over

        return still_on

    async def _ring_timeout(self, call_id: int, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._ring_timers.pop(call_id, None)
        call = await call_store.get_call(self.db, call_id)
        if call is not None and call.state == "ringing":
            await self._end(call, "timeout")

    # --- group calls (a mesh of up to four, among the people of one conversation) --------

    async def place_group(
        self, caller: Account, conversation_id: int, media: tuple[str, ...],
        ref: str | None = None,
    ) -> Call:  # fmt: skip
        """Ring the other people of a group conversation here; the call (it may end at once).

        Everyone rung who answers joins the mesh: the one who joins offers to each who is
        already in (``call.peers``), who answer. People on other servers are not rung yet.

        Raises:
            NotFound: the caller is not in that conversation.
            InvalidInput: more than :data:`MAX_GROUP_PARTICIPANTS` people, or the caller is
                in a call already.
            RateLimited: too many calls in the last minute.
        """
        members = dict(await call_store.conversation_members(self.db, conversation_id))
        if members.get(caller.id) != "accepted":
            raise NotFound("No such conversation.")
        others = [account_id for account_id in members if account_id != caller.id]
        if len(others) + 1 > MAX_GROUP_PARTICIPANTS:
            raise InvalidInput(
                f"Group calls have at most {MAX_GROUP_PARTICIPANTS} people, this one's first."
            )
        await self.limiter.check(
            f"caller:{caller.id}", self.caller_limit, "Too many calls; wait a minute."
        )
        if await call_store.in_open_call(self.db, caller.id):
            raise InvalidInput("You are in a call already.")
        await self.limiter.hit(f"caller:{caller.id}", self.caller_limit)
        accounts = await post_store.get_accounts(self.db, others)
        rung = [
            a for a in accounts.values()
            if (a.domain is None and await self.may_ring(caller, a) and self.hub.is_connected(a.id)
                and not await call_store.in_open_call(self.db, a.id))
            # Other servers decide for their people (if they take calls at all).
            or (a.domain is not None and a.supports_calls and self.transport is not None)
        ]  # fmt: skip
        call = await self._new_call(
            caller.id, [(caller.id, "joined"), *((a.id, "ringing") for a in rung)],
            MEDIA_CHOICES[media], conversation_id=conversation_id,
        )  # fmt: skip
        call_id = call.id
        self._groups.add(call_id)
        connection = await self._connection(caller.id)
        await self.hub.send(caller.id, {"type": "call.placed", "call": str(call_id), "ref": ref,
                                        "group": True, **connection})  # fmt: skip
        if not rung:
            await self._end(call, "unavailable")
            return await call_store.get_call(self.db, call_id) or call
        everyone = [_summary(caller), *(_summary(a) for a in rung)]
        await self.hub.send(caller.id, {"type": "call.ringing", "call": str(call_id),
                                        "group": True, "peers": everyone[1:]})  # fmt: skip
        for account in rung:
            if account.domain is not None:
                assert self.transport is not None
                self._signalled.add(call_id)
                self.transport.send(
                    caller, account, call, "Invite", participants=(caller, *rung),
                    media=media, still_wanted=self._still_on(call_id),
                )  # fmt: skip
                continue
            await self.hub.send(
                account.id,
                {"type": "call.incoming", "call": str(call_id), "from": _summary(caller),
                 "media": list(media), "group": True, "participants": everyone,
                 **await self._connection(account.id)},
            )  # fmt: skip
        self._ring_timers[call_id] = asyncio.create_task(
            self._group_ring_timeout(call_id), name=f"call-ring-{call_id}"
        )
        return await call_store.get_call(self.db, call_id) or call

    async def _group_ring_timeout(self, call_id: int) -> None:
        await asyncio.sleep(self.ring_timeout_s)
        self._ring_timers.pop(call_id, None)
        call = await call_store.get_call(self.db, call_id)
        if call is None or call.is_over:
            return
        missed = [p.account_id for p in await call_store.participants_of(self.db, call_id)
                  if p.state == "ringing"]  # fmt: skip
        async with self.db.transaction() as conn:
            for account_id in missed:
                await call_store.set_participant(
                    conn, call_id, account_id, "declined", self.clock.now()
                )
        for account_id in missed:
            await self.hub.send(account_id, {"type": "call.ended", "call": str(call_id),
                                             "reason": "timeout"})  # fmt: skip
        await self._note_missed(call, missed)
        await self._settle_group(call, "timeout")

    async def _accept_group(self, account: Account, call: Call) -> bool:
        """Someone rung joins the mesh: they offer to everyone already in."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await call_store.mark_answered(conn, call.id, now)  # the first answer only
            await call_store.set_participant(conn, call.id, account.id, "joined", now)
        await self.hub.send(account.id, {"type": "call.taken", "call": str(call.id)})
        await self._tell_remotes(account, call, "Accept", object_id=call.uri)
        others = await post_store.get_accounts(self.db, await self._others(call.id, account.id))
        await self.hub.send(
            account.id,
            {"type": "call.peers", "call": str(call.id),
             "peers": [_summary(a) for a in others.values()]},
        )  # fmt: skip
        for other in others.values():
            await self.hub.send(other.id, {"type": "call.joined", "call": str(call.id),
                                           "peer": _summary(account)})  # fmt: skip
        return True

    async def _leave_group(self, account: Account, call: Call, reason: str) -> None:
        """Someone leaves (or declines) a group call; it ends when one person is left."""
        async with self.db.transaction() as conn:
            await call_store.set_participant(
                conn, call.id, account.id, "declined" if reason == "declined" else "left",
                self.clock.now(),
            )  # fmt: skip
        self._call_tabs.get(call.id, {}).pop(account.id, None)
        await self._tell_remotes(
            account, call, "Reject" if reason == "declined" else "Leave", object_id=call.uri,
            reason=reason,
        )  # fmt: skip
        await self.hub.send(account.id, {"type": "call.ended", "call": str(call.id),
                                         "reason": reason})  # fmt: skip
        for other in await self._others(call.id, account.id):
            await self.hub.send(other, {"type": "call.left", "call": str(call.id),
                                        "peer": str(account.id)})  # fmt: skip
        await self._settle_group(call, "ended")

    async def _settle_group(self, call: Call, reason: str) -> None:
        """End a group call once nobody is left to talk to (one or no one in, nobody rung)."""
        states = [p.state for p in await call_store.participants_of(self.db, call.id)]
        if states.count("ringing") == 0 and states.count("joined") <= 1:
            fresh = await call_store.get_call(self.db, call.id) or call
            await self._end(fresh, reason if fresh.answered_at is None else "ended")

    # --- answering -----------------------------------------------------------------------

    async def accept(self, account: Account, call_id: int, answer: str | None) -> bool:
        """The callee answers in one of their tabs (a group call: joins, without an answer);
        False if the call no longer rings for them."""
        found = await self._participant(call_id, account.id)
        if call_id in self._groups and found is not None and not found[0].is_over:
            if found[1].state != "ringing":
                return False
            return await self._accept_group(account, found[0])
        if found is None or found[1].state != "ringing" or found[0].state != "ringing":
            return False
        if answer is None:
            return False
        call = found[0]
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if not await call_store.mark_answered(conn, call_id, now):
                return False
            await call_store.set_participant(conn, call_id, account.id, "joined", now)
        self._stop_ringing(call_id)
        await self.hub.send(account.id, {"type": "call.taken", "call": str(call_id)})
        caller = await account_store.get_account(self.db, call.initiator_id)
        if caller is not None and caller.domain is not None and self.transport is not None:
            self.transport.send(
                account, caller, call, "Accept", object_id=self._invite_ids.get(call_id),
                sdp_type="answer", sdp=answer, still_wanted=self._still_on(call_id),
            )  # fmt: skip
        for other in await self._others(call_id, account.id):
            await self.hub.send(other, {"type": "call.accepted", "call": str(call_id),
                                        "answer": answer})  # fmt: skip
        waiting = self._waiting_candidates.pop(call_id, [])
        if waiting:
            await self.hub.send(
                account.id,
                {"type": "call.signal", "call": str(call_id),
                 "from": str(call.initiator_id), "candidates": waiting},
            )  # fmt: skip
        return True

    async def decline(self, account: Account, call_id: int) -> bool:
        """The callee declines; False if the call no longer rings for them."""
        found = await self._participant(call_id, account.id)
        if found is None or found[1].state != "ringing" or found[0].is_over:
            return False
        if call_id in self._groups:
            await self._leave_group(account, found[0], "declined")
            return True
        async with self.db.transaction() as conn:
            await call_store.set_participant(
                conn, call_id, account.id, "declined", self.clock.now()
            )
        await self._end(found[0], "declined")
        return True

    async def hangup(self, account: Account, call_id: int) -> bool:
        """A participant hangs up (the caller before an answer: cancelled); False if not in it."""
        found = await self._participant(call_id, account.id)
        if found is None or found[0].is_over or found[1].state != "joined":
            return False
        call = found[0]
        if call_id in self._groups:
            await self._leave_group(account, call, "ended")
            return True
        await self._end(call, "cancelled" if call.state == "ringing" else "ended")
        return True

    async def _end(
        self, call: Call, reason: str, *, origin: int | None = None, detail: str | None = None
    ) -> None:
        """End a call once, and tell every participant why: tabs here, other servers by a
        ``Reject`` (a call that rang here and was never answered) or a ``Leave``. ``origin``:
        the remote participant whose signal ended it (not told again)."""
        was_ringing = (await call_store.get_call(self.db, call.id) or call).state == "ringing"
        before = await call_store.participants_of(self.db, call.id)
        async with self.db.transaction() as conn:
            if not await call_store.mark_ended(conn, call.id, reason, self.clock.now()):
                return
        self._stop_ringing(call.id)
        self._waiting_candidates.pop(call.id, None)
        self._awaiting_offer.pop(call.id, None)
        self._call_tabs.pop(call.id, None)
        self._groups.discard(call.id)
        invite_id = self._invite_ids.pop(call.id, None)
        signalled = call.id in self._signalled
        self._signalled.discard(call.id)
        frame = {"type": "call.ended", "call": str(call.id), "reason": reason,
                 **({"detail": detail} if detail else {})}  # fmt: skip
        accounts = await post_store.get_accounts(self.db, [p.account_id for p in before])
        local = [a for a in accounts.values() if a.domain is None]

        for participant in before:
            account = accounts.get(participant.account_id)
            if account is None:
                continue
            if account.domain is None:
                await self.hub.send(account.id, frame)
            elif (
                signalled and self.transport is not None and local
                and account.id != origin and participant.state in ("ringing", "joined")
            ):  # fmt: skip
                sender = next((a for a in local if a.id != account.id), local[0])
                callee_side = account.id == call.initiator_id and was_ringing
                self.transport.send(
                    sender, account, call, "Reject" if callee_side else "Leave",
                    object_id=invite_id if callee_side else call.uri, reason=reason,
                )  # fmt: skip
        if reason in MISSED_REASONS:
            await self._note_missed(call, [
                p.account_id for p in before
                if p.state == "ringing" and p.account_id in {a.id for a in local}
            ])  # fmt: skip

    async def _note_missed(self, call: Call, callees: list[int]) -> None:
        """A notification for each person here whose tabs rang and who did not answer."""
        notified = []
        async with self.db.transaction() as conn:
            for account_id in callees:
                if await notification_store.insert_notification(
                    conn, new_id(), recipient_id=account_id, kind="missed_call",
                    from_id=call.initiator_id, post_id=None, now=self.clock.now(),
                ):  # fmt: skip
                    notified.append(account_id)
        if self.events is not None:
            for account_id in notified:
                await self.events.publish(NotificationCreated(account_id))

    def _stop_ringing(self, call_id: int) -> None:
        timer = self._ring_timers.pop(call_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _others(self, call_id: int, account_id: int) -> list[int]:
        """The other participants who have joined."""
        return [
            p.account_id for p in await call_store.participants_of(self.db, call_id)
            if p.account_id != account_id and p.state == "joined"
        ]  # fmt: skip

    # --- signalling ------------------------------------------------------------------------

    async def signal(self, account: Account, call_id: int, payload: dict[str, Any]) -> bool:
        """Pass candidates or a renegotiation from a joined participant to the others.

        Candidates the caller trickles while the callee's tabs still ring wait
        (bounded) for the tab that answers. False if the sender is not in the call
        or it is over.
        """
        found = await self._participant(call_id, account.id)
        if found is None or found[0].is_over or found[1].state != "joined":
            return False
        call = found[0]
        if call.state == "ringing":
            if "candidates" not in payload:
                return False  # no renegotiation before an answer
            waiting = self._waiting_candidates.setdefault(call_id, [])
            room = MAX_BUFFERED_CANDIDATES - len(waiting)
            waiting.extend(payload["candidates"][: max(room, 0)])
            return True
        to = payload.pop("to", None)
        frame = {"type": "call.signal", "call": str(call_id), "from": str(account.id), **payload}
        joined = await self._others(call_id, account.id)
        if to is not None:
            # A mesh: each pair has its own connection, so signals go to one peer.
            if to not in joined:
                return False
            joined = [to]
        others = await post_store.get_accounts(self.db, joined)
        for other in others.values():
            if other.domain is None:
                await self.hub.send(other.id, frame)
            elif self.transport is not None and account.domain is None:
                self._send_payload(account, other, call, payload)
        return True

    def _send_payload(
        self, sender: Account, recipient: Account, call: Call, payload: Mapping[str, Any]
    ) -> None:
        """Candidates (as ``Add``) or a renegotiation (as ``Update``) to another server."""
        assert self.transport is not None
        if "candidates" in payload:
            self.transport.send(
                sender, recipient, call, "Add", candidates=payload["candidates"],
                still_wanted=self._still_on(call.id),
            )  # fmt: skip
        else:
            self.transport.send(
                sender, recipient, call, "Update", object_id=call.uri,
                sdp_type=payload["sdpType"], sdp=payload["sdp"],
                still_wanted=self._still_on(call.id),
            )  # fmt: skip

    # --- signals from other servers ----------------------------------------------------------

    async def call_named(self, uri: str) -> Call | None:
        """The call a signal names: by its id, or by our Invite's id (``<call>/invite``)."""
        call = await call_store.get_call_by_uri(self.db, uri)
        if call is None and uri.endswith("/invite"):
            call = await call_store.get_call_by_uri(self.db, uri.removesuffix("/invite"))
        return call

    async def receive(
        self, actor: Account, signal: CallSignal, local: Account | None,
        participants: Sequence[Account] = (),
    ) -> None:  # fmt: skip
        """A signal from a remote participant (its HTTP signature verified for ``actor``).

        ``local``: the person here it is for (an ``Invite``: the one it rings).
        ``participants``: an ``Invite``'s participants, as accounts. Signals about calls
        this node does not know, from someone not in the call, or about a call that is
        over, are dropped.
        """
        if signal.kind == "Invite":
            if local is not None:
                if signal.sdp is None and len(signal.participants) > 2:
                    await self._remote_group_invite(actor, local, signal, participants)
                else:
                    await self._remote_invite(actor, local, signal)
            return
        call = await self.call_named(signal.call)
        if call is None or call.is_over:
            return
        found = await self._participant(call.id, actor.id)
        if found is None:
            log.info("call signal from %s, who is not in call %d", actor.uri, call.id)
            return
        _, participant = found
        if call.id in self._groups:
            await self._receive_group(actor, call, participant, signal, local)
            return
        if signal.kind == "Accept" and signal.sdp is not None:
            await self._remote_accept(actor, call, participant, signal.sdp)
        elif signal.kind == "Reject" and participant.state == "ringing":
            async with self.db.transaction() as conn:
                await call_store.set_participant(
                    conn, call.id, actor.id, "declined", self.clock.now()
                )
            await self._end(call, signal.reason or "declined", origin=actor.id)
        elif signal.kind == "Leave":
            reason = signal.reason or ("cancelled" if call.state == "ringing" else "ended")
            await self._end(call, reason, origin=actor.id)
        elif signal.kind == "Add":
            await self.signal(actor, call.id, {"candidates": list(signal.candidates)})
        elif signal.kind == "Update" and signal.sdp is not None:
            await self.signal(actor, call.id, {"sdpType": signal.sdp_type, "sdp": signal.sdp})

    async def _receive_group(
        self, actor: Account, call: Call, participant: Participant, signal: CallSignal,
        local: Account | None,
    ) -> None:  # fmt: skip
        """A signal in a group call from someone on another server."""
        if signal.kind == "Accept" and participant.state == "ringing":
            await self._accept_group(actor, call)
        elif signal.kind in ("Reject", "Leave") and participant.state in ("ringing", "joined"):
            await self._leave_group(actor, call, "declined" if signal.kind == "Reject" else "ended")
        elif signal.kind in ("Add", "Update") and local is not None:
            if participant.state == "ringing":
                # Someone offers only once they joined: their Accept is still on its way
                # (each signal is its own POST, and they may arrive in any order).
                await self._accept_group(actor, call)
            payload: dict[str, Any] = (
                {"candidates": list(signal.candidates)} if signal.kind == "Add"
                else {"sdpType": signal.sdp_type, "sdp": signal.sdp}
            )  # fmt: skip
            await self.signal(actor, call.id, {**payload, "to": local.id})

    async def _remote_group_invite(
        self, caller: Account, callee: Account, signal: CallSignal,
        participants: Sequence[Account],
    ) -> None:  # fmt: skip
        """A group call from another server rings a person here (each person rung gets
        their own Invite; the first makes the call, the others ring on it)."""
        call = await call_store.get_call_by_uri(self.db, signal.call)
        if call is None:
            everyone = {a.id: a for a in participants}
            everyone.update({caller.id: caller, callee.id: callee})
            if len(everyone) > MAX_GROUP_PARTICIPANTS:
                return
            call = await self._new_call(caller.id, [
                (a.id, "joined" if a.id == caller.id else "ringing") for a in everyone.values()
            ], MEDIA_CHOICES.get(signal.media, "audio"), uri=signal.call)  # fmt: skip
            self._groups.add(call.id)
            self._signalled.add(call.id)
            self._ring_timers[call.id] = asyncio.create_task(
                self._group_ring_timeout(call.id), name=f"call-ring-{call.id}"
            )
        found = await self._participant(call.id, callee.id)
        if call.is_over or found is None or found[1].state != "ringing":
            return
        if (
            not await self.may_ring(caller, callee) or not self.hub.is_connected(callee.id)
            or await call_store.in_open_call(self.db, callee.id)
        ):  # fmt: skip
            await self._leave_group(callee, call, "declined")
            return
        accounts = await post_store.get_accounts(
            self.db, [p.account_id for p in await call_store.participants_of(self.db, call.id)]
        )
        await self.hub.send(
            callee.id,
            {"type": "call.incoming", "call": str(call.id), "from": _summary(caller),
             "media": list(call.media), "group": True,
             "participants": [_summary(a) for a in accounts.values()],
             **await self._connection(callee.id)},
        )  # fmt: skip

    async def _tell_remotes(self, sender: Account, call: Call, kind: str, **fields: Any) -> None:
        """Send a group signal from someone here to everyone on other servers still in it."""
        if self.transport is None or sender.domain is not None:
            return
        still_in = [p.account_id for p in await call_store.participants_of(self.db, call.id)
                    if p.state in ("ringing", "joined") and p.account_id != sender.id]  # fmt: skip
        for account in (await post_store.get_accounts(self.db, still_in)).values():
            if account.domain is not None:
                self.transport.send(sender, account, call, kind, **fields)

    async def _remote_invite(self, caller: Account, callee: Account, signal: CallSignal) -> None:
        """Someone on another server rings a person here."""
        if await call_store.get_call_by_uri(self.db, signal.call) is not None:
            return  # a retry of an Invite already here
        call = await self._new_call(
            caller.id, [(caller.id, "joined"), (callee.id, "ringing")],
            MEDIA_CHOICES.get(signal.media, "audio"), uri=signal.call,
        )  # fmt: skip
        call_id = call.id
        self._signalled.add(call_id)
        self._invite_ids[call_id] = signal.activity_id or f"{signal.call}/invite"
        limited = False
        for key, limit in ((f"caller:{caller.id}", self.caller_limit),
                           (f"pair:{caller.id}:{callee.id}", self.pair_limit)):  # fmt: skip
            try:
                await self.limiter.check(key, limit, "")
            except RateLimited:
                limited = True
            await self.limiter.hit(key, limit)
        if (
            limited or signal.sdp is None  # group calls (no offer in the Invite) come later
            or not await self.may_ring(caller, callee) or not self.hub.is_connected(callee.id)
        ):  # fmt: skip
            await self._end(call, "unavailable")
            return
        if await call_store.in_open_call(self.db, callee.id):
            await self._end(call, "busy")
            return
        await self.hub.send(
            callee.id,
            {"type": "call.incoming", "call": str(call_id), "from": _summary(caller),
             "media": list(call.media), "offer": signal.sdp, **await self._connection(callee.id)},
        )  # fmt: skip
        self._ring_timers[call_id] = asyncio.create_task(
            self._ring_timeout(call_id, self.ring_timeout_s), name=f"call-ring-{call_id}"
        )

    async def _remote_accept(
        self, callee: Account, call: Call, participant: Participant, answer: str
    ) -> None:
        """The person rung on another server answered a call placed here."""
        if participant.state != "ringing" or call.state != "ringing":
            return
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if not await call_store.mark_answered(conn, call.id, now):
                return
            await call_store.set_participant(conn, call.id, callee.id, "joined", now)
        self._stop_ringing(call.id)
        await self.hub.send(call.initiator_id, {"type": "call.accepted", "call": str(call.id),
                                                "answer": answer})  # fmt: skip
        waiting = self._waiting_candidates.pop(call.id, [])
        caller = await account_store.get_account(self.db, call.initiator_id)
        if caller is not None and self.transport is not None:
            for start in range(0, len(waiting), MAX_CANDIDATES_PER_SIGNAL):
                self._send_payload(caller, callee, call, {
                    "candidates": waiting[start:start + MAX_CANDIDATES_PER_SIGNAL]
                })  # fmt: skip

    async def _tab_closed(self, account_id: int, tab: object) -> None:
        """A tab closed: the calls it held end for its person (hung up, for the others)."""
        for call_id, tabs in list(self._call_tabs.items()):
            if tabs.get(account_id) is tab:
                account = await account_store.get_account(self.db, account_id)
                if account is not None:
                    await self.hangup(account, call_id)

    # --- frames from tabs ------------------------------------------------------------------

    async def _refuse(self, account: Account, frame: Mapping[str, Any], error: str) -> None:
        await self.hub.send(
            account.id,
            {"type": "call.error", "call": frame.get("call") if isinstance(frame.get("call"), str)
             else None, "ref": frame.get("ref") if isinstance(frame.get("ref"), str) else None,
             "error": error},
        )  # fmt: skip

    async def _place_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        to = frame.get("to")
        ref = frame.get("ref")
        conversation = frame.get("conversation")
        if not (ref is None or isinstance(ref, str)):
            raise BadFrame("a ref is a string")
        if conversation is not None:
            conversation_id = frame_id(frame, "conversation")
        elif not isinstance(to, str) or len(to) > 320:
            raise BadFrame("call.place names whom to call, or the conversation")
        media = _media(frame)
        try:
            if conversation is not None:
                call = await self.place_group(account, conversation_id, media, ref)
            else:
                assert isinstance(to, str)
                call = await self.place(account, to, media, ref)
        except (InvalidInput, NotFound, RateLimited) as exc:
            await self._refuse(account, frame, exc.message)
            return
        if not call.is_over:
            self._call_tabs.setdefault(call.id, {})[account.id] = tab

    async def _offer_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        if not await self.offer(account, frame_id(frame, "call"), _sdp(frame, "offer")):
            await self._refuse(account, frame, "This call is not yours to ring, or it is over.")

    async def _accept_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        call_id = frame_id(frame, "call")
        answer = _sdp(frame, "answer") if "answer" in frame else None
        if not await self.accept(account, call_id, answer):
            await self._refuse(account, frame, "This call is no longer ringing.")
        elif not (call := await self.call(call_id)) or not call.is_over:
            self._call_tabs.setdefault(call_id, {})[account.id] = tab

    async def _decline_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        if not await self.decline(account, frame_id(frame, "call")):
            await self._refuse(account, frame, "This call is no longer ringing.")

    async def _hangup_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        await self.hangup(account, frame_id(frame, "call"))  # hanging up twice is not an error

    async def _signal_frame(
        self, account: Account, frame: Mapping[str, Any], tab: object
    ) -> None:
        call_id = frame_id(frame, "call")
        if "candidates" in frame:
            payload: dict[str, Any] = {"candidates": _candidates(frame)}
        else:
            kind = frame.get("sdpType")
            if kind not in ("offer", "answer"):
                raise BadFrame("call.signal carries candidates, or an sdpType and sdp")
            payload = {"sdpType": kind, "sdp": _sdp(frame, "sdp")}
        if "to" in frame:
            payload["to"] = frame_id(frame, "to")
        if not await self.signal(account, call_id, payload):
            await self._refuse(account, frame, "You are not in this call, or it is over.")
