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
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import enum
import functools
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from federation.keys import KeyAlgorithm, KeyFormatError, PrivateKey, PublicKey

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

HeadersInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
"""A dict, an aiohttp ``CIMultiDict`` (repeated fields kept) or ``(name, value)`` pairs."""

DEFAULT_WINDOW_S = 3600.0
"""How far ``Date``/``created`` may be from now, either way (Fedify also uses 1 h)."""

_MAX_HEADER_CHARS = 16_384  # a signature header past this is hostile, not big


class Scheme(enum.StrEnum):
    """Which HTTP signature standard a request uses."""

    CAVAGE = "cavage"
    RFC9421 = "rfc9421"


class Reason(enum.StrEnum):
    """Why a verification failed (``OK`` when it did not)."""

    OK = "ok"
    NO_SIGNATURE = "no_signature"
    MALFORMED = "malformed_signature"
    KEY_UNAVAILABLE = "key_unavailable"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    KEY_MISMATCH = "key_algorithm_mismatch"
    MISSING_COMPONENT = "missing_component"
    MISSING_HEADER = "missing_header"
    DIGEST_MISSING = "digest_missing"
    DIGEST_MISMATCH = "digest_mismatch"
    DIGEST_UNSUPPORTED = "digest_unsupported"
    DATE_INVALID = "date_invalid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying a signed request.

    Attributes:
        ok: True only when the signature verified and every policy check passed.
        reason: ``Reason.OK`` or the first check that failed.
        key_id: The key id the signature names (even when it failed).
        scheme: Which standard the request used, when that could be told.
        algorithm: On success the concrete algorithm that verified (RFC 9421 names,
            e.g. ``rsa-v1_5-sha256`` also for cavage ``rsa-sha256``/``hs2019``); on
            failure the algorithm the signature declared, if any.
        detail: Human-readable context for logs; not for branching.
    """

    ok: bool
    reason: Reason
    key_id: str | None = None
    scheme: Scheme | None = None
    algorithm: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class SignatureRequest:
    """One member of an ``Accept-Signature`` header (RFC 9421 §5.1).

    Attributes:
        label: The label the server wants the signature under.
        components: Component names to cover, in order.
        keyid: The key the server asks for, if it names one.
        alg: The algorithm it asks for, if any.
        nonce: A nonce to echo, if any.
        tag: A tag to echo, if any.
        created: Whether it wants a ``created`` parameter.
        expires: Whether it wants an ``expires`` parameter.
    """

    label: str
    components: tuple[str, ...]
    keyid: str | None = None
    alg: str | None = None
    nonce: str | None = None
    tag: str | None = None
    created: bool = False
    expires: bool = False


class _Failure(Exception):
    """Internal control flow: a check failed with this reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Alg(enum.Enum):
    RSA_V15_SHA256 = "rsa-v1_5-sha256"
    RSA_V15_SHA512 = "rsa-v1_5-sha512"
    RSA_PSS_SHA512 = "rsa-pss-sha512"
    ED25519 = "ed25519"


@dataclass
class _Request:
    """A request as the signing code sees it: lower-cased header lists, split URL."""

    method: str
    url: SplitResult
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes | None = None

    def field(self, name: str) -> str | None:
        """A header's value per RFC 9421 §2.1: lines trimmed, joined by ", "."""
        lines = self.headers.get(name)
        if lines is None:
            return None
        return ", ".join(line.strip(" \t") for line in lines)

    @property
    def authority(self) -> str:
        netloc = self.url.netloc.rpartition("@")[2].lower()
        default = {"https": ":443", "http": ":80"}.get(self.url.scheme.lower())
        if default and netloc.endswith(default):
            netloc = netloc[: -len(default)]
        return netloc

    @property
    def path(self) -> str:
        return self.url.path or "/"

    @property
    def path_and_query(self) -> str:
        return self.path + (f"?{self.url.query}" if self.url.query else "")

    @property
    def target_uri(self) -> str:
        return f"{self.url.scheme.lower()}://{self.authority}{self.path_and_query}"


def _request(method: str, url: str, headers: HeadersInput, body: bytes | None) -> _Request:
    items = headers.items() if isinstance(headers, Mapping) else headers
    collected: dict[str, list[str]] = {}
    for name, value in items:
        collected.setdefault(str(name).strip().lower(), []).append(str(value))
    return _Request(str(method).upper(), urlsplit(str(url)), collected, body)


# --------------------------------------------------------------------------- digests


