"""FEP-8b32 Object Integrity Proofs: ``DataIntegrityProof`` with ``eddsa-jcs-2022``.

The signed bytes are ``sha256(JCS(proof config)) || sha256(JCS(document))``
(W3C vc-di-eddsa §3.3), signed with Ed25519; ``proofValue`` is base58btc multibase.
The proof config is the proof without ``proofValue``, with the document's
``@context`` (vc-di-eddsa "Proof Configuration", step 4).

Interop notes:

* Fedify 2.x hashes the proof config with the document's ``@context`` and also
  writes that ``@context`` into the proof it sends; so does the current FEP-8b32
  test vector. We do the same by default.
* Mitra (and FEP-8b32 before the @context change) sends proofs without
  ``@context``. Such proofs may have been hashed either way, so verification
  tries the spec form first and then the bare config. Both commit to the same
  document bytes, so the fallback only changes how the proof options are read.
* Verification needs only the key the caller looked up from ``verificationMethod``
  (an actor's ``assertionMethod`` Multikey, e.g. ``…#ed25519-key``); the caller
  must also check that key's controller is the activity's actor.
"""

from __future__ import annotations

import copy
import datetime
import enum
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.keys import KeyFormatError, PublicKey, base58btc_decode, base58btc_encode

__all__ = [
    "CRYPTOSUITE",
    "ProofReason",
    "ProofVerdict",
    "create_proof",
    "proof_verification_method",
    "sign_document",
    "verify_proof",
]

logger = logging.getLogger(__name__)

CRYPTOSUITE = "eddsa-jcs-2022"
_PROOF_TYPE = "DataIntegrityProof"


class ProofReason(enum.StrEnum):
    """Why a proof did not verify (``OK`` when it did)."""

    OK = "ok"
    NO_PROOF = "no_proof"
    MALFORMED = "malformed_proof"
    UNSUPPORTED = "unsupported_cryptosuite"
    WRONG_PURPOSE = "wrong_proof_purpose"
    KEY_UNAVAILABLE = "key_unavailable"
    KEY_MISMATCH = "key_algorithm_mismatch"
    CONTEXT_MISMATCH = "context_mismatch"
    NOT_CANONICALISABLE = "not_canonicalisable"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class ProofVerdict:
    """The outcome of verifying an integrity proof.

    Attributes:
        ok: True when the proof verified.
        reason: ``ProofReason.OK`` or why it did not.
        verification_method: The key id the proof names, when it names one.
        detail: Human-readable context for logs.
    """

    ok: bool
    reason: ProofReason
    verification_method: str | None = None
    detail: str = ""


