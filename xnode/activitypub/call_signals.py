"""Call signalling between servers: the fast path (docs/calls-over-activitypub.md).

Outgoing: each signal is one signed POST to the recipient's inbox, sent at once with a
short timeout and a few quick retries while the call goes on, never through the
delivery queue (where it would wait behind bulk deliveries) and never stored.

Incoming: the inbox hands a verified activity here before queuing it
(:meth:`CallSignals.take`); a call signal goes straight to the call service in the
serving process, where the callee's tabs are, whether or not an inbox process runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from federation.calls import (
    CallSignal,
    InvalidSignal,
    looks_like_signal,
    parse_signal,
    signal_activity,
)
from federation.http import Fetcher, FetchError, FetchSettings
from xnode.accounts.models import Account
from xnode.activitypub.resolver import BlockedDomain, ResolveError, Resolver
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.calls.models import Call
from xnode.calls.service import CallService
from xnode.ids import new_id

log = logging.getLogger(__name__)

SIGNAL_TIMEOUT_S = 5.0
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
MAX_IN_FLIGHT = 200
"""Signals being sent at once; beyond this a new one is dropped (and logged)."""


async def _always() -> bool:
    """The default ``still_wanted``: a signal worth every retry."""
    return True


class CallSignals:
    """Sends and takes the call signals of this node's people."""

    def __init__(
        self, calls: CallService, resolver: Resolver, signer: Signer, urls: Urls,
        fetch: FetchSettings,
    ) -> None:  # fmt: skip
        self.calls = calls
        self.resolver = resolver
        self.signer = signer
        self.urls = urls
        self.fetcher = Fetcher(dataclasses.replace(fetch, timeout_s=SIGNAL_TIMEOUT_S))
        self._tasks: set[asyncio.Task[None]] = set()
        calls.transport = self

    async def close(self) -> None:
        """Stop sending and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.fetcher.close()

    # --- the transport the call service uses ------------------------------------------------

    async def resolve(self, handle: str) -> Account | None:
        """The account of ``user@host``, looked up by WebFinger when not known yet."""
        try:
            return await self.resolver.actor_by_handle(handle)
        except (ResolveError, BlockedDomain) as exc:
            log.info("call to %s: %s", handle, exc)
            return None

    def _uri(self, account: Account) -> str:
        if account.domain is None:
            return self.urls.actor(account.username)
        assert account.uri is not None
        return account.uri

    def send(
        self, sender: Account, recipient: Account, call: Call, kind: str, *,
        participants: Sequence[Account] = (), media: Sequence[str] = (),
        object_id: str | None = None, sdp_type: str | None = None, sdp: str | None = None,
        candidates: Sequence[dict[str, Any]] = (), reason: str | None = None,
        still_wanted: Callable[[], Awaitable[bool]] = _always,
    ) -> None:  # fmt: skip
        """Send one signal at once, retrying briefly while ``still_wanted()``."""
        if recipient.domain is None or not recipient.inbox_url:
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.warning("%d call signals in flight: dropping a %s for call %d",
                        MAX_IN_FLIGHT, kind, call.id)  # fmt: skip
            return
        signal = CallSignal(
            kind=kind, actor=self._uri(sender), call=object_id or call.uri,
            participants=tuple(self._uri(p) for p in participants), media=tuple(media),
            sdp_type=sdp_type, sdp=sdp, candidates=tuple(candidates), reason=reason,
        )  # fmt: skip
        # Ids on our host, unique per signal; the Invite's is the call's plus /invite,
        # which is what the answer names.
        activity_id = (
            f"{call.uri}/invite" if kind == "Invite"
            else f"{self.urls.base}/calls/{call.id}/signals/{new_id()}"
        )  # fmt: skip
        if kind == "Invite":
            signal = dataclasses.replace(signal, call=call.uri)
        doc = signal_activity(signal, activity_id, self._uri(recipient))
        task = asyncio.create_task(
            self._deliver(sender, recipient.inbox_url, doc, still_wanted, kind),
            name=f"call-signal-{kind}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, sender: Account, inbox: str, doc: Mapping[str, Any],
        still_wanted: Callable[[], Awaitable[bool]], kind: str,
    ) -> None:  # fmt: skip
        # The end of a call (Leave, Reject) is sent even though the call is over here.
        final = kind in ("Leave", "Reject")
        for delay in (0.0, *RETRY_DELAYS_S):
            if delay:
                await asyncio.sleep(delay)
            if not final and not await still_wanted():
                return
            try:
                result = await self.signer.post(self.fetcher, sender, inbox, doc)
            except FetchError as exc:
                log.info("call signal %s to %s: %s", kind, inbox, exc)
                continue
            if 200 <= result.status < 300:
                return
            if 400 <= result.status < 500 and result.status not in (408, 429):
                log.info("call signal %s refused by %s: %d", kind, inbox, result.status)
                return
        log.info("call signal %s to %s given up", kind, inbox)

    # --- incoming ----------------------------------------------------------------------------

    async def _names_known_call(self, doc: Mapping[str, Any]) -> bool:
        for key in ("object", "target"):
            value = doc.get(key)
            if isinstance(value, dict):
                value = value.get("id")
            if isinstance(value, str) and await self.calls.call_named(value) is not None:
                return True
        return False

    async def take(self, actor: Account, doc: Mapping[str, Any]) -> bool:
        """Handle ``doc`` if it is a call signal by ``actor`` (its signer); False if not one.

        A signal that breaks the protocol is dropped here too (True): it must not go on
        to the inbox queue, where an ``Accept`` could be taken for a follow's.
        """
        if not (looks_like_signal(doc) or await self._names_known_call(doc)):
            return False
        try:
            signal = parse_signal(doc)
        except InvalidSignal as exc:
            log.info("dropping a call signal from %s: %s", actor.uri, exc)
            return True
        if signal.actor != actor.uri:
            log.info("call signal by %s signed by %s: dropped", signal.actor, actor.uri)
            return True
        # The person here the signal is for: an Invite's target, anything else's addressee
        # (in a group call each pair has its own connection, so that matters).
        named = [doc.get("target")] if signal.kind == "Invite" else []
        to = doc.get("to")
        named += to if isinstance(to, list) else [to]
        local = None
        for uri in named:
            if isinstance(uri, str) and self.resolver.is_local(uri):
                local = await self.resolver.known_account(uri)
                break
        if local is not None and local.domain is not None:
            local = None
        participants: list[Account] = []
        if signal.kind == "Invite":
            if local is None or self.resolver.urls.actor(local.username) not in signal.participants:
                return True
            for uri in signal.participants:
                try:
                    participants.append(await self.resolver.actor(uri))
                except (ResolveError, BlockedDomain) as exc:
                    log.info("call %s: participant %s unknown: %s", signal.call, uri, exc)
        await self.calls.receive(actor, signal, local, participants)
        return True
