"""Link preview cards: a post's first link, shown as the page describes itself.

Pages are served by a real aiohttp server on loopback and fetched by the node's
own SSRF-safe client in the background; nothing in the fetch, the parse, the
cache or the rendering is stubbed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import ipaddress
import re
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import create_user, login, make_settings
from PIL import Image

from federation.http import Fetcher, FetchSettings, TooLarge
from federation.objects import parse_note
from xnode.activitypub.appkeys import RESOLVER
from xnode.activitypub.urls import PUBLIC
from xnode.ids import new_id
from xnode.link_previews import service as preview_service
from xnode.link_previews.extract import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    clean_url,
    decode_page,
    first_link,
    parse_page,
)
from xnode.posts.service import Draft, ImageUpload
from xnode.settings import env_overrides
from xnode.store import accounts as account_store
from xnode.store import link_previews as preview_store
from xnode.web.app import create_app
from xnode.web.state import DB, LINK_PREVIEWS, POSTS, RELATIONSHIPS


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(out, "PNG")
    return out.getvalue()


CARD_PNG = png((120, 63))
ARTICLE = """<!doctype html><html><head>
<meta charset="utf-8">
<title>Fallback title (not used)</title>
<meta property="og:title" content="The Quiet Garden">
<meta property="og:description" content="How to grow ferns in the shade of old walls.">
<meta property="og:site_name" content="Garden Weekly">
<meta property="og:url" content="{base}/article.html">
<meta property="og:image" content="/card.png">
<meta property="og:image:width" content="1200">
<meta property="og:image:height" content="630">
</head><body><p>The article itself.</p></body></html>"""
PLAIN = """<html><head><title>  Plain   page
title </title><meta name="description" content="Only plain HTML here."></head>
<body>text</body></html>"""
HOSTILE = """<html><head>
<title>ignored</title>
<meta property="og:title" content="<script>alert(1)</script>Evil &amp; co">
<meta property="og:description" content="<img src=x onerror=alert(2)> \u202ereversed">
<meta property="og:url" content="javascript:alert(3)">
<meta property="og:image" content="javascript:alert(4)">
<meta property="og:site_name" content="<b>Site</b>">
</head></html>"""
# A head at the start, then far more than the node reads: the card still comes.
BIG = "<html><head><title>Big page</title></head><body>" + "<p>filler</p>" * 200_000


class LinkedSite:
    """The web server a post links to: pages, an image, errors; counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.server: TestServer | None = None
        self.redirect_to = ""
        self.release = asyncio.Event()  # lets the slow page's handler finish at teardown

    async def start(self, host: str = "127.0.0.1") -> None:
        pages = {
            "/article.html": (ARTICLE, "text/html; charset=utf-8"),
            "/counted.html": (ARTICLE, "text/html"),
            "/plain.html": (PLAIN, "text/html"),
            "/hostile.html": (HOSTILE, "text/html"),
            "/big.html": (BIG, "text/html"),
            "/data.json": ('{"title": "not a page"}', "application/json"),
        }

        async def serve(request: web.Request) -> web.StreamResponse:
            self.hits[request.path] += 1
            base = f"http://{request.host}"
            if request.path == "/card.png":
                return web.Response(body=CARD_PNG, content_type="image/png")
            if request.path == "/slow.html":
                await asyncio.wait_for(self.release.wait(), 10)
                return web.Response(text=PLAIN, content_type="text/html")
            if request.path == "/to-private":
                raise web.HTTPFound(self.redirect_to)
            if request.path == "/stream.html":  # chunked: no length said in advance
                response = web.StreamResponse(headers={"Content-Type": "text/html"})
                await response.prepare(request)
                for start in range(0, len(BIG), 50_000):
                    await response.write(BIG[start : start + 50_000].encode())
                await response.write_eof()
                return response
            if request.path not in pages:
                raise web.HTTPNotFound()
            body, content_type = pages[request.path]
            return web.Response(
                body=body.replace("{base}", base).encode(),
                headers={"Content-Type": content_type},
            )

        app = web.Application()
        app.router.add_get("/{path:.*}", serve)
        self.server = TestServer(app, host=host)
        await self.server.start_server()

    async def close(self) -> None:
        self.release.set()
        assert self.server is not None
        await self.server.close()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://{self.server.host}:{self.server.port}{path}"


