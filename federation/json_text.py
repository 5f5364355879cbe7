"""JSON text exactly as ActivityPub allows it: UTF-8, finite numbers, Unicode strings.

Python's :func:`json.loads` is more lenient than a federated server can afford
to be with bytes from strangers:

- given bytes, it guesses UTF-16 and UTF-32 from the first bytes, so a body
  that later code decodes as UTF-8 (to store it, to sign it) fails there;
- it turns ``\\ud800`` escapes into strings holding a lone surrogate, which no
  UTF-8 encoder (SQLite's, a socket's, ``str.encode``) accepts;
- it accepts ``NaN``, ``Infinity`` and ``1e999`` (not JSON; infinite floats)
  and integers of thousands of digits (no database column holds them).

:func:`loads` refuses all of these with :class:`JsonTextError` (a ValueError),
so that a document either is clean text for every later step or is refused
before anything is stored (RFC 8259 §8.1: JSON exchanged between systems that
are not part of a closed ecosystem MUST be UTF-8; no byte order mark).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

MAX_INTEGER = 2**63 - 1
"""Integers beyond a signed 64-bit value are refused (no database column takes them)."""

# An escaped UTF-16 surrogate (high or low). Only documents that contain one
# need the slower check of every string.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abAB]|\\u[dD][c-fC-F]")


class JsonTextError(ValueError):
    """Not UTF-8 JSON text as ActivityPub allows it; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JsonTextError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonTextError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    # Longer than any 64-bit value: refused before int() spends time on it.
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INTEGER:
        raise JsonTextError(f"integer {text[:40]} is out of range")
    return value


def decode_utf8(data: bytes) -> str:
    """The text of UTF-8 bytes, strictly (no BOM, no encoded surrogates, no other encoding).

    Raises:
        JsonTextError: the bytes are not UTF-8 text.
    """
    if data.startswith(codecs.BOM_UTF8):
        raise JsonTextError("JSON must be UTF-8 without a byte order mark")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Python's UTF-8 codec also refuses encoded surrogates and overlong forms.
        raise JsonTextError(
            f"not UTF-8 ({exc.reason} at byte {exc.start}); JSON must be UTF-8"
        ) from None


def _check_strings(doc: Any) -> None:
    """Refuse any key or string value that is not valid Unicode (a lone surrogate)."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            strings: list[Any] = [value]
        elif isinstance(value, dict):
            strings = list(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
            continue
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonTextError(
                    "a string holds a lone UTF-16 surrogate (an escape such as \\ud800), "
                    "which is not Unicode text"
                ) from None


def loads(data: bytes | str) -> Any:
    """Parse JSON text strictly (see the module's docstring).

    Raises:
        JsonTextError: not UTF-8, not JSON, a string that is not Unicode, a number
            out of range.
        RecursionError: nested too deeply for the parser (callers map it).
    """
    text = decode_utf8(data) if isinstance(data, bytes | bytearray) else data
    try:
        doc = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float,
            parse_int=_bounded_int,
        )  # fmt: skip
    except JsonTextError:
        raise
    except ValueError as exc:
        raise JsonTextError(f"not a JSON document: {exc}") from None
    if "\\u" in text and _ESCAPED_SURROGATE.search(text):
        _check_strings(doc)
    return doc
