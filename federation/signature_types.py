"""What both HTTP signature schemes share: result types, the request view, failures.

The public names (``Scheme``, ``Reason``, ``Verdict``, ``SignatureRequest``,
``HeadersInput``, ``DEFAULT_WINDOW_S``) are re-exported by
:mod:`federation.signatures`: import them from there. The underscored ones are
shared by :mod:`federation.cavage` and :mod:`federation.rfc9421`, not API.
"""

from __future__ import annotations

import email.utils
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import SplitResult, urlsplit

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


def _check_time(moment: float, now: float, window_s: float, what: str) -> None:
    if moment - now > window_s:
        raise _Failure(Reason.NOT_YET_VALID, f"{what} is too far in the future")
    if now - moment > window_s:
        raise _Failure(Reason.EXPIRED, f"{what} is too old")


def _add_signed_headers(
    req: _Request, now: float, digest_header: str, digest: Callable[[bytes], str]
) -> tuple[dict[str, str], bool]:
    """Add the Host, Date and body-digest headers a signature covers, where missing.

    Returns the headers added (the caller sends them) and whether the request
    has a body (POSTs without one still sign the empty body's digest).
    """
    added: dict[str, str] = {}
    if req.field("host") is None:
        added["Host"] = req.authority
    if req.field("date") is None:
        added["Date"] = email.utils.formatdate(now, usegmt=True)
    has_body = req.body is not None or req.method not in ("GET", "HEAD")
    if has_body and req.field(digest_header.lower()) is None:
        added[digest_header] = digest(req.body or b"")
    for name, value in added.items():
        req.headers[name.lower()] = [value]
    return added, has_body


def _covered_fields(req: _Request, has_body: bool, digest_field: str) -> list[str]:
    """The header fields a signature covers besides the request line: Mastodon's lists.

    A request with a body covers its digest and content type; one without, its Accept.
    """
    if has_body:
        return [digest_field, *(["content-type"] if req.field("content-type") is not None else [])]
    return ["accept"] if req.field("accept") is not None else []
