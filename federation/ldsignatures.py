"""Linked Data Signatures as Mastodon does them: ``RsaSignature2017``.

Mastodon signs public activities it relays, and Fedify signs every activity it
sends this way. The signed bytes are, as in Mastodon's
``ActivityPub::LinkedDataSignature``::

    hex(sha256(URDNA2015(options))) + hex(sha256(URDNA2015(document - signature)))

where ``options`` is the ``signature`` object without ``type``, ``id`` and
``signatureValue``, with ``@context`` set to ``https://w3id.org/identity/v1``
(whatever context the signature carried). Hubzilla/Zap signatures also carry a
``nonce``, which stays in the options. The signature is RSASSA-PKCS1-v1_5/SHA-256.

Normalisation needs the JSON-LD contexts the document names. They come from the
bundled, offline loader in :mod:`federation.jsonld`; a context it does not bundle
makes verification fail with ``Reason.CONTEXT_UNAVAILABLE`` instead of a fetch.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import enum
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from federation.keys import PublicKey

__all__ = [
    "IDENTITY_CONTEXT",
    "DocumentLoader",
    "LdReason",
    "LdVerdict",
    "create_signature",
    "sign_document",
    "signature_creator",
    "verify_signature",
]

logger = logging.getLogger(__name__)

IDENTITY_CONTEXT = "https://w3id.org/identity/v1"
_SIGNATURE_TYPE = "RsaSignature2017"

DocumentLoader: TypeAlias = Callable[..., dict[str, Any]]
"""A pyld document loader: ``(url, options) -> {"documentUrl", "document", …}``."""


class LdReason(enum.StrEnum):
    """Why an LD signature did not verify (``OK`` when it did)."""

    OK = "ok"
    NO_SIGNATURE = "no_signature"
    MALFORMED = "malformed_signature"
    UNSUPPORTED = "unsupported_signature_type"
    KEY_UNAVAILABLE = "key_unavailable"
    KEY_MISMATCH = "key_algorithm_mismatch"
    CONTEXT_UNAVAILABLE = "context_unavailable"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class LdVerdict:
    """The outcome of verifying an ``RsaSignature2017``.

    Attributes:
        ok: True when the signature verified.
        reason: ``LdReason.OK`` or why it did not.
        creator: The key id in ``signature.creator``, when present.
        detail: Human-readable context for logs.
    """

    ok: bool
    reason: LdReason
    creator: str | None = None
    detail: str = ""


class _Failure(Exception):
    """Internal control flow: a check failed with this reason."""

    def __init__(self, reason: LdReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _default_loader() -> DocumentLoader:
    # Imported late: federation.jsonld pulls in pyld and the bundled contexts.
    from federation.jsonld import document_loader

    return document_loader


def _normalise_hash(document: Mapping[str, Any], loader: DocumentLoader) -> str:
    from pyld import jsonld

    try:
        nquads = jsonld.normalize(
            copy.deepcopy(dict(document)),
            {
                "algorithm": "URDNA2015",
                "format": "application/n-quads",
                "documentLoader": loader,
            },
        )
    except RecursionError:
        raise _Failure(LdReason.MALFORMED, "document nests too deeply") from None
    except Exception as exc:  # pyld wraps loader and syntax errors in JsonLdError
        raise _Failure(LdReason.CONTEXT_UNAVAILABLE, f"cannot normalise: {_root(exc)}") from None
    return hashlib.sha256(nquads.encode("utf-8")).hexdigest()


def _root(exc: BaseException) -> str:
    """The innermost message of pyld's chain of wrapped errors (e.g. the unknown URL)."""
    for _ in range(10):
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _signed_bytes(
    document: Mapping[str, Any], signature: Mapping[str, Any], loader: DocumentLoader
) -> bytes:
    options = {k: v for k, v in signature.items() if k not in ("type", "id", "signatureValue")}
    options["@context"] = IDENTITY_CONTEXT
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return (_normalise_hash(options, loader) + _normalise_hash(unsigned, loader)).encode("ascii")


