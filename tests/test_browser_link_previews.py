"""Link preview cards in real headless Chromium, at 1280 and 390 px wide.

The cards' images load from this node (the page's CSP would report anything
else as a console error), nothing scrolls sideways on a phone, and the
screenshots go to ``.artifacts/screenshots`` for people to look at.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import create_user
from PIL import Image, ImageDraw
from playwright.async_api import expect
from test_browser import PASSWORD, browser  # noqa: F401 (the fixture)
from test_browser_live import WIDTHS, shot, signed_in

from xnode.posts.service import Draft
from xnode.web.state import LINK_PREVIEWS, POSTS

pytestmark = pytest.mark.browser


def picture(size: tuple[int, int], colours: tuple[str, str]) -> bytes:
    """A picture with some shape to it (so a screenshot shows how it is cropped)."""
    image = Image.new("RGB", size, colours[0])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width // 4, height // 6, width * 3 // 4, height * 5 // 6), fill=colours[1])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def head(title: str, description: str, site: str = "", image: str = "", size: str = "") -> str:
    tags = [f'<meta property="og:title" content="{title}">',
            f'<meta property="og:description" content="{description}">']  # fmt: skip
    if site:
        tags.append(f'<meta property="og:site_name" content="{site}">')
    if image:
        tags.append(f'<meta property="og:image" content="{image}">')
    if size:
        width, height = size.split("x")
        tags.append(f'<meta property="og:image:width" content="{width}">')
        tags.append(f'<meta property="og:image:height" content="{height}">')
    return f"<html><head>{''.join(tags)}</head><body>…</body></html>"


PAGES = {
    "/garden": head(
        "The Quiet Garden: growing ferns in the shade of old walls",
        "Ferns ask for little: shade, a damp corner and patience. A season with the hart's "
        "tongue, the maidenhair and the royal fern, from first frond to winter.",
        "Garden Weekly", "/wide.png", "1200x630",
    ),
    "/recipe": head(
        "Slow-cooked beans with rosemary, garlic and a great deal of olive oil, as they "
        "make them in the hills",
        "Three hours, one pot, no hurry.",
        "Kitchen Notes", "/square.png", "400x400",
    ),
    "/plain": "<html><head><title>Release notes 4.2</title>"
    '<meta name="description" content="What changed in this release."></head></html>',
}  # fmt: skip
IMAGES = {
    "/wide.png": picture((1200, 630), ("#2f6f4f", "#a9d18e")),
    "/square.png": picture((400, 400), ("#7a3b1d", "#f2c57c")),
}


@pytest.fixture
async def site() -> AsyncIterator[TestServer]:
    """Another web site, on loopback, with pages worth a card."""

    async def serve(request: web.Request) -> web.Response:
        if request.path in IMAGES:
            return web.Response(body=IMAGES[request.path], content_type="image/png")
        if request.path in PAGES:
            return web.Response(text=PAGES[request.path], content_type="text/html")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_link_cards_show_under_posts(client, app, browser, site, layout):  # noqa: F811
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    for text, path in (
        ("The notes for the new version are out", "/plain"),
        ("Dinner tonight, and for the rest of the week probably", "/recipe"),
        ("Finally, someone writes about ferns!", "/garden"),
    ):
        await app[POSTS].publish(alice, Draft(f"{text} {site.make_url(path)}"))
    await app[LINK_PREVIEWS].idle()
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    width = WIDTHS[layout]
    page = await signed_in(browser, base, "alice", width, problems)
    try:
        cards = page.locator("article.post a.link-card")
        await expect(cards).to_have_count(3)
        garden = cards.filter(has_text="The Quiet Garden")
        await expect(garden).to_have_attribute("href", str(site.make_url("/garden")))
        await expect(garden.locator(".link-card-site")).to_have_text("Garden Weekly")
        await expect(garden).to_have_class("link-card link-card-large")
        await expect(cards.filter(has_text="Release notes 4.2").locator("img")).to_have_count(0)
        images = page.locator("a.link-card img")
        await expect(images).to_have_count(2)
        for n in range(2):
            image = images.nth(n)
            await image.scroll_into_view_if_needed()
            await expect(image).to_have_attribute(
                "src", re.compile(r"^/media/remote/preview/\d+\?v=\d+$")
            )
            loaded = await image.evaluate(
                "img => img.decode().then(() => img.naturalWidth, () => 0)"
            )
            assert loaded > 0
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, f"link-previews-{layout}")
        await page.goto(f"{base}/@alice")
        await expect(page.locator("a.link-card")).to_have_count(3)
    finally:
        await page.context.close()
    assert problems == []