def legacy_digest(body: bytes) -> str:
    """The RFC 3230 ``Digest`` header value cavage signers send: ``SHA-256=<b64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` header value: ``sha-256=:<b64>:``."""
    return http_sf.ser({"sha-256": (hashlib.sha256(body).digest(), {})})


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
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except Exception:  # http_sf raises several types on garbage
        raise _Failure(Reason.DIGEST_MISMATCH, "Content-Digest is not a dictionary") from None
    pairs = []
    for algorithm, (item, _params) in _members(parsed):
        if not isinstance(item, bytes):
            raise _Failure(Reason.DIGEST_MISMATCH, "Content-Digest value is not a byte sequence")
        pairs.append((algorithm, item))
    _check_digests(pairs, body, "Content-Digest")


def _members(parsed: Any) -> list[tuple[str, tuple[Any, dict[str, Any]]]]:
    """Dictionary members as ``(name, (value, params))`` with params always present."""
    out = []
    for name, member in parsed.items():
        if isinstance(member, tuple) and len(member) == 2 and isinstance(member[1], dict):
            out.append((name, member))
        else:
            out.append((name, (member, {})))
    return out


# --------------------------------------------------------------------------- crypto


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


def _check_time(moment: float, now: float, window_s: float, what: str) -> None:
    if moment - now > window_s:
        raise _Failure(Reason.NOT_YET_VALID, f"{what} is too far in the future")
    if now - moment > window_s:
        raise _Failure(Reason.EXPIRED, f"{what} is too old")


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Failure(Reason.MALFORMED, "signature is not base64") from None


# --------------------------------------------------------------------------- cavage

_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() accepts "²"
_CAVAGE_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)'
)


def _parse_cavage(value: str) -> dict[str, str]:
    if len(value) > _MAX_HEADER_CHARS:
        raise _Failure(Reason.MALFORMED, "Signature header too long")
    value = value.strip()
    if value[:10].lower() == "signature ":  # the Authorization: Signature … form
        value = value[10:]
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _CAVAGE_PARAM.match(value, pos)
        if match is None or match.end() == pos:
            raise _Failure(Reason.MALFORMED, "Signature header is not a parameter list")
        name = match.group(1).lower()
        if name in params:
            raise _Failure(Reason.MALFORMED, f"Signature parameter {name!r} repeated")
        quoted = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        pos = match.end()
    return params


def _cavage_header(req: _Request) -> str | None:
    value = req.field("signature")
    if value is None:
        auth = req.field("authorization")
        if auth and auth[:10].lower() == "signature ":
            return auth
    return value


def _cavage_string(req: _Request, names: Sequence[str], params: dict[str, str], target: str) -> str:
    lines = []
    for name in names:
        if name == "(request-target)":
            value = f"{req.method.lower()} {target}"
        elif name in ("(created)", "(expires)"):
            value = params.get(name[1:-1], "")
            if not _DIGITS.fullmatch(value):
                raise _Failure(Reason.MALFORMED, f"{name} covered but the parameter is missing")
        else:
            field_value = req.field(name)
            if field_value is None and name == "host":
                field_value = req.authority  # Fedify does the same when Host is absent
            if field_value is None:
                raise _Failure(Reason.MISSING_HEADER, f"covered header {name!r} is absent")
            value = field_value
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _verify_cavage(
    req: _Request,
    key: PublicKey | None,
    now: float,
    window_s: float,
    require_body_digest: bool,
    allow_queryless_target: bool,
) -> Verdict:
    key_id: str | None = None
    algorithm: str | None = None
    try:
        params = _parse_cavage(_cavage_header(req) or "")
        key_id = params.get("keyid") or None
        algorithm = params.get("algorithm")
        if not key_id or "signature" not in params:
            raise _Failure(Reason.MALFORMED, "keyId and signature are required")
        names = params.get("headers", "date").lower().split()
        for required in ("(request-target)", "host"):
            if required not in names:
                raise _Failure(Reason.MISSING_COMPONENT, f"{required} must be signed")
        if "date" not in names and "(created)" not in names:
            raise _Failure(Reason.MISSING_COMPONENT, "date or (created) must be signed")
        body = req.body or b""
        if body and require_body_digest and "digest" not in names:
            raise _Failure(Reason.MISSING_COMPONENT, "digest must be signed when there is a body")
        if "date" in names:
            date_value = req.field("date")
            if date_value is None:
                raise _Failure(Reason.MISSING_HEADER, "covered header 'date' is absent")
            _check_time(_parse_http_date(date_value), now, window_s, "Date")
        if _DIGITS.fullmatch(params.get("created", "")):
            _check_time(float(params["created"]), now, window_s, "created")
        if _DIGITS.fullmatch(params.get("expires", "")) and float(params["expires"]) < now:
            raise _Failure(Reason.EXPIRED, "signature expired")
        digest_value = req.field("digest")
        if "digest" in names and digest_value is None:
            raise _Failure(Reason.DIGEST_MISSING, "digest is signed but the header is absent")
        if digest_value is not None:
            _check_legacy_digest(digest_value, body)
        if key is None:
            raise _Failure(Reason.KEY_UNAVAILABLE, "no public key for this keyId")
        candidates = _algorithms_for(algorithm, key, Scheme.CAVAGE)
        signature = _b64decode(params["signature"])
        targets = [req.path_and_query]
        if req.url.query and allow_queryless_target:
            targets.append(req.path)  # Fedify / old Mastodon sign the path only
        for target in targets:
            message = _cavage_string(req, names, params, target).encode("utf-8")
            for alg in candidates:
                if _verify_raw(key, alg, signature, message):
                    return Verdict(True, Reason.OK, key_id, Scheme.CAVAGE, alg.value)
        raise _Failure(Reason.BAD_SIGNATURE, "signature does not verify")
    except _Failure as failure:
        return Verdict(False, failure.reason, key_id, Scheme.CAVAGE, algorithm, failure.detail)


