"""Public pages: profiles and stored media (the front page is in timelines.py)."""

from __future__ import annotations

from aiohttp import web

from xnode.posts.models import PostView
from xnode.timelines import Cursor, Page
from xnode.web.forms import current_user
from xnode.web.render import RENDERER
from xnode.web.social import ACCT, cursor_param, live_account, pending_request_count
from xnode.web.state import DB, MEDIA, RELATIONSHIPS, TIMELINES

MEDIA_CACHE_SECONDS = 365 * 24 * 3600


async def profile_page(request: web.Request) -> web.Response:
    """A local account's public profile at ``/@username``: header, buttons, posts."""
    account = await live_account(request, request.match_info["username"])
    user = current_user(request)
    viewer_id = user.id if user is not None else None
    is_owner = viewer_id == account.id
    rels = request.app[RELATIONSHIPS]
    relationship = (
        await rels.relationship(viewer_id, account.id)
        if viewer_id is not None and not is_owner
        else None
    )
    followers, following = await rels.counts(account.id)
    max_id = cursor_param(request)
    pinned: list[PostView] = []
    page = Page(items=[], next_max_id=None, prev_min_id=None)
    # Someone who was blocked sees the header (so the block is not a mystery) but no posts.
    if relationship is None or not relationship.blocked_by:
        timelines = request.app[TIMELINES]
        if max_id is None:
            pinned = await timelines.pinned(viewer_id, account.id)
        page = await timelines.profile(viewer_id, account.id, Cursor(max_id=max_id))
    context = {
        "account": account,
        "is_owner": is_owner,
        "relationship": relationship,
        "followers_count": followers,
        "following_count": following,
        "show_network": is_owner or not account.hide_network,
        "pending_requests": (
            await pending_request_count(request.app[DB], account.id) if is_owner else 0
        ),
        "pinned": pinned,
        "page": page,
        "paged": max_id is not None,
    }
    return request.app[RENDERER].render(request, "profile.html", context)


async def media_file(request: web.Request) -> web.StreamResponse:
    """Serve a stored media file by its content-hash name (immutable, cacheable)."""
    path = request.app[MEDIA].path_for(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="No such media file.")
    response = web.FileResponse(path)
    response.headers["Cache-Control"] = f"public, max-age={MEDIA_CACHE_SECONDS}, immutable"
    return response


def add_routes(app: web.Application) -> None:
    """Register the public pages."""
    app.router.add_get(f"/@{ACCT}", profile_page, name="profile")
    app.router.add_get("/media/{name}", media_file, name="media")
