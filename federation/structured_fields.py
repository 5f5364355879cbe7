"""RFC 8941 structured fields, as much as HTTP signatures need, with fast paths.

http_sf is the reference and the fallback, but it checks every character in
Python, which made the signature headers a visible part of an inbox POST's cost.
:func:`_fast_dictionary` (regular expressions for the shapes every signer sends)
and :func:`_ser_item` handle the common cases and leave anything unusual to
http_sf; tests/federation/test_signatures.py fuzzes both against it. Internal
to :mod:`federation.signatures`.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from typing import Any

import http_sf
import http_sf.item


def _members(parsed: Any) -> list[tuple[str, tuple[Any, dict[str, Any]]]]:
    """Dictionary members as ``(name, (value, params))`` with params always present."""
    out = []
    for name, member in parsed.items():
        if isinstance(member, tuple) and len(member) == 2 and isinstance(member[1], dict):
            out.append((name, member))
        else:
            out.append((name, (member, {})))
    return out


# The shapes every signer sends (Mastodon, Fedify, GoToSocial, us): a dictionary
# of byte sequences (``Signature``) or of inner lists of plain strings with string
# and integer parameters (``Signature-Input``). Anything else goes to http_sf.
_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_STRING = r'"[ !#-\[\]-~]*"'  # printable ASCII without escapes
_SF_INTEGER = r"-?[0-9]{1,15}"
_SF_PARAMS = rf"(?:;{_SF_KEY}=(?:{_SF_STRING}|{_SF_INTEGER}))*"
_FAST_BYTES_MEMBER = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]*={{0,2}}):")
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
    items: list[tuple[str, dict[str, Any]]] = [
        (item[1:-1], {}) for item in _FAST_STRING.findall(match[2])
    ]
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


@functools.lru_cache(maxsize=512)
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
            return http_sf.item.ser_item((value, dict(params)))
        out = bare
    for key, param in params.items():
        if param is True:
            out += ";" + key
            continue
        bare = _ser_bare(param)
        if bare is None:
            return http_sf.item.ser_item((value, dict(params)))
        out += f";{key}={bare}"
    return out


def serialize_dictionary(members: Mapping[str, tuple[Any, Mapping[str, Any]]]) -> str:
    """RFC 8941 serialisation of a dictionary, as ``http_sf.ser`` gives, only faster.

    Used for the ``Signature-Input`` and ``Signature`` headers of every signed
    request (a fan-out makes thousands); unusual items still go through http_sf.
    """
    parts = []
    for key, (value, params) in members.items():
        if value is True:
            parts.append(key + _ser_item(True, params)[2:])  # a bare key: "?1" left out
        else:
            parts.append(f"{key}={_ser_item(value, params)}")
    return ", ".join(parts)