class _Failure(Exception):
    """Internal control flow: a check failed with this reason."""

    def __init__(self, reason: ProofReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _format_created(created: datetime.datetime | str | None) -> str:
    if isinstance(created, str):
        return created
    moment = created or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_data(proof_config: Mapping[str, Any], document: Mapping[str, Any]) -> bytes:
    try:
        config_hash = hashlib.sha256(rfc8785.dumps(proof_config)).digest()
        document_hash = hashlib.sha256(rfc8785.dumps(document)).digest()
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        # Integers past 2**53, NaN, non-string keys…: not JSON that JCS can sign.
        raise _Failure(ProofReason.NOT_CANONICALISABLE, f"JCS failed: {exc!r}") from None
    return config_hash + document_hash


def create_proof(
    document: Mapping[str, Any],
    private_key: ed25519.Ed25519PrivateKey,
    verification_method: str,
    *,
    created: datetime.datetime | str | None = None,
    proof_purpose: str = "assertionMethod",
    embed_context: bool = True,
) -> dict[str, Any]:
    """Create an ``eddsa-jcs-2022`` proof for a document (any existing proof is ignored).

    Args:
        document: The activity or object, exactly as it will be sent.
        private_key: The actor's Ed25519 key.
        verification_method: The key's id, e.g. ``https://host/users/a#ed25519-key``.
        created: Proof creation time; defaults to now (UTC, second precision).
        proof_purpose: ``assertionMethod`` for activities (FEP-8b32).
        embed_context: Copy the document's ``@context`` into the proof, as Fedify
            and the current FEP-8b32 vector do. The signature is the same either way.

    Returns:
        The proof object to put under the document's ``proof`` key.

    Raises:
        TypeError: The key is not an Ed25519 private key.
        ValueError: The document cannot be canonicalised with JCS.
    """
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise TypeError("eddsa-jcs-2022 needs an Ed25519 private key")
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    config: dict[str, Any] = {
        "type": _PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
        "created": _format_created(created),
    }
    if "@context" in unsecured:
        config["@context"] = copy.deepcopy(unsecured["@context"])
    try:
        data = _hash_data(config, unsecured)
    except _Failure as failure:
        raise ValueError(failure.detail) from None
    proof = dict(config)
    if not embed_context:
        proof.pop("@context", None)
    proof["proofValue"] = "z" + base58btc_encode(private_key.sign(data))
    return proof


def sign_document(
    document: Mapping[str, Any],
    private_key: ed25519.Ed25519PrivateKey,
    verification_method: str,
    **options: Any,
) -> dict[str, Any]:
    """Return a copy of ``document`` with an ``eddsa-jcs-2022`` proof attached.

    ``options`` go to :func:`create_proof`. An existing proof is replaced.
    """
    signed = {k: v for k, v in document.items() if k != "proof"}
    signed["proof"] = create_proof(document, private_key, verification_method, **options)
    return signed


def _select_proof(document: Mapping[str, Any]) -> Mapping[str, Any]:
    proof = document.get("proof")
    if isinstance(proof, list):
        # A proof set: take the first one we can check. Servers send one today.
        candidates = [p for p in proof if isinstance(p, Mapping)]
        for candidate in candidates:
            if candidate.get("cryptosuite") == CRYPTOSUITE:
                return candidate
        proof = candidates[0] if candidates else None
    if proof is None:
        raise _Failure(ProofReason.NO_PROOF, "document has no proof")
    if not isinstance(proof, Mapping):
        raise _Failure(ProofReason.MALFORMED, "proof is not an object")
    return proof


def proof_verification_method(document: Mapping[str, Any]) -> str | None:
    """The key id the document's proof names, so the caller can fetch that key.

    Never raises: anything odd gives None.
    """
    try:
        method = _select_proof(document).get("verificationMethod")
    except Exception:
        return None
    return method if isinstance(method, str) and method else None


def _context_prefix_ok(proof_context: Any, document_context: Any) -> bool:
    """vc-di-eddsa: the document's contexts must start with the proof's, in order."""
    proof_list = proof_context if isinstance(proof_context, list) else [proof_context]
    document_list = document_context if isinstance(document_context, list) else [document_context]
    return document_list[: len(proof_list)] == proof_list


def verify_proof(
    document: Mapping[str, Any],
    public_key: PublicKey | ed25519.Ed25519PublicKey | None,
    *,
    proof_purpose: str = "assertionMethod",
) -> ProofVerdict:
    """Verify a document's ``eddsa-jcs-2022`` proof with the key it names.

    Args:
        document: The received document, with its ``proof``.
        public_key: The Ed25519 key found at :func:`proof_verification_method`,
            or None when it could not be fetched.
        proof_purpose: The purpose the proof must state.

    Returns:
        A :class:`ProofVerdict`. Never raises on hostile input.
    """
    method: str | None = None
    try:
        if not isinstance(document, Mapping):
            raise _Failure(ProofReason.MALFORMED, "document is not an object")
        proof = _select_proof(document)
        method = proof.get("verificationMethod")
        method = method if isinstance(method, str) and method else None
        _check_proof_shape(proof, method, proof_purpose)
        key = _ed25519_key(public_key)
        signature = _decode_proof_value(proof.get("proofValue"))
        unsecured = {k: v for k, v in document.items() if k != "proof"}
        config = {k: v for k, v in proof.items() if k != "proofValue"}
        for candidate in _configs(config, unsecured):
            try:
                key.verify(signature, _hash_data(candidate, unsecured))
                return ProofVerdict(True, ProofReason.OK, method)
            except InvalidSignature:
                continue
        raise _Failure(ProofReason.BAD_SIGNATURE, "proof does not verify")
    except _Failure as failure:
        return ProofVerdict(False, failure.reason, method, failure.detail)
    except Exception as exc:  # a bug, not the peer's fault
        logger.warning("proof verification crashed: %r", exc, exc_info=True)
        return ProofVerdict(False, ProofReason.MALFORMED, method, f"error: {exc!r}")


def _check_proof_shape(proof: Mapping[str, Any], method: str | None, purpose: str) -> None:
    if proof.get("type") != _PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise _Failure(ProofReason.UNSUPPORTED, "only DataIntegrityProof eddsa-jcs-2022")
    if method is None:
        raise _Failure(ProofReason.MALFORMED, "verificationMethod is required")
    if proof.get("proofPurpose") != purpose:
        raise _Failure(ProofReason.WRONG_PURPOSE, f"proofPurpose must be {purpose}")
    created = proof.get("created")
    if created is not None and not _is_datetime(created):
        raise _Failure(ProofReason.MALFORMED, "created is not an XML Schema dateTime")


def _configs(config: dict[str, Any], unsecured: dict[str, Any]) -> list[dict[str, Any]]:
    """The proof configs to try, spec form first (see the module notes)."""
    if "@context" in config:
        if not _context_prefix_ok(config["@context"], unsecured.get("@context")):
            raise _Failure(ProofReason.CONTEXT_MISMATCH, "proof @context is not the document's")
        # vc-di-eddsa: the document is verified under the proof's @context.
        unsecured["@context"] = config["@context"]
        return [config]
    if "@context" not in unsecured:
        return [config]
    return [{**config, "@context": unsecured["@context"]}, config]


def _ed25519_key(
    public_key: PublicKey | ed25519.Ed25519PublicKey | None,
) -> ed25519.Ed25519PublicKey:
    if public_key is None:
        raise _Failure(ProofReason.KEY_UNAVAILABLE, "no key for verificationMethod")
    raw = public_key.key if isinstance(public_key, PublicKey) else public_key
    if not isinstance(raw, ed25519.Ed25519PublicKey):
        raise _Failure(ProofReason.KEY_MISMATCH, "eddsa-jcs-2022 needs an Ed25519 key")
    return raw


def _decode_proof_value(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("z") or len(value) > 200:
        raise _Failure(ProofReason.MALFORMED, "proofValue must be base58btc multibase")
    try:
        signature = base58btc_decode(value[1:])
    except KeyFormatError:
        raise _Failure(ProofReason.MALFORMED, "proofValue is not base58btc") from None
    if len(signature) != 64:
        raise _Failure(ProofReason.MALFORMED, "proofValue is not a 64-byte signature")
    return signature


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
