"""Checking HTTP signatures on incoming requests (inbox POSTs and signed GETs).

The verdict comes from :mod:`federation.signatures`; this module supplies the
URL the sender signed, the key (cached, fetched, or refetched once after a
rotation) and turns failures into ``401 Unauthorized`` with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from federation.signatures import Reason, signature_key_id, verify_request
from xnode.accounts.models import Account
from xnode.activitypub.resolver import ResolveError, Resolver
from xnode.clock import Clock
from xnode.settings import Settings

log = logging.getLogger(__name__)

# How far a signature's Date (or ``created``) may be from our clock, either way.
# Fedify and Mastodon both allow an hour; a replayed request older than this fails.
SIGNATURE_WINDOW_S = 3600.0

# Failures a newer key could fix (the actor rotated it since we cached it).
_RETRY_WITH_FRESH_KEY = frozenset({Reason.BAD_SIGNATURE, Reason.KEY_MISMATCH})


@dataclass(frozen=True)
class SignedRequest:
    """Who signed a request: the key owner's account, the key id and the scheme used."""

    actor: Account
    key_id: str
    scheme: str


def public_url(request: web.Request, settings: Settings) -> str:
    """The URL the sender addressed: our public base URL plus the path and query.

    Behind a reverse proxy the socket sees ``http://127.0.0.1:8080/...``; the
    signature covers what the sender saw.
    """
    return settings.base_url + request.path_qs


def is_signed(request: web.Request) -> bool:
    """Whether the request carries any HTTP signature."""
    return signature_key_id(request.headers) is not None


async def verify_incoming(
    request: web.Request, body: bytes | None, resolver: Resolver, settings: Settings,
    clock: Clock, *, key_id: str | None = None,
) -> SignedRequest:
    """Verify a request's HTTP signature (cavage or RFC 9421) and name its signer.

    Args:
        request: the incoming request (headers, method, path).
        body: the raw body for POSTs, None for GETs.
        resolver: where keys are looked up (and fetched from the signer's server).
        settings: for the public base URL.
        clock: the current time, for the Date window.
        key_id: the key id, when the caller has read it already.

    Returns:
        The verified signer.

    Raises:
        web.HTTPUnauthorized: unsigned, unknown key, bad signature, stale date, or a
            digest that does not match the body; ``text`` says which.
    """
    key_id = key_id or signature_key_id(request.headers)
    if key_id is None:
        raise web.HTTPUnauthorized(text="Request is not signed.")
    url = public_url(request, settings)
    try:
        owner, key = await resolver.public_key(key_id)
    except ResolveError as exc:
        log.info("signature key %s unavailable: %s", key_id, exc)
        raise web.HTTPUnauthorized(text=f"Signature key unavailable: {exc.message}") from None
    verdict = verify_request(
        request.method, url, request.headers, body, key, now=clock.now(),
        window_s=SIGNATURE_WINDOW_S,
    )
    if not verdict.ok and verdict.reason in _RETRY_WITH_FRESH_KEY and not owner.is_local:
        try:
            owner, fresh = await resolver.public_key(key_id, refresh=True)
        except ResolveError as exc:
            log.info("refetching key %s failed: %s", key_id, exc)
        else:
            if fresh != key:
                verdict = verify_request(
                    request.method, url, request.headers, body, fresh, now=clock.now(),
                    window_s=SIGNATURE_WINDOW_S,
                )
    if not verdict.ok:
        log.info("refused signature from %s: %s %s", key_id, verdict.reason, verdict.detail)
        raise web.HTTPUnauthorized(text=f"Signature refused: {verdict.reason.value}.")
    if owner.is_deleted or owner.is_suspended:
        raise web.HTTPUnauthorized(text="The signing actor is not active here.")
    scheme = verdict.scheme.value if verdict.scheme is not None else "unknown"
    return SignedRequest(actor=owner, key_id=key_id, scheme=scheme)
