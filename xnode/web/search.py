"""The search page: accounts, hashtags and posts."""

from __future__ import annotations

import logging

from aiohttp import web

from federation.http import FetchError
from xnode.activitypub.appkeys import RESOLVER
from xnode.errors import InvalidInput, XnodeError
from xnode.search import MAX_QUERY_CHARS, SearchResults
from xnode.web.forms import current_user
from xnode.web.render import RENDERER
from xnode.web.state import SEARCH, SETTINGS

log = logging.getLogger(__name__)


async def search_page(request: web.Request) -> web.Response:
    """The search form and, for a query, what it found that the visitor may see."""
    query = request.query.get("q", "")
    user = current_user(request)
    context: dict[str, object] = {
        "q": query,
        "results": None,
        "error": None,
        "max_query": MAX_QUERY_CHARS,
    }
    status = 200
    if query.strip():
        if user is not None:
            await _resolve_remote_handle(request, query.strip())
        try:
            results: SearchResults = await request.app[SEARCH].search(
                user.id if user is not None else None, query
            )
            context["results"] = results
        except InvalidInput as exc:
            context["error"] = exc.message
            status = exc.status
    return request.app[RENDERER].render(request, "search.html", context, status=status)


async def _resolve_remote_handle(request: web.Request, query: str) -> None:
    """Look up ``@user@host`` by WebFinger so a remote account can be found and followed."""
    handle = query.lstrip("@")
    username, _, domain = handle.partition("@")
    if not username or not domain or " " in handle:
        return
    if domain.lower() == request.app[SETTINGS].domain.lower():
        return  # one of ours: in the database already, no WebFinger to ourselves
    try:
        await request.app[RESOLVER].actor_by_handle(handle)
    except (XnodeError, FetchError, ValueError) as exc:
        log.info("search: could not resolve @%s: %s", handle, exc)


def add_routes(app: web.Application) -> None:
    """Register the search page."""
    app.router.add_get("/search", search_page, name="search")
