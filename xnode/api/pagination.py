"""Pagination as Mastodon's clients expect it.

Lists take ``max_id`` (older than), ``since_id`` (newer than, newest first), ``min_id``
(newer than, just above it: paging up) and ``limit``; the answer's ``Link`` header names
the next (older) and previous (newer) pages. Ids are our time-sortable integers, sent as
strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from xnode.errors import InvalidInput, NotFound
from xnode.timelines import Cursor
from xnode.web.state import SETTINGS

MAX_ID = 2**63 - 1
RECORD_NOT_FOUND = "Record not found"
"""Mastodon's words for anything unknown or not visible to the caller."""
_CURSOR_PARAMS = frozenset({"max_id", "min_id", "since_id", "limit"})


def parse_id(text: str | None, name: str = "id") -> int | None:
    """An id from a query or path value; None when absent.

    Raises:
        InvalidInput: not an id of ours (422).
    """
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) > MAX_ID:
        raise InvalidInput(f"{name} must be a numeric id.", field=name)
    return int(text)


def path_id(request: web.Request, key: str = "id") -> int:
    """An id in the URL path. One that cannot be ours is a record that does not exist:
    404, as Mastodon answers, not a validation error.

    Raises:
        NotFound: malformed or out of range.
    """
    try:
        found = parse_id(request.match_info[key], key)
    except InvalidInput:
        found = None
    if found is None:
        raise NotFound(RECORD_NOT_FOUND)
    return found


@dataclass(frozen=True)
class PageRequest:
    """The pagination parameters of a request."""

    max_id: int | None
    since_id: int | None
    min_id: int | None
    limit: int

    @property
    def cursor(self) -> Cursor:
        """The timeline cursor for these parameters."""
        return Cursor(max_id=self.max_id, min_id=self.min_id, since_id=self.since_id,
                      limit=self.limit)  # fmt: skip


def page_request(request: web.Request, *, default: int = 20, maximum: int = 40) -> PageRequest:
    """Read ``max_id``/``since_id``/``min_id``/``limit``; a limit beyond the maximum is
    lowered to it, as Mastodon does (not an error).

    Raises:
        InvalidInput: an id or limit that is not a number.
    """
    query = request.query
    limit_text = query.get("limit", "")
    if limit_text:
        if not (limit_text.isascii() and limit_text.lstrip("-").isdigit()) or len(limit_text) > 12:
            raise InvalidInput("limit must be a number.", field="limit")
        limit = max(1, min(int(limit_text), maximum))
    else:
        limit = default
    return PageRequest(
        max_id=parse_id(query.get("max_id"), "max_id"),
        since_id=parse_id(query.get("since_id"), "since_id"),
        min_id=parse_id(query.get("min_id"), "min_id"),
        limit=limit,
    )


def link_header(request: web.Request, page: PageRequest, cursors: Sequence[int]) -> str | None:
    """The ``Link`` header for a page whose items have these pagination ids: ``next``
    below the oldest, ``prev`` above the newest; None for an empty page."""
    if not cursors:
        return None
    base = request.app[SETTINGS].base_url + request.path
    # Repeated parameters (``types[]``) stay repeated.
    kept = [(k, v) for k, v in request.query.items() if k not in _CURSOR_PARAMS]
    kept.append(("limit", str(page.limit)))
    older = urlencode([*kept, ("max_id", str(min(cursors)))])
    newer = urlencode([*kept, ("min_id", str(max(cursors)))])
    return f'<{base}?{older}>; rel="next", <{base}?{newer}>; rel="prev"'


def paginated(
    request: web.Request, page: PageRequest, body: object, cursors: Sequence[int]
) -> web.Response:
    """A JSON answer with its ``Link`` header."""
    response = web.json_response(body)
    link = link_header(request, page, cursors)
    if link:
        response.headers["Link"] = link
    return response
