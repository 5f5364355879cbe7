"""Atom and RSS feeds: a local account's public posts, and a hashtag's."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from xnode.accounts.models import Account
from xnode.feeds import ATOM_TYPE, RSS_TYPE, FeedSource, atom_feed, rss_feed
from xnode.posts.content import normalize_tag
from xnode.posts.models import PostView
from xnode.timelines import Cursor
from xnode.web.social import TAG, USERNAME, live_local_account
from xnode.web.state import POSTS, SETTINGS, TIMELINES

FEED_SIZE = 20
FEED_CACHE_SECONDS = 300


async def _public_posts(request: web.Request, account: Account) -> list[PostView]:
    """The newest public original posts (top-level or self-replies) of an account."""
    return await request.app[POSTS].feed(account.id, FEED_SIZE)


def _response(source: FeedSource, posts: list[PostView], content_type: str) -> web.Response:
    build = atom_feed if content_type == ATOM_TYPE else rss_feed
    response = web.Response(body=build(source, posts), content_type=content_type, charset="utf-8")
    response.headers["Cache-Control"] = f"public, max-age={FEED_CACHE_SECONDS}"
    return response


async def _account_feed(request: web.Request, content_type: str) -> web.Response:
    account = await live_local_account(request, request.match_info["username"])
    settings = request.app[SETTINGS]
    source = FeedSource.for_account(account, settings.base_url, settings.domain)
    return _response(source, await _public_posts(request, account), content_type)


async def atom_page(request: web.Request) -> web.Response:
    """An account's public posts as Atom."""
    return await _account_feed(request, ATOM_TYPE)


async def rss_page(request: web.Request) -> web.Response:
    """An account's public posts as RSS 2.0."""
    return await _account_feed(request, RSS_TYPE)


async def tag_feed(request: web.Request) -> web.Response:
    """A hashtag's public posts as Atom or RSS (``/tags/NAME.atom``, ``.rss``), as Mastodon has."""
    raw = request.match_info["tag"]
    tag = normalize_tag(raw)
    if not tag:
        raise web.HTTPNotFound(text="No such hashtag.")
    extension = request.match_info["format"]
    if tag != raw:
        raise web.HTTPFound(f"/tags/{quote(tag, safe='')}.{extension}")
    settings = request.app[SETTINGS]
    page = await request.app[TIMELINES].hashtag(None, tag, Cursor(limit=FEED_SIZE))
    source = FeedSource.for_tag(tag, settings.base_url, settings.domain)
    return _response(source, page.items, ATOM_TYPE if extension == "atom" else RSS_TYPE)


def add_routes(app: web.Application) -> None:
    """Register the feeds."""
    app.router.add_get(f"/@{USERNAME}/feed.atom", atom_page, name="feed_atom")
    app.router.add_get(f"/@{USERNAME}/feed.rss", rss_page, name="feed_rss")
    app.router.add_get(rf"/tags/{TAG}.{{format:atom|rss}}", tag_feed, name="tag_feed")