@pytest.fixture
async def site() -> AsyncIterator[LinkedSite]:
    """A site on 127.0.0.1 (the test nodes allow private addresses)."""
    found = LinkedSite()
    await found.start()
    yield found
    await found.close()


def card_of(page: str) -> str | None:
    """The HTML of the (first) link card on a page."""
    match = re.search(r'<a class="link-card.*?</a>', page, re.S)
    return match[0] if match else None


async def post_and_wait(app, author, text: str, **draft) -> int:
    post = await app[POSTS].publish(author, Draft(text, **draft))
    await app[LINK_PREVIEWS].idle()
    return post.id


async def thread_card(client, post_id: int) -> str | None:
    response = await client.get(f"/posts/{post_id}")
    assert response.status == 200, await response.text()
    return card_of(await response.text())


# --- what a card shows ---------------------------------------------------------------


async def test_a_linked_page_becomes_a_card_on_the_thread_and_the_home_page(client, app, site):
    alice = (await create_user(app, "alice")).account
    await login(client, "alice")
    post_id = await post_and_wait(app, alice, f"Read this: {site.url('/article.html')} !")
    card = await thread_card(client, post_id)
    assert card is not None
    assert "The Quiet Garden" in card and "Garden Weekly" in card
    assert "How to grow ferns in the shade of old walls." in card
    assert f'href="{site.url("/article.html")}"' in card
    assert 'rel="nofollow noopener noreferrer ugc"' in card
    # The image comes through the node, named by the card's id: never the other server.
    [src] = re.findall(r'<img class="link-card-image" src="([^"]+)"', card)
    assert re.fullmatch(r"/media/remote/preview/\d+\?v=\d+", src)
    assert 'width="1200" height="630"' in card
    assert site.url("/card.png") not in card
    for _ in range(2):
        response = await client.get(src)
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == CARD_PNG
    assert site.hits["/card.png"] == 1  # fetched once, when the card was made
    home = await (await client.get("/")).text()
    assert card_of(home) == card


async def test_a_page_without_opengraph_falls_back_to_its_title_and_description(client, app, site):
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"{site.url('/plain.html')}")
    card = await thread_card(client, post_id)
    assert card is not None
    assert "Plain page title" in card and "Only plain HTML here." in card
    assert '<span class="link-card-site">127.0.0.1</span>' in card  # no site name: the host
    assert "<img" not in card


async def test_remote_posts_get_cards_through_the_same_path(client, app, site):
    bruno = await remote_account(app)
    post = await app[RESOLVER].store_note(
        parse_note(remote_note(bruno, f'<p>new: <a href="{site.url("/plain.html")}">link</a></p>')),
        bruno,
    )
    await app[LINK_PREVIEWS].idle()
    card = await thread_card(client, post.id)
    assert card is not None and "Plain page title" in card


async def test_an_edit_that_drops_the_link_drops_the_card(client, app, site):
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"see {site.url('/plain.html')}")
    assert await thread_card(client, post_id) is not None
    await app[POSTS].edit(alice.id, post_id, source="no link any more", summary="", sensitive=False)
    await app[LINK_PREVIEWS].idle()
    assert await thread_card(client, post_id) is None


# --- what is not fetched, and what the fetch refuses ---------------------------------


@pytest.mark.parametrize("path", ["/data.json", "/missing.html"])
async def test_answers_that_are_not_pages_make_no_card(client, app, site, path):
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"look {site.url(path)}")
    assert await thread_card(client, post_id) is None
    assert site.hits[path] == 1
    entry = await preview_store.entry_for(app[DB], site.url(path))
    assert entry is not None and not entry.ok


