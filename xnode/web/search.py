"""The search page: accounts, hashtags and posts."""

from __future__ import annotations

from aiohttp import web

from xnode.activitypub.appkeys import RESOLVER
from xnode.errors import InvalidInput
from xnode.search import MAX_QUERY_CHARS, SearchResults
from xnode.web.forms import current_user
from xnode.web.render import RENDERER
from xnode.web.state import SEARCH


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
            await request.app[SEARCH].resolve_handle(request.app[RESOLVER], query)
        try:
            results: SearchResults = await request.app[SEARCH].search(
                user.id if user is not None else None, query
            )
            context["results"] = results
        except InvalidInput as exc:
            context["error"] = exc.message
            status = exc.status
    return request.app[RENDERER].render(request, "search.html", context, status=status)


def add_routes(app: web.Application) -> None:
    """Register the search page."""
    app.router.add_get("/search", search_page, name="search")
