"""Key pairs for signing: RSA and Ed25519, as PEM and as FEP-521a Multikey.

Everything here is pure: functions on ``str``/``bytes`` and key objects, no I/O.
Garbage in gives a :class:`KeyFormatError`, never a bare ``ValueError`` from the
crypto library, so callers can treat "the remote actor published a broken key" as
one case.

Interop notes:

* Mastodon, Fedify, GoToSocial publish RSA keys as SPKI PEM
  (``-----BEGIN PUBLIC KEY-----``). Misskey (at least until 2019), Funkwhale and
  Mobilizon publish PKCS#1 (``-----BEGIN RSA PUBLIC KEY-----``); both load here.
* FEP-521a ``publicKeyMultibase`` is base58btc (prefix ``z``) of a multicodec
  varint followed by the key: ``0xed01`` + 32 raw bytes for Ed25519 (Mitra,
  Fedify's ``#ed25519-key``/``#multikey-2``), ``0x1205`` + DER PKCS#1
  ``RSAPublicKey`` for RSA (Fedify's ``#multikey-1``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

__all__ = [
    "KeyAlgorithm",
    "KeyFormatError",
    "PrivateKey",
    "PublicKey",
    "base58btc_decode",
    "base58btc_encode",
    "ed25519_private_key_from_multibase",
    "ed25519_private_key_to_multibase",
    "generate_ed25519_key",
    "generate_rsa_key",
    "load_private_key_pem",
    "private_key_to_pem",
    "public_key_of",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
"""A private key this library can sign with."""

_RawPublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# Multicodec prefixes (unsigned varints) from the multiformats table.
_ED25519_PUB = b"\xed\x01"  # ed25519-pub, 0xed
_ED25519_PRIV = b"\x80\x26"  # ed25519-priv, 0x1300
_RSA_PUB = b"\x85\x24"  # rsa-pub, 0x1205

# Smaller RSA keys are breakable; larger ones are a cheap way for a hostile peer to
# make us burn CPU. Mastodon uses 2048 bits, Fedify 4096.
_MIN_RSA_BITS = 1024
_MAX_RSA_BITS = 16384

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
# A public key PEM is small; refuse megabytes of "PEM" before parsing it.
_MAX_PEM_CHARS = 20_000
_MAX_MULTIBASE_CHARS = 4_000


class KeyFormatError(ValueError):
    """A key could not be parsed, or is of a kind we do not support."""


class KeyAlgorithm(enum.StrEnum):
    """The signature algorithm family a key belongs to."""

    RSA = "rsa"
    ED25519 = "ed25519"


@dataclass(frozen=True, eq=False)
class PublicKey:
    """A public key that knows its algorithm.

    Compare keys with ``==``: two keys are equal when their SPKI encodings are.

    Attributes:
        key: The underlying ``cryptography`` key object.
    """

    key: _RawPublicKey

    def __post_init__(self) -> None:
        if isinstance(self.key, rsa.RSAPublicKey):
            bits = self.key.key_size
            if not _MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
                raise KeyFormatError(f"RSA key of {bits} bits is out of bounds")
        elif not isinstance(self.key, ed25519.Ed25519PublicKey):
            raise KeyFormatError(f"unsupported key type {type(self.key).__name__}")

    @property
    def algorithm(self) -> KeyAlgorithm:
        """The key's algorithm family."""
        if isinstance(self.key, rsa.RSAPublicKey):
            return KeyAlgorithm.RSA
        return KeyAlgorithm.ED25519

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PublicKey:
        """Load a public key from PEM: SPKI, or PKCS#1 for RSA.

        Args:
            pem: The PEM text, as found in an actor's ``publicKeyPem``.

        Returns:
            The key.

        Raises:
            KeyFormatError: The text is not a supported public key.
        """
        data = _pem_bytes(pem)
        try:
            # Handles both SPKI and PKCS#1 ("RSA PUBLIC KEY", Misskey/Funkwhale).
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"not a public key PEM: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise KeyFormatError(f"unsupported key type {type(key).__name__}")
        return cls(key)

    @classmethod
    def from_multibase(cls, value: str) -> PublicKey:
        """Load a FEP-521a ``publicKeyMultibase`` value (Ed25519 or RSA).

        Raises:
            KeyFormatError: Not base58btc, unknown multicodec, or a bad key.
        """
        raw = _multibase_decode(value)
        if raw.startswith(_ED25519_PUB):
            body = raw[len(_ED25519_PUB) :]
            if len(body) != 32:
                raise KeyFormatError("Ed25519 multikey must hold 32 bytes")
            try:
                return cls(ed25519.Ed25519PublicKey.from_public_bytes(body))
            except ValueError as exc:
                raise KeyFormatError(f"bad Ed25519 multikey: {exc}") from None
        if raw.startswith(_RSA_PUB):
            try:
                # The multicodec body is a DER PKCS#1 RSAPublicKey.
                key = serialization.load_der_public_key(raw[len(_RSA_PUB) :])
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise KeyFormatError(f"bad RSA multikey: {exc}") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise KeyFormatError("RSA multikey does not hold an RSA key")
            return cls(key)
        raise KeyFormatError("unsupported multicodec in multikey")

    def to_pem(self) -> str:
        """Serialise as SPKI PEM (``-----BEGIN PUBLIC KEY-----``)."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def to_multibase(self) -> str:
        """Serialise as a FEP-521a ``publicKeyMultibase`` value."""
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return "z" + base58btc_encode(_ED25519_PUB + raw)
        der = self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return "z" + base58btc_encode(_RSA_PUB + der)

    def _spki(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._spki() == other._spki()

    def __hash__(self) -> int:
        return hash(self._spki())

    def __repr__(self) -> str:
        return f"PublicKey({self.algorithm.value}, {self.to_multibase()[:16]}…)"


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """Generate an RSA private key (public exponent 65537).

    Args:
        bits: Key size; 2048 matches Mastodon.
    """
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519_key() -> ed25519.Ed25519PrivateKey:
    """Generate an Ed25519 private key."""
    return ed25519.Ed25519PrivateKey.generate()


def public_key_of(private_key: PrivateKey) -> PublicKey:
    """The :class:`PublicKey` half of a private key."""
    return PublicKey(private_key.public_key())


def private_key_to_pem(private_key: PrivateKey) -> str:
    """Serialise a private key as unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key_pem(pem: str | bytes, *, own: bool = False) -> PrivateKey:
    """Load an unencrypted private key from PEM (PKCS#8, or PKCS#1 for RSA).

    Args:
        pem: The key.
        own: The key was generated by us and stored where only we write: the
            RSA consistency check (about 30 ms of CPU for 2048 bits, blocking
            the event loop) is skipped, as cryptography allows for trusted keys.

    Raises:
        KeyFormatError: Not an unencrypted RSA or Ed25519 private key.
    """
    data = _pem_bytes(pem)
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=own
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a private key PEM: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyFormatError(f"unsupported key type {type(key).__name__}")
    return key