async def test_a_long_page_is_read_only_up_to_the_bound_and_its_head_still_counts(
    client, app, site
):
    assert len(BIG) > 2 * preview_service.MAX_PAGE_BYTES
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"big {site.url('/big.html')}")
    card = await thread_card(client, post_id)
    assert card is not None and "Big page" in card


async def test_the_client_keeps_the_start_of_a_long_body_when_asked_to(site):
    settings = FetchSettings(allow_private_addresses=True, max_bytes=100_000)
    async with Fetcher(dataclasses.replace(settings, cut_off_bodies=True)) as fetcher:
        for path in ("/big.html", "/stream.html"):
            response = await fetcher.get(site.url(path))
            assert response.body == BIG[:100_000].encode()
    async with Fetcher(settings) as fetcher:
        for path in ("/big.html", "/stream.html"):
            with pytest.raises(TooLarge):
                await fetcher.get(site.url(path))


async def test_a_slow_page_times_out_and_never_holds_up_the_post(client, app, site):
    previews = app[LINK_PREVIEWS]
    previews.fetch_settings = dataclasses.replace(previews.fetch_settings, timeout_s=0.5)
    alice = (await create_user(app, "alice")).account
    started = time.monotonic()
    post = await app[POSTS].publish(alice, Draft(f"slow {site.url('/slow.html')}"))
    assert time.monotonic() - started < 0.4  # published before the page answered
    assert await thread_card(client, post.id) is None  # and the page renders meanwhile
    await previews.idle()
    assert site.hits["/slow.html"] == 1
    assert await thread_card(client, post.id) is None
    entry = await preview_store.entry_for(app[DB], site.url("/slow.html"))
    assert entry is not None and not entry.ok


ALLOWED = (ipaddress.ip_network("127.0.0.2/32"),)


async def test_a_redirect_to_a_private_address_is_refused(tmp_path, aiohttp_client):
    """As in tests/federation/test_http.py: 127.0.0.2 stands for the public internet,
    127.0.0.1 for the private network behind the node."""
    private, public = LinkedSite(), LinkedSite()
    await private.start("127.0.0.1")
    await public.start("127.0.0.2")
    try:
        app = create_app(make_settings(tmp_path / "strict", allow_private_addresses=False))
        client = await aiohttp_client(app)
        previews = app[LINK_PREVIEWS]
        previews.fetch_settings = dataclasses.replace(
            previews.fetch_settings, allowed_networks=ALLOWED
        )
        public.redirect_to = private.url("/plain.html")
        alice = (await create_user(app, "alice")).account
        redirected = await post_and_wait(app, alice, f"a {public.url('/to-private')}")
        direct = await post_and_wait(app, alice, f"b {private.url('/plain.html')}")
        allowed = await post_and_wait(app, alice, f"c {public.url('/plain.html')}")
        assert public.hits["/to-private"] == 1
        assert private.hits["/plain.html"] == 0  # never reached, by redirect or directly
        assert await thread_card(client, redirected) is None
        assert await thread_card(client, direct) is None
        assert "Plain page title" in (await thread_card(client, allowed) or "")
    finally:
        await private.close()
        await public.close()


async def test_hostile_markup_stays_text_and_javascript_urls_are_ignored(client, app, site):
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"{site.url('/hostile.html')}")
    card = await thread_card(client, post_id)
    assert card is not None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Evil &amp; co" in card
    assert "&lt;img src=x onerror=alert(2)&gt; reversed" in card  # bidi override removed
    assert "&lt;b&gt;Site&lt;/b&gt;" in card
    assert "<script" not in card and "onerror=" not in card.replace("&lt;img src=x onerror", "")
    assert "javascript:" not in card and "<img" not in card
    assert f'href="{site.url("/hostile.html")}"' in card  # og:url ignored: the page's own URL