def _parse_http_date(value: str) -> float:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _Failure(Reason.DATE_INVALID, "Date header is not an HTTP date") from None
    if parsed.tzinfo is None:  # "-0000" means UTC with unknown local zone
        return parsed.replace(tzinfo=datetime.UTC).timestamp()
    return parsed.timestamp()


def _sign_cavage(req: _Request, key_id: str, private_key: PrivateKey, now: float) -> dict[str, str]:
    added: dict[str, str] = {}
    if req.field("host") is None:
        added["Host"] = req.authority
    if req.field("date") is None:
        added["Date"] = email.utils.formatdate(now, usegmt=True)
    has_body = req.body is not None or req.method not in ("GET", "HEAD")
    if has_body and req.field("digest") is None:
        added["Digest"] = legacy_digest(req.body or b"")
    for name, value in added.items():
        req.headers[name.lower()] = [value]
    # Mastodon's exact lists: POST adds digest and content-type, GET may add accept.
    names = ["(request-target)", "host", "date"]
    if has_body:
        names.append("digest")
        if req.field("content-type") is not None:
            names.append("content-type")
    elif req.field("accept") is not None:
        names.append("accept")
    message = _cavage_string(req, names, {}, req.path_and_query).encode("utf-8")
    algorithm = "ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "rsa-sha256"
    signature = base64.b64encode(_sign_raw(private_key, message)).decode("ascii")
    added["Signature"] = (
        f'keyId="{_quote(key_id)}",algorithm="{algorithm}",'
        f'headers="{" ".join(names)}",signature="{signature}"'
    )
    return added


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# --------------------------------------------------------------------------- RFC 9421

_REQUEST_DERIVED: dict[str, Callable[[_Request], str]] = {
    "@method": lambda r: r.method,
    "@target-uri": lambda r: r.target_uri,
    "@authority": lambda r: r.authority,
    "@scheme": lambda r: r.url.scheme.lower(),
    # RFC 9421's @request-target has no method prefix (unlike cavage's); Fedify's
    # own implementation gets this wrong, but its default components skip it.
    "@request-target": lambda r: r.path_and_query,
    "@path": lambda r: r.path,
    "@query": lambda r: f"?{r.url.query}",
}


# The shapes every signer sends (Mastodon, Fedify, GoToSocial, us): a dictionary
# of byte sequences (``Signature``) or of inner lists of plain strings with string
# and integer parameters (``Signature-Input``). Anything else goes to http_sf.
_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_STRING = r'"[ !#-\[\]-~]*"'  # printable ASCII without escapes
_SF_INTEGER = r"-?[0-9]{1,15}"
_SF_PARAMS = rf"(?:;{_SF_KEY}=(?:{_SF_STRING}|{_SF_INTEGER}))*"
_FAST_BYTES_MEMBER = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]*):")
_FAST_LIST_MEMBER = re.compile(
    rf"({_SF_KEY})=\(((?:{_SF_STRING}(?: {_SF_STRING})*)?)\)({_SF_PARAMS})"
)
_FAST_PARAM = re.compile(rf";({_SF_KEY})=({_SF_STRING}|{_SF_INTEGER})")
_FAST_STRING = re.compile(_SF_STRING)
_MEMBER_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


