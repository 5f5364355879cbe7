"""The signature algorithms both schemes use: raw sign and verify, and which to try.

Cavage and RFC 9421 name algorithms differently (``rsa-sha256`` / ``hs2019`` versus
``rsa-v1_5-sha256``); :func:`_algorithms_for` maps a declared name and a key onto
:class:`_Alg`. Internal to :mod:`federation.signatures`.
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from federation.keys import KeyAlgorithm, PrivateKey, PublicKey
from federation.signature_types import Reason, Scheme, _Failure


class _Alg(enum.Enum):
    RSA_V15_SHA256 = "rsa-v1_5-sha256"
    RSA_V15_SHA512 = "rsa-v1_5-sha512"
    RSA_PSS_SHA512 = "rsa-pss-sha512"
    ED25519 = "ed25519"


def _coerce_key(key: PublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> PublicKey:
    return key if isinstance(key, PublicKey) else PublicKey(key)


def _verify_raw(key: PublicKey, alg: _Alg, signature: bytes, message: bytes) -> bool:
    try:
        if alg is _Alg.ED25519:
            if not isinstance(key.key, ed25519.Ed25519PublicKey):
                return False
            key.key.verify(signature, message)
            return True
        if not isinstance(key.key, rsa.RSAPublicKey):
            return False
        if alg is _Alg.RSA_PSS_SHA512:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
            key.key.verify(signature, message, pss, hashes.SHA512())
        else:
            digest = hashes.SHA256() if alg is _Alg.RSA_V15_SHA256 else hashes.SHA512()
            key.key.verify(signature, message, padding.PKCS1v15(), digest)
        return True
    except (InvalidSignature, ValueError):
        return False


def _sign_raw(private_key: PrivateKey, message: bytes) -> bytes:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message)
    return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _algorithms_for(name: str | None, key: PublicKey, scheme: Scheme) -> list[_Alg]:
    """Which concrete algorithms to try for a declared algorithm name and a key."""
    rsa_key = key.algorithm is KeyAlgorithm.RSA
    name = name.lower() if name else None
    if name is None or (scheme is Scheme.CAVAGE and name == "hs2019"):
        # Infer from the key (RFC 9421 §3.2 allows this; cavage's hs2019 means the
        # same). The fediverse's RSA is PKCS#1 v1.5 + SHA-256; the cavage draft's
        # hs2019 and RFC 9421's own examples use PSS + SHA-512. Trying both is
        # safe: either way only the key holder could have made the signature.
        return [_Alg.RSA_V15_SHA256, _Alg.RSA_PSS_SHA512] if rsa_key else [_Alg.ED25519]
    table = {
        Scheme.CAVAGE: {
            "rsa-sha256": _Alg.RSA_V15_SHA256,
            "rsa-sha512": _Alg.RSA_V15_SHA512,
            "ed25519": _Alg.ED25519,
        },
        Scheme.RFC9421: {
            "rsa-v1_5-sha256": _Alg.RSA_V15_SHA256,
            "rsa-pss-sha512": _Alg.RSA_PSS_SHA512,
            "ed25519": _Alg.ED25519,
        },
    }[scheme]
    alg = table.get(name)
    if alg is None:
        raise _Failure(Reason.UNSUPPORTED_ALGORITHM, f"algorithm {name!r} is not supported")
    if (alg is _Alg.ED25519) == rsa_key:
        raise _Failure(Reason.KEY_MISMATCH, f"{name!r} does not fit a {key.algorithm} key")
    return [alg]