async def test_mention_and_hashtag_links_are_not_previewed(client, app, site):
    bruno = await remote_account(app)
    content = (
        f'<p><span class="h-card"><a class="u-url mention" href="{site.url("/@carl")}">'
        f'@<span>carl</span></a></span> <a class="mention hashtag" rel="tag" '
        f'href="{site.url("/tags/ferns")}">#<span>ferns</span></a> '
        f'<a href="{site.url("/users/dora")}">@dora</a> '
        f'<a href="{site.url("/plain.html")}">the page</a></p>'
    )
    post = await app[RESOLVER].store_note(parse_note(remote_note(bruno, content)), bruno)
    await app[LINK_PREVIEWS].idle()
    assert "Plain page title" in (await thread_card(client, post.id) or "")
    assert set(site.hits) == {"/plain.html"}
    alice = (await create_user(app, "alice")).account
    await create_user(app, "bob")
    post_id = await post_and_wait(app, alice, "hi @bob #ferns")
    assert await thread_card(client, post_id) is None


async def test_posts_with_media_and_direct_messages_are_not_previewed(client, app, site):
    alice = (await create_user(app, "alice")).account
    await create_user(app, "bob")
    with_media = await post_and_wait(
        app, alice, f"pic {site.url('/plain.html')}", images=[ImageUpload(png((8, 8)), "x")]
    )
    await post_and_wait(app, alice, f"@bob psst {site.url('/plain.html')}", visibility="direct")
    assert site.hits["/plain.html"] == 0
    assert await thread_card(client, with_media) is None


# --- the cache -----------------------------------------------------------------------


async def test_a_url_is_fetched_once_for_many_posts_and_refreshed_after_days(
    client, app, site, clock
):
    alice = (await create_user(app, "alice")).account
    bob = (await create_user(app, "bob")).account
    url = site.url("/counted.html")
    # Two posts at once: the second waits for the first's fetch and reuses it.
    first = await app[POSTS].publish(alice, Draft(f"one {url}"))
    second = await app[POSTS].publish(bob, Draft(f"two {url}"))
    await app[LINK_PREVIEWS].idle()
    third = await post_and_wait(app, alice, f"three {url}")
    assert site.hits["/counted.html"] == 1
    for post_id in (first.id, second.id, third):
        assert "The Quiet Garden" in (await thread_card(client, post_id) or "")
    clock.advance(preview_service.REFRESH_S + 60)
    await post_and_wait(app, bob, f"four {url}")
    assert site.hits["/counted.html"] == 2


async def test_a_failing_url_is_not_fetched_again_at_once(client, app, site, clock):
    alice = (await create_user(app, "alice")).account
    url = site.url("/gone.html")
    for n in range(3):
        await post_and_wait(app, alice, f"{n} {url}")
    assert site.hits["/gone.html"] == 1
    clock.advance(preview_service.FAILURE_RETRY_S + 60)
    await post_and_wait(app, alice, f"again {url}")
    assert site.hits["/gone.html"] == 2


async def test_a_followers_only_cards_image_is_for_those_who_may_see_the_post(
    client, app, site, aiohttp_client
):
    alice = (await create_user(app, "alice")).account
    carol = (await create_user(app, "carol")).account
    post_id = await post_and_wait(
        app, alice, f"friends only {site.url('/article.html')}", visibility="followers"
    )
    await login(client, "alice")
    card = await thread_card(client, post_id)
    assert card is not None
    [src] = re.findall(r'src="(/media/remote/preview/[^"]+)"', card)
    assert (await client.get(src)).status == 200
    stranger = await aiohttp_client(client.server)
    assert (await stranger.get(src)).status == 404
    await login(stranger, "carol")
    assert (await stranger.get(src)).status == 404
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    assert (await stranger.get(src)).status == 200
    assert (await stranger.get("/media/remote/preview/12345")).status == 404


