"""Body digests: RFC 3230 ``Digest`` (cavage) and RFC 9530 ``Content-Digest`` (RFC 9421).

:func:`legacy_digest` and :func:`content_digest` make the header values a signer
sends (re-exported by :mod:`federation.signatures`). The checks raise
``_Failure``: every sha-256/sha-512 value must match the body, and at least one
must be present; other algorithms are ignored, as Fedify does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable

import http_sf

from federation.signature_types import Reason, _Failure
from federation.structured_fields import _fast_dictionary, _members


def legacy_digest(body: bytes) -> str:
    """The RFC 3230 ``Digest`` header value cavage signers send: ``SHA-256=<b64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` header value: ``sha-256=:<b64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda b: hashlib.sha256(b).digest(),
    "sha-512": lambda b: hashlib.sha512(b).digest(),
}


def _check_digests(pairs: Iterable[tuple[str, bytes]], body: bytes, header: str) -> None:
    """Every supported digest must match; at least one must be supported."""
    seen = False
    for algorithm, value in pairs:
        compute = _DIGESTS.get(algorithm.lower())
        if compute is None:
            continue  # e.g. md5 or "sha" (SHA-1): ignored, as Fedify does
        seen = True
        if not hmac.compare_digest(compute(body), value):
            raise _Failure(Reason.DIGEST_MISMATCH, f"{header} {algorithm} does not match the body")
    if not seen:
        raise _Failure(Reason.DIGEST_UNSUPPORTED, f"{header} has no sha-256 or sha-512 value")


def _check_legacy_digest(value: str, body: bytes) -> None:
    pairs: list[tuple[str, bytes]] = []
    for part in value.split(","):
        algorithm, sep, encoded = part.strip().partition("=")
        if not sep:
            raise _Failure(Reason.DIGEST_MISMATCH, "Digest header is malformed")
        try:
            pairs.append((algorithm.strip(), base64.b64decode(encoded.strip(), validate=True)))
        except (binascii.Error, ValueError):
            raise _Failure(Reason.DIGEST_MISMATCH, "Digest value is not base64") from None
    _check_digests(pairs, body, "Digest")


def _check_content_digest(value: str, body: bytes) -> None:
    members: Iterable[tuple[str, tuple[object, object]]] | None = _fast_dictionary(value)
    if members is None:
        try:
            members = _members(http_sf.parse(value.encode("ascii"), tltype="dictionary"))
        except Exception:  # http_sf raises several types on garbage
            raise _Failure(Reason.DIGEST_MISMATCH, "Content-Digest is not a dictionary") from None
    pairs = []
    for algorithm, (item, _params) in members:
        if not isinstance(item, bytes):
            raise _Failure(Reason.DIGEST_MISMATCH, "Content-Digest value is not a byte sequence")
        pairs.append((algorithm, item))
    _check_digests(pairs, body, "Content-Digest")
