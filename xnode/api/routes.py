"""The client API's routes, one module per area."""

from __future__ import annotations

from aiohttp import web

from xnode.api import (
    accounts,
    apps,
    conversations,
    instance,
    markers,
    media,
    notifications,
    search,
    statuses,
    streaming,
    timelines,
)


def add_routes(app: web.Application) -> None:
    """Register every client API endpoint (each also with a trailing slash)."""
    before = len(app.router.routes())
    for module in (instance, apps, accounts, statuses, media, timelines, notifications,
                   conversations, markers, search, streaming):  # fmt: skip
        module.add_routes(app)
    _with_trailing_slashes(app, list(app.router.routes())[before:])


def _with_trailing_slashes(app: web.Application, routes: list[web.AbstractRoute]) -> None:
    # Rails ignores a trailing slash, so Mastodon does, and clients rely on it
    # (Mastodon.py asks for "/api/v1/instance/").
    for route in routes:
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and not path.endswith("/") and route.method != "HEAD":
            app.router.add_route(route.method, path + "/", route.handler)