async def test_link_previews_can_be_turned_off(tmp_path, aiohttp_client, site):
    app = create_app(make_settings(tmp_path / "off", link_previews=False))
    client = await aiohttp_client(app)
    alice = (await create_user(app, "alice")).account
    post_id = await post_and_wait(app, alice, f"{site.url('/plain.html')}")
    assert await thread_card(client, post_id) is None
    assert site.hits["/plain.html"] == 0
    assert env_overrides({"XNODE_LINK_PREVIEWS": "false"}) == {"link_previews": False}


# --- reading pages and posts (pure) --------------------------------------------------


def test_the_first_link_skips_mentions_hashtags_and_profiles():
    html = (
        '<p><a href="https://a.example/@x" class="u-url mention">@x</a> '
        '<a href="https://a.example/tags/y" class="hashtag">#y</a> '
        '<a href="https://b.example/users/z">z</a> '
        '<a href="javascript:alert(1)">js</a> '
        '<a href="https://news.example/story#comments">story</a> '
        '<a href="https://later.example/">later</a></p>'
    )
    assert first_link(html, skip=["https://b.example/users/z"]) == "https://news.example/story"
    assert first_link("<p>no links</p>") is None


def test_page_heads_are_read_cleaned_and_bounded():
    page = parse_page(
        '<head><meta property="og:title" content="' + "T" * 500 + '">'
        '<meta name="twitter:description" content="' + "d " * 400 + '">'
        '<meta property="og:url" content="https://elsewhere.example/">'
        '<meta property="og:image" content="img/a.png"><meta property="og:image:width" '
        'content="-3"></head>',
        "https://www.site.example/dir/page",
    )
    assert page is not None
    assert len(page.title) == MAX_TITLE_CHARS and page.title.endswith("…")
    assert len(page.description) <= MAX_DESCRIPTION_CHARS
    assert page.url == "https://www.site.example/dir/page"  # og:url on another site: ignored
    assert page.image_url == "https://www.site.example/dir/img/a.png"
    assert page.image_width is None
    same = parse_page(
        '<title>x</title><meta property="og:url" content="https://site.example/canon">',
        "https://www.site.example/p?utm=1",
    )
    assert same is not None and same.url == "https://site.example/canon"
    assert parse_page("<html><body><h1>No title</h1></body></html>", "https://a.example/") is None
    # Only the head counts: a title in the body is not the page's.
    assert parse_page("<head></head><body><title>late</title>", "https://a.example/") is None


def test_pages_are_decoded_in_the_charset_they_name():
    latin = "<head><meta charset=iso-8859-1><title>Caf\xe9</title></head>".encode("latin-1")
    assert "Café" in decode_page(latin, "text/html")
    assert "Café" in decode_page("<title>Café</title>".encode(), "text/html; charset=utf-8")
    assert "Caf" in decode_page(latin, "text/html; charset=no-such-codec")


def test_only_absolute_http_urls_are_kept():
    assert clean_url("https://a.example/x#y") == "https://a.example/x"
    assert clean_url("/x", "https://a.example/dir/") == "https://a.example/x"
    for bad in (
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://a.example/",
        "https://",
        "https://user:pw@a.example/",
        "https://a.example/\nx",
        "x" * 3000,
    ):
        assert clean_url(bad) is None, bad


# --- helpers -------------------------------------------------------------------------


async def remote_account(app):
    account_id_ = new_id()
    await app[DB].execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
        " fetched_at, created_at, updated_at) VALUES (?, 'bruno', 'bruno', 'other.example',"
        " 'https://other.example/users/bruno', 'https://other.example/inbox',"
        " 4102444800, 0, 0)",
        (account_id_,),
    )
    return await account_store.get_account(app[DB], account_id_)


def remote_note(author, content: str) -> dict:
    return {
        "id": f"{author.uri}/statuses/{new_id()}",
        "type": "Note",
        "attributedTo": author.uri,
        "content": content,
        "to": [PUBLIC],
        "cc": [f"{author.uri}/followers"],
        "published": "2024-01-01T00:00:00Z",
    }