def ed25519_private_key_from_multibase(value: str) -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 ``secretKeyMultibase`` (multicodec ``0x1300``).

    This is the form the W3C vc-di-eddsa and FEP-8b32 test vectors use.

    Raises:
        KeyFormatError: Not a base58btc ed25519-priv multikey.
    """
    raw = _multibase_decode(value)
    if not raw.startswith(_ED25519_PRIV) or len(raw) != len(_ED25519_PRIV) + 32:
        raise KeyFormatError("not an Ed25519 secret multikey")
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw[len(_ED25519_PRIV) :])


def ed25519_private_key_to_multibase(private_key: ed25519.Ed25519PrivateKey) -> str:
    """Serialise an Ed25519 private key as ``secretKeyMultibase``."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return "z" + base58btc_encode(_ED25519_PRIV + raw)


def base58btc_encode(data: bytes) -> str:
    """Encode bytes in the Bitcoin base58 alphabet (no multibase prefix)."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    """Decode Bitcoin base58 (no multibase prefix).

    Raises:
        KeyFormatError: A character outside the alphabet.
    """
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise KeyFormatError("invalid base58 character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _multibase_decode(value: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("z"):
        raise KeyFormatError("multibase value must be base58btc (prefix 'z')")
    if len(value) > _MAX_MULTIBASE_CHARS:
        raise KeyFormatError("multibase value too long")
    return base58btc_decode(value[1:])


_PEM_ARMOUR = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----.*?-----END [A-Z0-9 ]+-----", re.S)


def _pem_bytes(pem: str | bytes) -> bytes:
    if isinstance(pem, str):
        pem = pem.encode("utf-8", "replace")
    if not isinstance(pem, bytes):
        raise KeyFormatError("PEM must be str or bytes")
    if len(pem) > _MAX_PEM_CHARS:
        raise KeyFormatError("PEM too long")
    # Some servers send CRLF or stray whitespace around the armour; cryptography
    # is strict about what comes before the BEGIN line.
    match = _PEM_ARMOUR.search(pem.replace(b"\r\n", b"\n"))
    if match is None:
        raise KeyFormatError("no PEM armour found")
    return match.group(0) + b"\n"
