"""Client API: search (``/api/v2/search``, ``/api/v1/accounts/search``) and hashtags
(``/api/v1/tags/:name``, ``/api/v1/followed_tags``).

As Mastodon: statuses are searched for signed-in callers only; a query starting with
``#`` searches no accounts, one holding ``@`` no hashtags; ``offset`` applies only with a
``type``; ``resolve=true`` looks a remote handle (``@user@host``, by WebFinger, as the web
search page does) or a URL (over ActivityPub) up. Unlike Mastodon, which answers 401,
an anonymous ``resolve=true`` is ignored: nothing is fetched from other servers for
anonymous callers, and they get the local results.

Tags carry ``history: []``: the node keeps no daily usage figures of hashtags, and an
empty history is what apps handle for a tag nobody used lately. The node has no followed
hashtags, so ``following`` is false (for signed-in callers; Mastodon omits it for
anonymous ones) and ``/api/v1/followed_tags`` is an empty list.
"""

from __future__ import annotations

import re

from aiohttp import web

from xnode.accounts.models import Account, User
from xnode.activitypub.appkeys import RESOLVER
from xnode.api import entities, present
from xnode.api.auth import caller_of, optional_viewer, require_user
from xnode.api.params import Params, read_params
from xnode.errors import InvalidInput, XnodeError
from xnode.posts.models import PostView
from xnode.search import MAX_QUERY_CHARS, search_words, tag_name
from xnode.web.state import SEARCH, SETTINGS

TYPES = ("accounts", "statuses", "hashtags")
MAX_OFFSET = 10_000
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_REMOTE_HANDLE = re.compile(r"@?[^@\s]+@[^@\s]+")


def tag_entity(name: str, base_url: str, viewer: User | None) -> dict[str, object]:
    """A Tag entity (empty ``history``; ``following`` for signed-in callers only)."""
    found: dict[str, object] = {**entities.tag(name, entities.Context(base_url)), "history": []}
    if viewer is not None:
        found["following"] = False
    return found


def _query(params: Params) -> str:
    if not params.has("q"):
        raise XnodeError("q is missing.", field="q")  # 400, as Mastodon's missing param
    text = params.text("q", max_length=MAX_QUERY_CHARS * 4).strip()
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Searches are limited to {MAX_QUERY_CHARS} characters.", field="q")
    return text


def _limit(params: Params, default: int, maximum: int) -> int:
    # Beyond the maximum is lowered to it, as Mastodon does; not a number is 422.
    value = params.integer("limit", default, low=0, high=2**63)
    assert value is not None
    return min(value, maximum)


async def _accounts(
    request: web.Request, text: str, viewer: User | None, *, limit: int, offset: int,
    following: bool, resolve: bool,
) -> list[Account]:
    if following and viewer is None:
        return []  # an anonymous caller follows nobody
    if resolve and viewer is not None and _REMOTE_HANDLE.fullmatch(text):
        await request.app[SEARCH].resolve_handle(request.app[RESOLVER], text)
    return await request.app[SEARCH].accounts(
        text, limit=limit, offset=offset, followed_by=viewer.id if following and viewer else None
    )


async def search_v2(request: web.Request) -> web.Response:
    """``GET /api/v2/search``: ``{accounts, statuses, hashtags}``."""
    viewer = optional_viewer(request, "read:search")
    params = await read_params(request)
    text = _query(params)
    kind = params.text("type", max_length=20) or None
    if kind is not None and kind not in TYPES:
        raise InvalidInput("type must be accounts, statuses or hashtags.", field="type")
    limit = _limit(params, 20, 40)
    offset = params.integer("offset", 0, low=0, high=MAX_OFFSET) or 0
    if kind is None:
        offset = 0  # Mastodon pages only one kind at a time
    resolve = params.boolean("resolve") and viewer is not None
    following = params.boolean("following")
    account_id = params.id("account_id")
    max_id, min_id = params.id("max_id"), params.id("min_id")
    found: dict[str, list[object]] = {"accounts": [], "statuses": [], "hashtags": []}
    if not text or limit == 0:
        return web.json_response(found)
    search = request.app[SEARCH]
    if resolve and _URL.fullmatch(text):
        # A URL names one thing: the account or post it is, or nothing.
        thing = await search.lookup_url(
            request.app[RESOLVER], viewer.id if viewer else None, text
        ) if offset == 0 else None  # fmt: skip
        if isinstance(thing, Account) and kind in (None, "accounts"):
            found["accounts"] = list(await present.accounts(request.app, [thing]))
        elif isinstance(thing, PostView) and kind in (None, "statuses"):
            found["statuses"] = list(await present.statuses(request.app, [thing]))
        return web.json_response(found)
    if kind in (None, "accounts") and not text.startswith("#"):
        accounts = await _accounts(request, text, viewer, limit=limit, offset=offset,
                                   following=following, resolve=resolve)  # fmt: skip
        found["accounts"] = list(await present.accounts(request.app, accounts))
    bare_word = (text.startswith("#") or "@" in text) and " " not in text
    if kind in (None, "statuses") and viewer is not None and not bare_word:
        words = search_words(text.lstrip("#@"))
        views = await search.find_posts(
            viewer.id, words, limit=limit, offset=offset, account_id=account_id,
            max_id=max_id, min_id=min_id,
        ) if words else []  # fmt: skip
        found["statuses"] = list(await present.statuses(request.app, views))
    if kind in (None, "hashtags") and "@" not in text:
        base = request.app[SETTINGS].base_url
        found["hashtags"] = [
            tag_entity(name, base, viewer)
            for name in await search.tags(text, limit=limit, offset=offset)
        ]
    return web.json_response(found)


async def search_accounts(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/search``: accounts by handle or name (limit 40, at most 80)."""
    viewer = require_user(request, "read:accounts")
    params = await read_params(request)
    text = _query(params)
    limit = _limit(params, 40, 80)
    offset = params.integer("offset", 0, low=0, high=MAX_OFFSET) or 0
    if not text or limit == 0:
        return web.json_response([])
    accounts = await _accounts(
        request, text, viewer, limit=limit, offset=offset,
        following=params.boolean("following"), resolve=params.boolean("resolve"),
    )  # fmt: skip
    return web.json_response(await present.accounts(request.app, accounts))


async def get_tag(request: web.Request) -> web.Response:
    """``GET /api/v1/tags/:name``: any well-formed hashtag (Mastodon answers for tags
    nobody used too)."""
    caller = caller_of(request)  # any token will do, as on Mastodon
    viewer = caller.user if caller is not None else None
    name = tag_name(request.match_info["name"])
    if name is None or len(name) > 100:
        raise InvalidInput("Not a hashtag.", field="name")
    return web.json_response(tag_entity(name, request.app[SETTINGS].base_url, viewer))


async def followed_tags(request: web.Request) -> web.Response:
    """``GET /api/v1/followed_tags``: the node has no followed hashtags."""
    require_user(request, "read:follows")
    return web.json_response([])


def add_routes(app: web.Application) -> None:
    """Register the search and hashtag endpoints."""
    app.router.add_get("/api/v2/search", search_v2)
    app.router.add_get("/api/v1/accounts/search", search_accounts)
    app.router.add_get("/api/v1/tags/{name}", get_tag)
    app.router.add_get("/api/v1/followed_tags", followed_tags)