def _fast_member(text: str) -> tuple[str, tuple[Any, dict[str, Any]]] | None:
    match = _FAST_BYTES_MEMBER.fullmatch(text)
    if match is not None:
        if len(match[2]) % 4:
            return None  # unpadded: http_sf's leniency decides
        return match[1], (base64.b64decode(match[2]), {})
    match = _FAST_LIST_MEMBER.fullmatch(text)
    if match is None:
        return None
    items = [(item[1:-1], {}) for item in _FAST_STRING.findall(match[2])]
    params: dict[str, Any] = {}
    for key, raw in _FAST_PARAM.findall(match[3]):
        params[key] = raw[1:-1] if raw.startswith('"') else int(raw)
    return match[1], (items, params)


def _fast_dictionary(value: str) -> tuple[tuple[str, tuple[Any, dict[str, Any]]], ...] | None:
    """The common signature dictionaries, parsed with regular expressions; None otherwise.

    http_sf checks every character in Python, which made header parsing a
    tenth of an inbox POST's cost. A member seen twice keeps the last value
    (RFC 8941 §4.2.2) but its first position; dict() below does the same.
    """
    members: dict[str, tuple[Any, dict[str, Any]]] = {}
    for text in _MEMBER_SEPARATOR.split(value.strip(" ")):
        member = _fast_member(text)
        if member is None:
            return None
        members[member[0]] = member[1]
    return tuple(members.items())


@functools.lru_cache(maxsize=64)
def _parsed_dictionary(value: str) -> tuple[tuple[str, tuple[Any, dict[str, Any]]], ...] | None:
    """A structured-field dictionary's members, or None if ``value`` is not one.

    Memoised: a request's ``Signature`` and ``Signature-Input`` are read three
    times on the way in (key id for the block check, key lookup, verification),
    and http_sf's pure-Python parser is a visible part of an inbox POST's cost.
    Callers must not mutate what they get.
    """
    fast = _fast_dictionary(value)
    if fast is not None:
        return fast
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except Exception:  # UnicodeEncodeError, StructuredFieldError, …
        return None
    return tuple(_members(parsed))


def _parse_dictionary(req: _Request, name: str) -> dict[str, tuple[Any, dict[str, Any]]]:
    value = req.field(name)
    if value is None:
        return {}
    if len(value) > _MAX_HEADER_CHARS:
        raise _Failure(Reason.MALFORMED, f"{name} header too long")
    members = _parsed_dictionary(value)
    if members is None:
        raise _Failure(Reason.MALFORMED, f"{name} is not a structured dictionary")
    return dict(members)


def _pick_label(req: _Request, label: str | None) -> tuple[str, Any, dict[str, Any], Any]:
    inputs = _parse_dictionary(req, "signature-input")
    signatures = _parse_dictionary(req, "signature")
    labels = [label] if label is not None else [name for name in inputs if name in signatures]
    if not labels or labels[0] not in inputs or labels[0] not in signatures:
        raise _Failure(Reason.MALFORMED, "no Signature-Input member with a matching Signature")
    chosen = labels[0]
    items, params = inputs[chosen]
    if not isinstance(items, list):
        raise _Failure(Reason.MALFORMED, "Signature-Input member is not an inner list")
    return chosen, items, params, signatures[chosen][0]


def _component_value(req: _Request, name: str, params: dict[str, Any]) -> str:
    if name.startswith("@"):
        if name == "@query-param" and set(params) == {"name"}:
            return _query_param(req, str(params["name"]))
        derived = _REQUEST_DERIVED.get(name)
        if derived is None or params:
            raise _Failure(Reason.MALFORMED, f"component {name!r} is not supported here")
        return derived(req)
    if name != name.lower() or not name:
        raise _Failure(Reason.MALFORMED, f"component {name!r} must be lower case")
    value = req.field(name)
    if value is None:
        raise _Failure(Reason.MISSING_HEADER, f"covered header {name!r} is absent")
    if not params:
        return value
    if set(params) == {"sf"} and params["sf"] is True:
        try:
            return http_sf.ser(http_sf.parse(value.encode("ascii"), name=name))
        except Exception:
            raise _Failure(Reason.MALFORMED, f"{name!r} is not a known structured field") from None
    if set(params) == {"key"}:
        try:
            parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
            return http_sf.ser([parsed[str(params["key"])]])
        except Exception:
            raise _Failure(Reason.MISSING_HEADER, f"{name!r} lacks {params['key']!r}") from None
    if set(params) == {"bs"} and params["bs"] is True:
        encoded = (base64.b64encode(line.strip(" \t").encode()) for line in req.headers[name])
        return ", ".join(f":{line.decode()}:" for line in encoded)
    raise _Failure(Reason.MALFORMED, f"component parameters {sorted(params)} are not supported")


