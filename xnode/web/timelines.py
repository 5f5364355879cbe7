"""Timeline pages: the front page (home), local, federated, hashtags and bookmarks.

The compose box lives on the front page, so its form values (:class:`ComposeForm`)
are defined here and reused by :mod:`xnode.web.posts` for replies and for
re-showing a refused post.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from xnode.errors import XnodeError
from xnode.posts.content import normalize_tag
from xnode.posts.service import MAX_MEDIA, MAX_NOTE_CHARS
from xnode.timelines import Cursor, Page
from xnode.web.forms import current_user, require_user
from xnode.web.render import RENDERER
from xnode.web.social import TAG
from xnode.web.state import ACCOUNTS, SETTINGS, TIMELINES

# Cursors are 63-bit ids; anything larger is not one of ours (and SQLite would refuse it).
_MAX_CURSOR = 2**63 - 1


@dataclass
class ComposeForm:
    """What the compose (or reply) form shows: defaults, or what was typed before a refusal."""

    source: str = ""
    summary: str = ""
    sensitive: bool = False
    visibility: str = "public"
    source_format: str = "plain"
    kind: str = "note"
    title: str = ""
    in_reply_to_id: int | None = None
    alts: list[str] = field(default_factory=lambda: [""] * MAX_MEDIA)
    next: str = ""
    error: str | None = None
    error_field: str | None = None

    @classmethod
    def refused(cls, values: ComposeForm, exc: XnodeError) -> ComposeForm:
        """The same values with the service's refusal attached."""
        return cls(**{**values.__dict__, "error": exc.message, "error_field": exc.field})


def compose_context(request: web.Request, compose: ComposeForm) -> dict[str, Any]:
    """Template values for ``_compose.html``."""
    return {
        "compose": compose,
        "max_chars": MAX_NOTE_CHARS,
        "max_media": MAX_MEDIA,
        "max_upload_mb": request.app[SETTINGS].max_upload_mb,
    }


def parse_cursor(request: web.Request) -> Cursor:
    """The page asked for by ``?max_id=`` (older) or ``?min_id=`` (newer).

    Raises:
        web.HTTPBadRequest: a cursor is not a number.
    """
    values: dict[str, int | None] = {}
    for name in ("max_id", "min_id"):
        raw = request.query.get(name, "")
        if not raw:
            values[name] = None
        elif raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= _MAX_CURSOR:
            values[name] = int(raw)
        else:
            raise web.HTTPBadRequest(text=f"The page cursor '{name}' must be a number.")
    return Cursor(max_id=values["max_id"], min_id=values["min_id"])


def page_context(page: Page, cursor: Cursor, base_path: str) -> dict[str, Any]:
    """Template values for a page of posts and its "Newer"/"Older" links."""
    paged = cursor.max_id is not None or cursor.min_id is not None
    join = "&" if "?" in base_path else "?"
    return {
        "page": page,
        "paged": paged,
        "base_path": base_path,
        "older_url": (
            f"{base_path}{join}max_id={page.next_max_id}" if page.next_max_id is not None else None
        ),
        # On the first page there is nothing newer to link to.
        "newer_url": (
            f"{base_path}{join}min_id={page.prev_min_id}"
            if paged and page.prev_min_id is not None
            else None
        ),
    }


async def render_home(
    request: web.Request, compose: ComposeForm | None = None, *, status: int = 200
) -> web.Response:
    """The front page: compose box and home timeline, or a welcome and the local timeline."""
    user = current_user(request)
    cursor = parse_cursor(request)
    timelines = request.app[TIMELINES]
    context: dict[str, Any] = {
        "registration_mode": await request.app[ACCOUNTS].registration_mode(),
        "section": "home",
    }
    if user is None:
        page = await timelines.local(None, cursor)
    else:
        page = await timelines.home(user.id, cursor)
        context.update(compose_context(request, compose or ComposeForm()))
    context.update(page_context(page, cursor, "/"))
    return request.app[RENDERER].render(request, "home.html", context, status=status)


async def home_page(request: web.Request) -> web.Response:
    """``GET /``."""
    return await render_home(request)


def _render_timeline(
    request: web.Request, page: Page, cursor: Cursor, base_path: str, **context: Any
) -> web.Response:
    context.update(page_context(page, cursor, base_path))
    return request.app[RENDERER].render(request, "timeline.html", context)


async def local_page(request: web.Request) -> web.Response:
    """Public posts written on this node."""
    user = current_user(request)
    cursor = parse_cursor(request)
    page = await request.app[TIMELINES].local(user.id if user else None, cursor)
    return _render_timeline(
        request, page, cursor, "/local",
        title="Local timeline", section="local",
        intro="Public posts by people on this node, newest first.",
        empty="Nobody on this node has posted publicly yet.",
    )


async def federated_page(request: web.Request) -> web.Response:
    """Every public post this node knows."""
    user = current_user(request)
    cursor = parse_cursor(request)
    page = await request.app[TIMELINES].federated(user.id if user else None, cursor)
    return _render_timeline(
        request, page, cursor, "/federated",
        title="Federated timeline", section="federated",
        intro="Public posts from this node and from the other servers it knows, newest first.",
        empty="No public posts are known yet.",
    )


async def tag_page(request: web.Request) -> web.Response:
    """Public posts with a hashtag; other spellings redirect to the canonical one."""
    raw = request.match_info["tag"]
    tag = normalize_tag(raw)
    if not tag:
        raise web.HTTPNotFound(text="No such hashtag.")
    path = f"/tags/{quote(tag, safe='')}"
    if tag != raw:
        query = f"?{request.query_string}" if request.query_string else ""
        raise web.HTTPFound(path + query)
    user = current_user(request)
    cursor = parse_cursor(request)
    page = await request.app[TIMELINES].hashtag(user.id if user else None, tag, cursor)
    return _render_timeline(
        request, page, cursor, path,
        title=f"#{tag}", section="tag",
        intro=f"Public posts tagged #{tag}, newest first.",
        empty=f"No public posts are tagged #{tag} yet.",
    )


async def bookmarks_page(request: web.Request) -> web.Response:
    """The posts the user bookmarked (only they see this page)."""
    user = require_user(request)
    cursor = parse_cursor(request)
    page = await request.app[TIMELINES].bookmarks(user.id, cursor)
    return _render_timeline(
        request, page, cursor, "/bookmarks",
        title="Bookmarks", section="bookmarks",
        intro="Posts you bookmarked, most recent first. Only you can see this list.",
        empty="You have no bookmarks yet. Use “Bookmark” under a post to keep it here.",
    )


def add_routes(app: web.Application) -> None:
    """Register the timeline pages."""
    app.router.add_get("/", home_page, name="home")
    app.router.add_get("/local", local_page, name="local")
    app.router.add_get("/federated", federated_page, name="federated")
    app.router.add_get(f"/tags/{TAG}", tag_page, name="tag")
    app.router.add_get("/bookmarks", bookmarks_page, name="bookmarks")
