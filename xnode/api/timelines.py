"""Client API: timelines — home, public, hashtag, bookmarks and favourites, paged the
way Mastodon's are (``max_id`` older, ``min_id``/``since_id`` newer, ``limit`` up to 40,
``Link`` headers both ways).

Each is a :class:`~xnode.timelines.TimelineService` page, the same the web pages show,
so the visibility rules are the node's one set: direct posts never appear, followers-only
ones only to followers (and never on the public or hashtag timelines).
"""

from __future__ import annotations

from aiohttp import web

from xnode.api import present
from xnode.api.auth import optional_viewer, require_user
from xnode.api.pagination import RECORD_NOT_FOUND, PageRequest, page_request, paginated
from xnode.api.params import read_params
from xnode.errors import NotFound
from xnode.posts.content import normalize_tag
from xnode.timelines import Page
from xnode.web.state import TIMELINES


async def _answer(request: web.Request, page_params: PageRequest, page: Page) -> web.Response:
    body = await present.statuses(request.app, page.items)
    # Cursors are the rows' own (boost ids, bookmark ids, like ids), as Mastodon's are,
    # so a page whose posts were all hidden still leads on.
    return paginated(request, page_params, body, page.positions)


async def home(request: web.Request) -> web.Response:
    """``GET /api/v1/timelines/home``: the caller's posts and those of whom they follow."""
    user = require_user(request, "read:statuses")
    page = page_request(request)
    return await _answer(request, page, await request.app[TIMELINES].home(user.id, page.cursor))


async def public(request: web.Request) -> web.Response:
    """``GET /api/v1/timelines/public``: public posts; ``local=true`` this node's only,
    ``remote=true`` other servers' only, ``only_media=true`` those with images."""
    viewer = optional_viewer(request, "read:statuses")
    viewer_id = viewer.id if viewer else None
    params = await read_params(request)
    page = page_request(request)
    local, remote = params.boolean("local"), params.boolean("remote")
    only_media = params.boolean("only_media")
    timelines = request.app[TIMELINES]
    if local:
        found = await timelines.local(viewer_id, page.cursor, only_media=only_media)
    else:
        found = await timelines.federated(
            viewer_id, page.cursor, remote_only=remote, only_media=only_media
        )
    return await _answer(request, page, found)


async def tag(request: web.Request) -> web.Response:
    """``GET /api/v1/timelines/tag/:hashtag``: public posts with the hashtag; ``local``,
    ``remote`` and ``only_media`` as on the public timeline. Mastodon's ``any[]``, ``all[]`` and
    ``none[]`` (more tags to combine) are ignored: the node's hashtag timeline is one
    tag, and apps send them only from a pinned multi-tag column."""
    viewer = optional_viewer(request, "read:statuses")
    params = await read_params(request)
    page = page_request(request)
    name = normalize_tag(request.match_info["hashtag"])
    if not name:
        return paginated(request, page, [], [])
    found = await request.app[TIMELINES].hashtag(
        viewer.id if viewer else None, name, page.cursor,
        local_only=params.boolean("local"), remote_only=params.boolean("remote"),
        only_media=params.boolean("only_media"),
    )  # fmt: skip
    return await _answer(request, page, found)


async def list_timeline(request: web.Request) -> web.Response:
    """``GET /api/v1/timelines/list/:id``: the node has no lists, so none is found."""
    require_user(request, "read:lists")
    raise NotFound(RECORD_NOT_FOUND)


async def bookmarks(request: web.Request) -> web.Response:
    """``GET /api/v1/bookmarks``: most recently bookmarked first (paged by bookmark)."""
    user = require_user(request, "read:bookmarks")
    page = page_request(request)
    found = await request.app[TIMELINES].bookmarks(user.id, page.cursor)
    return await _answer(request, page, found)


async def favourites(request: web.Request) -> web.Response:
    """``GET /api/v1/favourites``: most recently favourited first; the ``Link`` header's
    ids are favourite ids, not status ids (as in Mastodon: apps follow the links)."""
    user = require_user(request, "read:favourites")
    page = page_request(request)
    found = await request.app[TIMELINES].favourites(user.id, page.cursor)
    return await _answer(request, page, found)


def add_routes(app: web.Application) -> None:
    """Register the timelines endpoints."""
    app.router.add_get("/api/v1/timelines/home", home)
    app.router.add_get("/api/v1/timelines/public", public)
    app.router.add_get("/api/v1/timelines/tag/{hashtag}", tag)
    app.router.add_get("/api/v1/timelines/list/{id}", list_timeline)
    app.router.add_get("/api/v1/bookmarks", bookmarks)
    app.router.add_get("/api/v1/favourites", favourites)
