"""URL facts the protocol code checks over and over: http(s)-ness and origins.

``origin_of`` and ``same_origin`` compare hosts (and ports), not schemes, as
Mastodon does when deciding whether an activity may speak for an actor. The
split is memoised, because the same actor, collection and Public URLs recur in
every activity. :mod:`federation.objects` re-exports all three public names.
"""

from __future__ import annotations

import functools
import re
from typing import Any, TypeGuard
from urllib.parse import urlsplit

_WHITESPACE = re.compile(r"\s")


_MAX_MEMO_URL_CHARS = 2048


def _scheme_and_origin(url: str) -> tuple[str, str | None] | None:
    """(scheme, ``host[:port]``) of a URL; None when it does not split or its port is bad.

    Memoised for URLs of ordinary length: the same actor, collection and Public
    URLs recur in every activity, and ``urlsplit`` is a measurable part of
    reading one. Longer (hostile) strings are not kept.
    """
    if len(url) <= _MAX_MEMO_URL_CHARS:
        return _memo_scheme_and_origin(url)
    return _split_scheme_and_origin(url)


def _split_scheme_and_origin(url: str) -> tuple[str, str | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return parts.scheme, None
    host = parts.hostname.lower()
    return parts.scheme, (f"{host}:{port}" if port is not None else host)


_memo_scheme_and_origin = functools.lru_cache(maxsize=8192)(_split_scheme_and_origin)


def is_http_url(value: Any, *, allow_http: bool = True) -> TypeGuard[str]:
    """Whether ``value`` is an absolute http(s) URL with a host and no whitespace."""
    if not isinstance(value, str) or not value or _WHITESPACE.search(value):
        return False
    facts = _scheme_and_origin(value)
    if facts is None:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return facts[0] in schemes and facts[1] is not None


def origin_of(url: str | None) -> str | None:
    """``host[:port]`` of a URL, lower-cased, or None when it has none.

    Mastodon compares hosts, not schemes, when deciding whether an activity may
    speak for an actor; so do we.
    """
    if not isinstance(url, str):
        return None
    facts = _scheme_and_origin(url)
    return None if facts is None else facts[1]


def same_origin(a: str | None, b: str | None) -> bool:
    """Whether two URLs share a host (and port)."""
    origin = origin_of(a)
    return origin is not None and origin == origin_of(b)
