"""Public pages: the front page, profiles and stored media."""

from __future__ import annotations

from aiohttp import web

from xnode.store import accounts as account_store
from xnode.web.render import RENDERER
from xnode.web.state import ACCOUNTS, DB, MEDIA

MEDIA_CACHE_SECONDS = 365 * 24 * 3600


async def home(request: web.Request) -> web.Response:
    """The front page: a welcome for visitors, the start page for users."""
    mode = await request.app[ACCOUNTS].registration_mode()
    return request.app[RENDERER].render(request, "home.html", {"registration_mode": mode})


async def profile_page(request: web.Request) -> web.Response:
    """A local account's public profile at ``/@username``."""
    username = request.match_info["username"]
    account = await account_store.get_local_account(request.app[DB], username)
    if account is None:
        raise web.HTTPNotFound(text=f"There is no account @{username} on this node.")
    if account.is_deleted:
        raise web.HTTPGone(text=f"The account @{account.username} has been deleted.")
    if account.is_suspended:
        raise web.HTTPNotFound(text=f"There is no account @{username} on this node.")
    user = await account_store.get_user(request.app[DB], account.id)
    if user is None or user.state != "active":
        raise web.HTTPNotFound(text=f"There is no account @{username} on this node.")
    return request.app[RENDERER].render(request, "profile.html", {"account": account})


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
    app.router.add_get("/", home, name="home")
    app.router.add_get(r"/@{username:[A-Za-z0-9_]{1,30}}", profile_page, name="profile")
    app.router.add_get("/media/{name}", media_file, name="media")
