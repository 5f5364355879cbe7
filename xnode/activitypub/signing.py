"""Signing what we send: HTTP signatures on inbox POSTs and fetches, integrity proofs on activities.

The sender is thin: one POST (two when double-knocking), no retry logic; the
delivery queue decides what an answer means.

Interop notes:

* Double-knocking, as Fedify does: RFC 9421 first; if the peer answers 4xx,
  the same body once more signed with draft-cavage-12. Whatever worked is
  remembered per host in the ``hosts`` table, so the next delivery knocks once.
  Mastodon before 4.5, GoToSocial, Misskey and Pleroma only read cavage;
  Fedify and Mastodon 4.5+ read both.
* If the remembered scheme starts failing (the peer upgraded or changed
  software), the other one is tried before we give up, again like Fedify.
* 408 and 429 are never double-knocked: they are about load, not signatures,
  and a second request at once would be rude to a server asking for a pause.
* GETs (actor and object fetches) are signed with cavage only: every server
  that checks fetch signatures (Mastodon's authorized fetch, GoToSocial) reads it.
* A fan-out sends one activity to thousands of inboxes: the body (proof
  included) is prepared once per sender and payload and reused, and the scheme
  per host is remembered in memory as well as in ``hosts``; only the HTTP
  signature headers are made per request (issue 4). Those are made on a worker
  thread: an RSA signature takes a quarter of a millisecond, which at 1,500
  deliveries a second is a third of the event loop's time, and OpenSSL lets go
  of the GIL while it signs, so the second core does it.
* Activities get an FEP-8b32 ``eddsa-jcs-2022`` proof with the sender's Ed25519
  key, so they stay verifiable when forwarded. Mastodon ignores it; Fedify and
  Mitra check it.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.digests import content_digest, legacy_digest
from federation.http import Fetcher
from federation.proofs import create_proof
from federation.signatures import Scheme, sign_request
from xnode.accounts.models import Account
from xnode.activitypub.keys import ActorKeys, KeyRing, SigningKey
from xnode.activitypub.retry import retry_after_s
from xnode.activitypub.serialize import DATA_INTEGRITY_CONTEXT
from xnode.clock import Clock
from xnode.store import deliveries as delivery_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

ACTIVITY_CONTENT_TYPE = "application/activity+json"

# Statuses after which the other signature scheme is worth a try.
_NO_SECOND_KNOCK = frozenset({408, 429})

BODY_CACHE_SIZE = 32
"""Prepared bodies kept (one per activity being fanned out, roughly)."""
BODY_CACHE_S = 300.0
"""A prepared body (and its proof's ``created``) is reused for this long at most."""
SCHEME_CACHE_SIZE = 20_000
"""Hosts whose signature scheme is remembered in memory (the ``hosts`` table has them all)."""

RequestSigner = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Body:
    """Bytes to POST, with their digest headers worked out once for a whole fan-out."""

    data: bytes
    digests: dict[str, str]  # scheme -> the digest header it signs

    @classmethod
    def of(cls, data: bytes) -> Body:
        """The body and the digest header each signature scheme covers."""
        return cls(data, {
            Scheme.RFC9421.value: content_digest(data), Scheme.CAVAGE.value: legacy_digest(data),
        })  # fmt: skip

    def headers(self, scheme: str) -> dict[str, str]:
        """Request headers for ``scheme``: content type, Accept and the digest it signs."""
        name = "Content-Digest" if scheme == Scheme.RFC9421.value else "Digest"
        return {
            "Content-Type": ACTIVITY_CONTENT_TYPE, "Accept": ACTIVITY_CONTENT_TYPE,
            name: self.digests[scheme],
        }  # fmt: skip


@dataclass(frozen=True)
class DeliveryResult:
    """What the peer answered to a delivery.

    Attributes:
        status: The final HTTP status.
        retry_after_s: The pause the peer asked for (Retry-After on 429/503).
        scheme: The signature scheme of the last request sent.
        learnt: The scheme worked and was not the one remembered for the host:
            the caller that asked to write it itself (``post_payload``) must.
    """

    status: int
    retry_after_s: float | None
    scheme: str
    learnt: bool = False


def _other(scheme: str) -> str:
    return Scheme.CAVAGE.value if scheme == Scheme.RFC9421.value else Scheme.RFC9421.value


def _knock_again(status: int) -> bool:
    return 400 <= status < 500 and status not in _NO_SECOND_KNOCK


def with_proof(activity: Mapping[str, Any], key: SigningKey, created: str) -> dict[str, Any]:
    """A copy of ``activity`` with an eddsa-jcs-2022 proof by ``key``.

    The data-integrity context is added to ``@context`` first, so JSON-LD
    processors (Fedify) see ``proof`` as a defined term rather than dropping it.
    """
    document = dict(activity)
    context = document.get("@context")
    if context is not None:
        contexts = list(context) if isinstance(context, list) else [context]
        if DATA_INTEGRITY_CONTEXT not in contexts:
            # Before any inline term definitions, as the JSON-LD convention goes.
            at = next((i for i, c in enumerate(contexts) if not isinstance(c, str)), len(contexts))
            contexts.insert(at, DATA_INTEGRITY_CONTEXT)
        document["@context"] = contexts
    private_key = key.private_key
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError(f"integrity proofs need an Ed25519 key, not {key.key_id}")
    document["proof"] = create_proof(document, private_key, key.key_id, created=created)
    return document


class Signer:
    """Signs and sends activities for local actors (or the instance actor)."""

    def __init__(self, db: Database, keys: KeyRing, clock: Clock) -> None:
        self.db = db
        self.keys = keys
        self.clock = clock
        # (signing key id, payload) -> (monotonic time made, body bytes)
        self._bodies: OrderedDict[tuple[str, str], tuple[float, Body]] = OrderedDict()
        # host -> scheme that worked (None: not known yet); only this node writes it.
        self._schemes: OrderedDict[str, str | None] = OrderedDict()

    async def _keys(self, sender: Account | None) -> ActorKeys:
        if sender is None:
            return await self.keys.instance()
        return await self.keys.for_account(sender)

    def _prepare(self, activity: Mapping[str, Any], keys: ActorKeys) -> dict[str, Any]:
        """Add our proof when the activity is the sender's own (never to forwarded ones)."""
        ed = keys.ed25519
        actor = activity.get("actor")
        if ed is None or "proof" in activity or actor != ed.key_id.partition("#")[0]:
            return dict(activity)
        created = datetime.datetime.fromtimestamp(self.clock.now(), datetime.UTC)
        return with_proof(activity, ed, created.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def _hook(self, key: SigningKey, scheme: str) -> RequestSigner:
        async def sign(
            method: str, url: str, headers: Mapping[str, str], body: bytes | None
        ) -> dict[str, str]:
            # Called again on every redirect hop, so the signature covers that URL.
            work = functools.partial(
                sign_request, method, url, headers, body, key.key_id, key.private_key, scheme,
                now=self.clock.now(),
            )
            added = await asyncio.get_running_loop().run_in_executor(None, work)
            return {**headers, **added}

        return sign

    async def post(
        self, fetcher: Fetcher, sender: Account | None, url: str, activity: Mapping[str, Any]
    ) -> DeliveryResult:
        """POST an activity to an inbox, signed, double-knocking if needed.

        Args:
            fetcher: The SSRF-safe HTTP client.
            sender: The local account sending (None: the instance actor).
            url: The inbox URL.
            activity: The activity; a proof is added here.

        Returns:
            The peer's answer (any status; the caller classifies it).

        Raises:
            FetchError: no answer at all (connection, TLS, timeout, refused address).
        """
        keys = await self._keys(sender)
        # Serialised once: both knocks send the very same bytes.
        body = json.dumps(self._prepare(activity, keys), ensure_ascii=False).encode("utf-8")
        return await self._deliver(fetcher, url, Body.of(body), keys)

    async def post_payload(
        self, fetcher: Fetcher, sender: Account | None, url: str, payload: str
    ) -> DeliveryResult:
        """:meth:`post` for an activity as queued (JSON text), preparing its body once.

        The delivery queue sends the same payload to every inbox of a fan-out;
        parsing, adding the proof and serialising it again for each would be
        wasted work, so the prepared bytes are kept for ``BODY_CACHE_S``.

        Raises:
            FetchError: no answer at all (connection, TLS, timeout, refused address).
        """
        keys = await self._keys(sender)
        cache_key = (keys.rsa.key_id, payload)
        now = time.monotonic()
        cached = self._bodies.get(cache_key)
        if cached is not None and now - cached[0] < BODY_CACHE_S:
            body = cached[1]
        else:
            prepared = self._prepare(json.loads(payload), keys)
            body = Body.of(json.dumps(prepared, ensure_ascii=False).encode("utf-8"))
            self._bodies[cache_key] = (now, body)
            while len(self._bodies) > BODY_CACHE_SIZE:
                self._bodies.popitem(last=False)
        return await self._deliver(fetcher, url, body, keys, persist=False)

    async def _scheme_for(self, host: str) -> str | None:
        """The scheme that last worked for ``host``: from memory, else from ``hosts``."""
        if host in self._schemes:
            self._schemes.move_to_end(host)
            return self._schemes[host]
        scheme = await delivery_store.signature_scheme(self.db, host)
        self._remember_in_memory(host, scheme)
        return scheme

    async def prime_schemes(self, hosts: Iterable[str]) -> None:
        """Load the remembered schemes of many hosts at once (before a fan-out reaches them)."""
        unknown = [host for host in hosts if host not in self._schemes]
        if unknown:
            found = await delivery_store.signature_schemes(self.db, unknown)
            for host in unknown:
                self._remember_in_memory(host, found.get(host))

    def _remember_in_memory(self, host: str, scheme: str | None) -> None:
        self._schemes[host] = scheme
        self._schemes.move_to_end(host)
        while len(self._schemes) > SCHEME_CACHE_SIZE:
            self._schemes.popitem(last=False)

    async def _deliver(
        self, fetcher: Fetcher, url: str, body: Body, keys: ActorKeys, *, persist: bool = True
    ) -> DeliveryResult:
        """Send ``body`` signed, double-knocking on a 4xx, and remember what worked
        (in the ``hosts`` table too when ``persist``)."""
        host = delivery_store.host_of(url)
        remembered = await self._scheme_for(host)
        scheme = remembered or Scheme.RFC9421.value
        status, retry_after = await self._send(fetcher, url, body, keys.rsa, scheme)
        if _knock_again(status):
            log.debug("%s answered %d to %s; knocking again with the other scheme",
                      host, status, scheme)
            scheme = _other(scheme)
            status, retry_after = await self._send(fetcher, url, body, keys.rsa, scheme)
        learnt = 200 <= status < 300 and scheme != remembered
        if learnt:
            self._remember_in_memory(host, scheme)
            if persist:
                await delivery_store.remember_scheme(self.db, host, scheme)
        return DeliveryResult(status, retry_after, scheme, learnt)

    async def _send(
        self, fetcher: Fetcher, url: str, body: Body, key: SigningKey, scheme: str
    ) -> tuple[int, float | None]:
        response = await fetcher.request(
            "POST",
            url,
            headers=body.headers(scheme),
            body=body.data,
            sign=self._hook(key, scheme),
            raise_for_status=False,
        )
        pause = retry_after_s(response.status, response.headers.get("Retry-After"),
                              self.clock.now())
        return response.status, pause

    def sign_hook(self, sender: Account | None = None) -> RequestSigner:
        """A ``Fetcher`` signing hook that signs GETs as ``sender`` (None: instance actor).

        Cavage, because every server that checks signatures on fetches reads it.
        """

        async def sign(
            method: str, url: str, headers: Mapping[str, str], body: bytes | None
        ) -> dict[str, str]:
            key = (await self._keys(sender)).rsa
            return await self._hook(key, Scheme.CAVAGE.value)(method, url, headers, body)

        return sign