def _query_param(req: _Request, name: str) -> str:
    # RFC 9421 §2.2.8: names and values are form-decoded, then percent-encoded.
    pairs = parse_qsl(req.url.query, keep_blank_values=True)
    values = [v for k, v in pairs if quote(k, safe="") == name]
    if len(values) != 1:
        raise _Failure(Reason.MISSING_HEADER, f"query parameter {name!r} absent or repeated")
    return quote(values[0], safe="")


_MAX_SF_INTEGER = 999_999_999_999_999


def _ser_bare(value: Any) -> str | None:
    """RFC 8941 serialisation of the bare items signatures use; None for anything else."""
    if isinstance(value, http_sf.Token):
        return str(value)
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value) if abs(value) <= _MAX_SF_INTEGER else None
    if isinstance(value, str):
        if not value.isascii() or not value.isprintable():
            return None
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    return None


def _ser_item(value: Any, params: Mapping[str, Any]) -> str:
    """An item or inner list with parameters, serialised as http_sf would, only faster.

    http_sf checks every character in Python; a signature base serialises a
    dozen values per request. Anything unusual is left to http_sf.
    """
    if isinstance(value, list):
        parts = []
        for member in value:
            name, member_params = member if isinstance(member, tuple) else (member, {})
            parts.append(_ser_item(name, member_params))
        out = "(" + " ".join(parts) + ")"
    else:
        bare = _ser_bare(value)
        if bare is None:
            return http_sf.ser_item((value, dict(params)))
        out = bare
    for key, param in params.items():
        if param is True:
            out += ";" + key
            continue
        bare = _ser_bare(param)
        if bare is None:
            return http_sf.ser_item((value, dict(params)))
        out += f";{key}={bare}"
    return out


def _signature_base(
    req: _Request, items: Sequence[Any], label: str, params: dict[str, Any]
) -> bytes:
    lines = []
    seen: set[str] = set()
    for item in items:
        name, item_params = item if isinstance(item, tuple) else (item, {})
        if not isinstance(name, str) or isinstance(name, http_sf.Token):
            raise _Failure(Reason.MALFORMED, "component identifiers must be strings")
        identifier = _ser_item(name, item_params)
        if identifier in seen or name == "@signature-params":
            raise _Failure(Reason.MALFORMED, f"component {identifier} repeated or reserved")
        seen.add(identifier)
        value = _component_value(req, name, item_params)
        if "\n" in value or "\r" in value:
            raise _Failure(Reason.MALFORMED, f"component {identifier} contains a newline")
        lines.append(f"{identifier}: {value}")
    signature_params = _ser_item(list(items), params)
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("utf-8")


def _verify_rfc9421(
    req: _Request,
    key: PublicKey | None,
    now: float,
    window_s: float,
    require_body_digest: bool,
    label: str | None,
) -> Verdict:
    key_id: str | None = None
    algorithm: str | None = None
    try:
        chosen, items, params, signature = _pick_label(req, label)
        key_id = params.get("keyid") if isinstance(params.get("keyid"), str) else None
        algorithm = params.get("alg") if isinstance(params.get("alg"), str) else None
        if key_id is None:
            raise _Failure(Reason.MALFORMED, "keyid parameter is required")
        if not isinstance(signature, bytes):
            raise _Failure(Reason.MALFORMED, "Signature member is not a byte sequence")
        names = {item[0] if isinstance(item, tuple) else item for item in items}
        _require_rfc9421_components(names, req, require_body_digest)
        created = params.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            raise _Failure(Reason.MALFORMED, "created parameter is required")
        _check_time(float(created), now, window_s, "created")
        expires = params.get("expires")
        if isinstance(expires, int) and not isinstance(expires, bool) and expires < now:
            raise _Failure(Reason.EXPIRED, "signature expired")
        digest_value = req.field("content-digest")
        if "content-digest" in names and digest_value is None:
            raise _Failure(Reason.DIGEST_MISSING, "content-digest is signed but absent")
        if digest_value is not None:
            _check_content_digest(digest_value, req.body or b"")
        if key is None:
            raise _Failure(Reason.KEY_UNAVAILABLE, "no public key for this keyid")
        candidates = _algorithms_for(algorithm, key, Scheme.RFC9421)
        base = _signature_base(req, items, chosen, params)
        for alg in candidates:
            if _verify_raw(key, alg, signature, base):
                return Verdict(True, Reason.OK, key_id, Scheme.RFC9421, alg.value)
        raise _Failure(Reason.BAD_SIGNATURE, "signature does not verify")
    except _Failure as failure:
        return Verdict(False, failure.reason, key_id, Scheme.RFC9421, algorithm, failure.detail)


