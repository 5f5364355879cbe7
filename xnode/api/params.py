"""Reading an API request's parameters, wherever the client put them.

Mastodon's clients send parameters as a JSON body, a urlencoded or multipart form, or
the query string, and arrays as ``name[]`` (forms) or JSON lists; this reads them all
the same way. Wrong types and malformed bodies are clear 4xx errors, never a 500.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation import json_text
from xnode.api.pagination import parse_id
from xnode.errors import InvalidInput, PayloadTooLarge
from xnode.web.forms import is_text, read_form

_TRUE = frozenset({"true", "1", "on", "yes", "t"})
_FALSE = frozenset({"false", "0", "off", "no", "f", ""})
MAX_JSON_BYTES = 1024 * 1024


class Params:
    """A request's parameters: body fields first, then the query string."""

    def __init__(self, values: dict[str, Any], files: dict[str, web.FileField]) -> None:
        self._values = values
        self._files = files

    def has(self, name: str) -> bool:
        """Whether the client sent the parameter at all."""
        return name in self._values or f"{name}[]" in self._values or name in self._files

    def raw(self, name: str) -> Any:
        """The value as sent (None when absent)."""
        return self._values.get(name, self._values.get(f"{name}[]"))

    def text(self, name: str, default: str = "", *, max_length: int = 100_000) -> str:
        """A string parameter.

        Raises:
            InvalidInput: not a string (a JSON number is taken as its text), or too long.
        """
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidInput(f"{name} must be a string.", field=name)
        text = str(value)
        if len(text) > max_length:
            raise InvalidInput(f"{name} is too long (at most {max_length} characters).",
                               field=name)  # fmt: skip
        return text

    def optional_text(self, name: str, *, max_length: int = 100_000) -> str | None:
        """A string parameter, or None when absent."""
        return self.text(name, max_length=max_length) if self.has(name) else None

    def boolean(self, name: str, default: bool = False) -> bool:
        """A boolean parameter (``true``/``false``, ``1``/``0``, JSON booleans).

        Raises:
            InvalidInput: anything else.
        """
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str) and value.lower() in _TRUE:
            return True
        if isinstance(value, str) and value.lower() in _FALSE:
            return False
        raise InvalidInput(f"{name} must be true or false.", field=name)

    def integer(self, name: str, default: int | None = None, *, low: int = 0,
                high: int = 2**31) -> int | None:  # fmt: skip
        """An integer parameter within ``low``..``high``.

        Raises:
            InvalidInput: not an integer, or out of range.
        """
        value = self.raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise InvalidInput(f"{name} must be a number.", field=name)
        if isinstance(value, str):
            if not (value.lstrip("-").isascii() and value.lstrip("-").isdigit()) or len(value) > 20:
                raise InvalidInput(f"{name} must be a number.", field=name)
            value = int(value)
        if not isinstance(value, int):
            raise InvalidInput(f"{name} must be a number.", field=name)
        if not low <= value <= high:
            raise InvalidInput(f"{name} must be between {low} and {high}.", field=name)
        return value

    def id(self, name: str) -> int | None:
        """An id parameter (a string of digits, or a JSON number)."""
        value = self.raw(name)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be an id.", field=name)
        return parse_id(value, name)

    def strings(self, name: str, *, max_items: int = 100, max_length: int = 1000) -> list[str]:
        """An array of strings (``name[]=a&name[]=b``, a JSON list, or one value).

        Raises:
            InvalidInput: not strings, or too many.
        """
        value = self._values.get(f"{name}[]", self._values.get(name))
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if len(items) > max_items:
            raise InvalidInput(f"{name} has too many items (at most {max_items}).", field=name)
        found = []
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str) or len(item) > max_length:
                raise InvalidInput(f"{name} must be a list of strings.", field=name)
            found.append(item)
        return found

    def ids(self, name: str, *, max_items: int = 100) -> list[int]:
        """An array of ids (empty entries, which some forms send, are skipped)."""
        parsed = (parse_id(item, name) for item in self.strings(name, max_items=max_items,
                                                                 max_length=20))
        return [value for value in parsed if value is not None]

    def file(self, name: str) -> bytes | None:
        """An uploaded file's bytes (multipart only), or None."""
        field = self._files.get(name)
        if field is None:
            return None
        return field.file.read()

    def mapping(self, name: str) -> dict[str, Any] | None:
        """A nested object: a JSON object, or form fields ``name[key]=…``
        (``name[0][key]`` for arrays of objects, kept as a dict keyed by index)."""
        value = self._values.get(name)
        if isinstance(value, dict):
            return value
        if value is not None:
            raise InvalidInput(f"{name} must be an object.", field=name)
        prefix = f"{name}["
        nested: dict[str, Any] = {}
        for key, item in self._values.items():
            if not key.startswith(prefix):
                continue
            parts = key[len(prefix):].rstrip("]").split("][")
            target = nested
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise InvalidInput(f"{name} is malformed.", field=name)
            target[parts[-1]] = item[0] if isinstance(item, list) and len(item) == 1 else item
        return nested or None


async def read_params(request: web.Request) -> Params:
    """The request's parameters: its JSON or form body, and its query string.

    Raises:
        InvalidInput: a JSON body that is not an object, or not valid JSON (422).
        PayloadTooLarge: a JSON body over 1 MB.
    """
    values: dict[str, Any] = {}
    for key in request.query:
        got = request.query.getall(key)
        if not all(is_text(item) for item in (key, *got)):
            raise InvalidInput("The query string holds text that is not Unicode.")
        values[key] = got if key.endswith("[]") or len(got) > 1 else got[0]
    files: dict[str, web.FileField] = {}
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.can_read_body:
        if request.content_type == "application/json":
            if (request.content_length or 0) > MAX_JSON_BYTES:
                raise PayloadTooLarge("The JSON body is too large.")
            raw = await request.read()
            if raw.strip():
                try:
                    # The strict reader: UTF-8 only, no lone surrogates, finite numbers.
                    body = json_text.loads(raw)
                except ValueError:
                    raise InvalidInput("The body is not valid JSON (UTF-8).") from None
                if not isinstance(body, dict):
                    raise InvalidInput("The JSON body must be an object.")
                values.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await read_form(request)
            for key in form:
                entries = form.getall(key)
                texts = [v for v in entries if isinstance(v, str)]
                uploads = [v for v in entries if isinstance(v, web.FileField)]
                if uploads:
                    files[key] = uploads[0]
                if texts:
                    values[key] = texts if key.endswith("[]") or len(texts) > 1 else texts[0]
    return Params(values, files)
