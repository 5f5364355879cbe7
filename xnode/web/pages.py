"""Public pages: profiles and stored media (the front page is in timelines.py)."""

from __future__ import annotations

from aiohttp import web

from xnode.activitypub.backfill import BACKFILL
from xnode.posts.models import PostView
from xnode.remote_media import Unavailable
from xnode.timelines import Cursor, Page
from xnode.web.forms import current_user
from xnode.web.render import RENDERER
from xnode.web.social import ACCT, cursor_param, id_param, live_account
from xnode.web.state import (
    ACCOUNTS,
    LINK_PREVIEWS,
    MEDIA,
    POSTS,
    RELATIONSHIPS,
    REMOTE_MEDIA,
    SETTINGS,
    TIMELINES,
)

MEDIA_CACHE_SECONDS = 365 * 24 * 3600


async def profile_page(request: web.Request) -> web.Response:
    """A local account's public profile at ``/@username``: header, buttons, posts."""
    account = await live_account(request, request.match_info["username"])
    user = current_user(request)
    viewer_id = user.id if user is not None else None
    if not account.is_local and user is not None:
        # Their server's view: counts, recent and pinned posts (bounded; a moment at most).
        await request.app[BACKFILL].for_profile(account)
        account = await request.app[ACCOUNTS].account(account.id) or account
    is_owner = viewer_id == account.id
    rels = request.app[RELATIONSHIPS]
    relationship = (
        await rels.relationship(viewer_id, account.id)
        if viewer_id is not None and not is_owner
        else None
    )
    followers, following = await rels.counts(account.id)
    if not account.is_local:
        # What their own server reports, when it said (we only know those who are here).
        followers = account.followers_count if account.followers_count is not None else followers
        following = account.following_count if account.following_count is not None else following
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
            await rels.pending_request_count(account.id) if is_owner else 0
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


REMOTE_CACHE_SECONDS = 24 * 3600


async def remote_image(request: web.Request) -> web.StreamResponse:
    """A remote account's avatar or header, fetched and served by this node."""
    account_id = id_param(request.match_info["id"], "id")
    assert account_id is not None
    account = await request.app[ACCOUNTS].account(account_id)
    kind = request.match_info["kind"]
    url = None
    if account is not None and not account.is_local and not account.is_suspended:
        url = account.avatar_remote_url if kind == "avatar" else account.header_remote_url
    if url is None:
        raise web.HTTPNotFound(text="No such image.")
    return await _serve_remote(request, url, image_only=True)


async def remote_attachment(request: web.Request) -> web.StreamResponse:
    """A remote post's media, for viewers who may see the post."""
    attachment_id = id_param(request.match_info["id"], "id")
    assert attachment_id is not None
    user = current_user(request)
    attachment = await request.app[POSTS].visible_attachment(
        user.id if user is not None else None, attachment_id
    )
    if attachment.file_name is not None or attachment.remote_url is None:
        raise web.HTTPNotFound(text="No such media.")
    return await _serve_remote(request, attachment.remote_url)


async def remote_preview_image(request: web.Request) -> web.StreamResponse:
    """A link preview card's image, named by the card's id (never a URL: no open proxy)."""
    preview_id = id_param(request.match_info["id"], "id")
    assert preview_id is not None
    user = current_user(request)
    url = await request.app[LINK_PREVIEWS].visible_image_url(
        user.id if user is not None else None, preview_id
    )
    return await _serve_remote(request, url, image_only=True)


async def _serve_remote(
    request: web.Request, url: str, *, image_only: bool = False
) -> web.StreamResponse:
    try:
        cached = await request.app[REMOTE_MEDIA].get(url, image_only=image_only)
    except Unavailable as exc:
        raise web.HTTPBadGateway(text=f"The other server's file is not available: {exc}") from None
    response = web.FileResponse(cached.path)
    response.content_type = cached.content_type
    # Private: the visibility of a post's media is checked per viewer.
    response.headers["Cache-Control"] = f"private, max-age={REMOTE_CACHE_SECONDS}"
    return response


async def manifest(request: web.Request) -> web.Response:
    """The web app manifest: the node installs on a phone's home screen as an app."""
    domain = request.app[SETTINGS].domain
    icon = {"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml",
            "purpose": "any maskable"}  # fmt: skip
    document = {
        "name": f"xnode · {domain}", "short_name": domain[:12], "start_url": "/", "scope": "/",
        "display": "standalone", "background_color": "#f5f6f8", "theme_color": "#3b5bdb",
        "icons": [icon],
    }  # fmt: skip
    return web.json_response(document, content_type="application/manifest+json")


def add_routes(app: web.Application) -> None:
    """Register the public pages."""
    app.router.add_get("/manifest.webmanifest", manifest)
    app.router.add_get(f"/@{ACCT}", profile_page, name="profile")
    app.router.add_get(r"/media/remote/{kind:avatar|header}/{id:\d{1,19}}", remote_image)
    app.router.add_get(r"/media/remote/attachment/{id:\d{1,19}}", remote_attachment)
    app.router.add_get(r"/media/remote/preview/{id:\d{1,19}}", remote_preview_image)
    app.router.add_get("/media/{name}", media_file, name="media")