def create_signature(
    document: Mapping[str, Any],
    private_key: rsa.RSAPrivateKey,
    creator: str,
    *,
    created: datetime.datetime | str | None = None,
    document_loader: DocumentLoader | None = None,
) -> dict[str, Any]:
    """Create a Mastodon-style ``RsaSignature2017`` for a document.

    Args:
        document: The activity, exactly as it will be sent (any ``signature``
            already on it is ignored).
        private_key: The actor's RSA key.
        creator: The key id, e.g. ``https://host/users/a#main-key``.
        created: Signature time; defaults to now (UTC, as Mastodon formats it).
        document_loader: pyld loader; defaults to the bundled offline loader.

    Returns:
        The ``signature`` object to add to the document.

    Raises:
        TypeError: The key is not an RSA private key.
        ValueError: The document cannot be normalised (unknown context, bad JSON-LD).
    """
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("RsaSignature2017 needs an RSA private key")
    if not isinstance(created, str):
        moment = created or datetime.datetime.now(datetime.UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        created = moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature: dict[str, Any] = {
        "type": _SIGNATURE_TYPE,
        "creator": creator,
        "created": created,
    }
    try:
        data = _signed_bytes(document, signature, document_loader or _default_loader())
    except _Failure as failure:
        raise ValueError(failure.detail) from None
    value = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    signature["signatureValue"] = base64.b64encode(value).decode("ascii")
    return signature


def sign_document(
    document: Mapping[str, Any],
    private_key: rsa.RSAPrivateKey,
    creator: str,
    **options: Any,
) -> dict[str, Any]:
    """Return a copy of ``document`` with an ``RsaSignature2017`` under ``signature``.

    ``options`` go to :func:`create_signature`.
    """
    signed = {k: v for k, v in document.items() if k != "signature"}
    signed["signature"] = create_signature(document, private_key, creator, **options)
    return signed


def signature_creator(document: Mapping[str, Any]) -> str | None:
    """The key id in the document's ``signature.creator``, for the caller to fetch.

    Never raises: anything odd gives None.
    """
    try:
        signature = document.get("signature")
        creator = signature.get("creator") if isinstance(signature, Mapping) else None
    except Exception:
        return None
    return creator if isinstance(creator, str) and creator else None


def verify_signature(
    document: Mapping[str, Any],
    public_key: PublicKey | rsa.RSAPublicKey | None,
    *,
    document_loader: DocumentLoader | None = None,
) -> LdVerdict:
    """Verify a document's ``RsaSignature2017`` with the creator's key.

    Args:
        document: The received document, with its ``signature``.
        public_key: The RSA key found at :func:`signature_creator`, or None when
            it could not be fetched.
        document_loader: pyld loader; defaults to the bundled offline loader.

    Returns:
        An :class:`LdVerdict`. Never raises on hostile input.
    """
    creator = signature_creator(document) if isinstance(document, Mapping) else None
    try:
        if not isinstance(document, Mapping) or "signature" not in document:
            raise _Failure(LdReason.NO_SIGNATURE, "document has no signature")
        signature = document["signature"]
        if not isinstance(signature, Mapping):
            raise _Failure(LdReason.MALFORMED, "signature is not an object")
        if signature.get("type") != _SIGNATURE_TYPE:
            raise _Failure(LdReason.UNSUPPORTED, "only RsaSignature2017 is supported")
        value = signature.get("signatureValue")
        if creator is None or not isinstance(value, str):
            raise _Failure(LdReason.MALFORMED, "creator and signatureValue are required")
        if public_key is None:
            raise _Failure(LdReason.KEY_UNAVAILABLE, "no key for the creator")
        raw_key = public_key.key if isinstance(public_key, PublicKey) else public_key
        if not isinstance(raw_key, rsa.RSAPublicKey):
            raise _Failure(LdReason.KEY_MISMATCH, "RsaSignature2017 needs an RSA key")
        try:
            signature_bytes = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Failure(LdReason.MALFORMED, "signatureValue is not base64") from None
        data = _signed_bytes(document, signature, document_loader or _default_loader())
        try:
            raw_key.verify(signature_bytes, data, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise _Failure(LdReason.BAD_SIGNATURE, "signature does not verify") from None
        return LdVerdict(True, LdReason.OK, creator)
    except _Failure as failure:
        return LdVerdict(False, failure.reason, creator, failure.detail)
    except Exception as exc:  # a bug, not the peer's fault
        logger.warning("LD signature verification crashed: %r", exc, exc_info=True)
        return LdVerdict(False, LdReason.MALFORMED, creator, f"error: {exc!r}")
