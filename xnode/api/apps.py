"""``POST /api/v1/apps`` and ``GET /api/v1/apps/verify_credentials``: apps register here
before asking anyone to sign in."""

from __future__ import annotations

from aiohttp import web

from xnode.api.auth import OAUTH, require_token
from xnode.api.params import read_params
from xnode.oauth.models import Application


def application_entity(application: Application) -> dict[str, object]:
    """An Application entity (without secrets)."""
    return {
        "id": str(application.id),
        "name": application.name,
        "website": application.website,
        "scopes": list(application.scopes),
        "redirect_uri": "\n".join(application.redirect_uris),
        "redirect_uris": list(application.redirect_uris),
    }


async def create_app(request: web.Request) -> web.Response:
    """Register an app; the answer carries its client id and secret (shown once)."""
    params = await read_params(request)
    uris = params.strings("redirect_uris", max_items=10, max_length=2000)
    if len(uris) == 1:
        uris = uris[0].split()  # Mastodon also takes one newline-separated string
    registered = await request.app[OAUTH].register(
        params.text("client_name", max_length=1000),
        uris,
        params.optional_text("scopes", max_length=1000),
        params.optional_text("website", max_length=2000),
    )
    body = application_entity(registered.application)
    body["client_id"] = registered.application.client_id
    body["client_secret"] = registered.client_secret
    body["vapid_key"] = ""
    return web.json_response(body)


async def verify_app(request: web.Request) -> web.Response:
    """The app of the token (any scope will do: the token only has to work)."""
    caller = require_token(request)
    application = await request.app[OAUTH].application(caller.token.application_id)
    if application is None:
        raise web.HTTPUnauthorized(text="The access token is invalid")
    body = application_entity(application)
    body["vapid_key"] = ""
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    """Register the app endpoints."""
    app.router.add_post("/api/v1/apps", create_app)
    app.router.add_get("/api/v1/apps/verify_credentials", verify_app)
