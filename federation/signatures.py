"""HTTP request signatures: draft-cavage-http-signatures-12 and RFC 9421.

Pure functions: the caller hands in the method, URL, headers and body and gets
back headers to add (signing) or a :class:`Verdict` (verification). Nothing here
fetches keys; verification is two steps so that the I/O stays with the caller::

    key_id = signature_key_id(request.headers)       # which key to fetch
    key = await my_key_store.get(key_id)              # caller's I/O
    verdict = verify_request("POST", url, request.headers, body, key)
    if not verdict.ok: ...                            # the web layer answers 401

Interop notes (which server does what):

* Mastodon signs cavage ``(request-target) host date digest content-type`` with
  ``algorithm="rsa-sha256"``; since 4.5 it also verifies RFC 9421, and then wants
  ``created``, ``@method``, ``@target-uri`` and a signed ``Content-Digest``, RSA only.
* Fedify double-knocks: RFC 9421 first (``"@method" "@target-uri" "@authority"
  "host" "date" "content-digest"``, params ``alg;keyid;created``), then cavage on any
  status >= 400. Its cavage signatures list *every* header it sent, and its
  ``(request-target)`` leaves out the query string (old Mastodon did the same), so
  we retry without the query when the URL has one, as Mastodon does.
* ``hs2019`` means "look at the key": the fediverse uses RSASSA-PKCS1-v1_5 with
  SHA-256 for RSA keys (we also accept the draft's RSASSA-PSS/SHA-512).

Layout: this module is the API (import from here) and dispatches on the scheme
a request uses; the rest is split by concern:

* :mod:`federation.signature_types`: ``Scheme``, ``Reason``, ``Verdict``,
  ``SignatureRequest`` and the request view both schemes read.
* :mod:`federation.signature_algorithms`: raw RSA/Ed25519 signing and
  verification, and which algorithms a declared name and a key allow.
* :mod:`federation.digests`: ``Digest`` and ``Content-Digest``.
* :mod:`federation.structured_fields`: RFC 8941 fast paths (http_sf is the
  reference and the fallback).
* :mod:`federation.cavage` and :mod:`federation.rfc9421`: the two standards.

Underscored names are shared between these modules but are not API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from federation.cavage import _cavage_header, _parse_cavage, _sign_cavage, _verify_cavage
from federation.digests import content_digest, legacy_digest
from federation.keys import KeyFormatError, PrivateKey, PublicKey
from federation.rfc9421 import _pick_label, _sign_rfc9421, _verify_rfc9421, parse_accept_signature
from federation.signature_algorithms import _coerce_key
from federation.signature_types import (
    DEFAULT_WINDOW_S,
    HeadersInput,
    Reason,
    Scheme,
    SignatureRequest,
    Verdict,
    _Failure,
    _Request,
    _request,
)

__all__ = [
    "DEFAULT_WINDOW_S",
    "HeadersInput",
    "Reason",
    "Scheme",
    "SignatureRequest",
    "Verdict",
    "content_digest",
    "legacy_digest",
    "parse_accept_signature",
    "sign_request",
    "signature_key_id",
    "signature_scheme",
    "verify_request",
    "verify_with_lookup",
]

logger = logging.getLogger(__name__)


def _scheme(req: _Request) -> Scheme | None:
    if req.field("signature-input") is not None:
        return Scheme.RFC9421
    return Scheme.CAVAGE if _cavage_header(req) is not None else None


def _key_id(req: _Request, label: str | None = None) -> str | None:
    try:
        scheme = _scheme(req)
        if scheme is Scheme.RFC9421:
            keyid = _pick_label(req, label)[2].get("keyid")
            return keyid if isinstance(keyid, str) and keyid else None
        if scheme is Scheme.CAVAGE:
            return _parse_cavage(_cavage_header(req) or "").get("keyid") or None
    except _Failure:
        return None
    return None


def signature_scheme(headers: HeadersInput) -> Scheme | None:
    """Which signature standard a request uses, or None if it is unsigned.

    ``Signature-Input`` means RFC 9421; otherwise a ``Signature`` header (or
    ``Authorization: Signature …``) means draft-cavage.
    """
    try:
        return _scheme(_request("GET", "", headers, None))
    except Exception:
        return None


def signature_key_id(headers: HeadersInput, *, label: str | None = None) -> str | None:
    """The key id a signed request names, so the caller can fetch that key.

    For RFC 9421 this is the ``keyid`` of the signature that
    :func:`verify_request` will check (``label``, or the first one). Never
    raises: garbage gives None.
    """
    try:
        return _key_id(_request("GET", "", headers, None), label)
    except Exception:
        return None


def verify_request(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    public_key: PublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | None,
    *,
    now: float | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    require_body_digest: bool = True,
    allow_queryless_target: bool = True,
    label: str | None = None,
) -> Verdict:
    """Verify a signed request (RFC 9421 or draft-cavage-12) against a public key.

    Policy: cavage must sign ``(request-target)``, ``host`` and ``date`` (or
    ``(created)``); RFC 9421 must sign ``@method`` and ``@target-uri`` (or
    ``@authority`` and ``@path``) and carry ``created``. With a non-empty body the
    digest header (``digest`` / ``content-digest``) must be signed and match.
    ``Date``/``created`` must be within ``window_s`` of ``now``. Any digest header
    present is checked against the body even when unsigned.

    Args:
        method: The request method.
        url: The full URL the sender addressed (public scheme and host, path, query);
            behind a proxy, rebuild it from the forwarded values.
        headers: The request headers; repeated fields are joined as RFC 9421 says.
        body: The raw body bytes as received, or None.
        public_key: The key named by :func:`signature_key_id`, or None when it
            could not be fetched.
        now: Current time in epoch seconds (for tests); defaults to the clock.
        window_s: Allowed clock difference either way.
        require_body_digest: Whether a body must be covered by a signed digest.
        allow_queryless_target: Cavage only: also accept a ``(request-target)``
            signed without the query string, as Fedify and Mastodon before 4.x
            produce (Mastodon's verifier accepts it too). The price: such a
            signature does not bind the query.
        label: RFC 9421 signature label to check; defaults to the first one.

    Returns:
        A :class:`Verdict`. Never raises on hostile input.
    """
    now = time.time() if now is None else now
    try:
        req = _request(method, url, headers, body)
        scheme = _scheme(req)
        if scheme is None:
            return Verdict(False, Reason.NO_SIGNATURE, detail="request is not signed")
        try:
            key = None if public_key is None else _coerce_key(public_key)
        except KeyFormatError as exc:
            key_id = _key_id(req, label)
            return Verdict(False, Reason.KEY_UNAVAILABLE, key_id, scheme, detail=str(exc))
        if scheme is Scheme.RFC9421:
            return _verify_rfc9421(req, key, now, window_s, require_body_digest, label)
        return _verify_cavage(req, key, now, window_s, require_body_digest, allow_queryless_target)
    except Exception as exc:  # a bug, not the peer's fault: log loudly, still answer 401
        logger.warning("signature verification crashed: %r", exc, exc_info=True)
        return Verdict(False, Reason.MALFORMED, detail=f"verification error: {exc!r}")


async def verify_with_lookup(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    key_lookup: Callable[[str], Awaitable[PublicKey | None]],
    **options: Any,
) -> Verdict:
    """:func:`verify_request` with the key fetched through ``key_lookup``.

    ``key_lookup(key_id)`` is the caller's (cache, database, signed fetch); its
    exceptions become ``Reason.KEY_UNAVAILABLE``. ``options`` go to
    :func:`verify_request`.
    """
    if not isinstance(headers, Mapping):
        headers = list(headers)  # it is read more than once
    key_id = signature_key_id(headers, label=options.get("label"))
    if key_id is None:
        return verify_request(method, url, headers, body, None, **options)
    try:
        key = await key_lookup(key_id)
    except Exception as exc:
        logger.info("key lookup for %s failed: %r", key_id, exc)
        return Verdict(
            False,
            Reason.KEY_UNAVAILABLE,
            key_id,
            signature_scheme(headers),
            detail=f"key lookup failed: {exc!r}",
        )
    return verify_request(method, url, headers, body, key, **options)


def sign_request(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    key_id: str,
    private_key: PrivateKey,
    scheme: Scheme | str = Scheme.RFC9421,
    now: float | None = None,
    *,
    accept: SignatureRequest | None = None,
) -> dict[str, str]:
    """Sign a request; returns the headers to add to it.

    The result holds ``Host`` and ``Date`` when ``headers`` lacks them, the body
    digest (``Digest`` for cavage, ``Content-Digest`` for RFC 9421) for requests
    with a body, and the signature headers. Send the body bytes exactly as given.

    Args:
        method: The request method.
        url: The full URL the request goes to.
        headers: Headers already on the request (``Content-Type``, ``Accept``, …).
        body: The exact body bytes, or None for GET/HEAD.
        key_id: The key id to advertise (e.g. ``https://host/users/a#main-key``).
        private_key: An RSA (cavage ``rsa-sha256`` / ``rsa-v1_5-sha256``) or
            Ed25519 key.
        scheme: ``"rfc9421"`` (default) or ``"cavage"``.
        now: Epoch seconds for ``Date``/``created``; defaults to the clock.
        accept: An ``Accept-Signature`` request from the server (RFC 9421 only):
            its label, components, nonce and tag are used.

    Returns:
        A dict of header names to values.

    Raises:
        ValueError: Unknown scheme, or ``accept`` asks for what we cannot sign.
    """
    now = time.time() if now is None else now
    req = _request(method, url, headers, body)
    if Scheme(scheme) is Scheme.CAVAGE:
        return _sign_cavage(req, key_id, private_key, now)
    return _sign_rfc9421(req, key_id, private_key, now, accept)