def _require_rfc9421_components(names: set[Any], req: _Request, require_body_digest: bool) -> None:
    if "@method" not in names:
        raise _Failure(Reason.MISSING_COMPONENT, "@method must be signed")
    covers_path = bool(names & {"@path", "@request-target"})
    covers_host = bool(names & {"@authority", "host"})
    if "@target-uri" not in names and not (covers_path and covers_host):
        raise _Failure(
            Reason.MISSING_COMPONENT, "@target-uri (or @authority and @path) must be signed"
        )
    if req.body and require_body_digest and "content-digest" not in names:
        raise _Failure(Reason.MISSING_COMPONENT, "content-digest must be signed with a body")


def _sign_rfc9421(
    req: _Request,
    key_id: str,
    private_key: PrivateKey,
    now: float,
    accept: SignatureRequest | None,
) -> dict[str, str]:
    added: dict[str, str] = {}
    if req.field("host") is None:
        added["Host"] = req.authority
    if req.field("date") is None:
        added["Date"] = email.utils.formatdate(now, usegmt=True)
    has_body = req.body is not None or req.method not in ("GET", "HEAD")
    if has_body and req.field("content-digest") is None:
        added["Content-Digest"] = content_digest(req.body or b"")
    for name, value in added.items():
        req.headers[name.lower()] = [value]
    alg = "ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "rsa-v1_5-sha256"
    label = "sig1"
    if accept is not None:
        if accept.alg is not None and accept.alg != alg:
            raise ValueError(f"server asks for {accept.alg!r} but the key signs {alg!r}")
        label, components = accept.label, list(accept.components)
    else:
        components = ["@method", "@target-uri", "@authority"]
        if has_body:
            components.append("content-digest")
            if req.field("content-type") is not None:
                components.append("content-type")
        elif req.field("accept") is not None:
            components.append("accept")
    params: dict[str, Any] = {"created": int(now), "keyid": key_id, "alg": alg}
    if accept is not None:
        if accept.expires:
            params["expires"] = int(now) + 300
        if accept.nonce is not None:
            params["nonce"] = accept.nonce
        if accept.tag is not None:
            params["tag"] = accept.tag
    items = [(name, {}) for name in components]
    try:
        base = _signature_base(req, items, label, params)
    except _Failure as failure:
        raise ValueError(f"cannot sign: {failure.detail}") from None
    signature = _sign_raw(private_key, base)
    added["Signature-Input"] = http_sf.ser({label: (items, params)})
    added["Signature"] = http_sf.ser({label: (signature, {})})
    return added


def parse_accept_signature(value: str) -> list[SignatureRequest]:
    """Parse an ``Accept-Signature`` header (RFC 9421 §5.1) into signing requests.

    Members that are not inner lists of plain component names (for example ones
    asking for ``;sf`` or ``;key`` variants) are skipped: we cannot honour them.
    A requested ``keyid`` is only reported; choosing the key is the caller's job.

    Args:
        value: The header value.

    Returns:
        The requests in header order; empty when the header is garbage.
    """
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except Exception:
        return []
    out = []
    for label, (items, params) in _members(parsed):
        if not isinstance(items, list):
            continue
        names = [i[0] if isinstance(i, tuple) and not i[1] else i for i in items]
        if not all(isinstance(n, str) and not isinstance(n, http_sf.Token) for n in names):
            continue

        def text(key: str, params: dict[str, Any] = params) -> str | None:
            item = params.get(key)
            return item if isinstance(item, str) else None

        out.append(
            SignatureRequest(
                label=label,
                components=tuple(names),
                keyid=text("keyid"),
                alg=text("alg"),
                nonce=text("nonce"),
                tag=text("tag"),
                created=params.get("created") is True,
                expires=params.get("expires") is True,
            )
        )
    return out


# --------------------------------------------------------------------------- public API


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
