"""Live on every page, in real headless Chromium (issue 15), at 1280 and 390 px wide.

One live connection per signed-in page: badges follow at once, timelines offer
"N new posts", buttons act without a reload, times read relative. Screenshots
go to ``.artifacts/screenshots`` for people to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import create_user
from playwright.async_api import Browser, Page, expect
from test_browser import PASSWORD, browser  # noqa: F401 (the fixture)
from test_browser_messages import until

from xnode.posts.service import Draft
from xnode.web.state import DMS, LIVE, POSTS, RELATIONSHIPS

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}


async def signed_in(
    browser: Browser,  # noqa: F811 (the fixture's value)
    base: str, username: str, width: int, problems: list[str], **context_options: Any,
) -> Page:
    """A fresh browser profile ``width`` px wide with ``username`` signed in; page errors and
    console errors go to ``problems``; ``context_options`` go to Playwright's new_context."""
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, **context_options
    )
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"{username}: {exc}"))
    page.on(
        "console",
        lambda message: problems.append(f"{username}: {message.text}")
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")
        else None,
    )
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/")
    return page


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_timeline_badges_buttons_and_times_are_live(client, app, browser, layout):  # noqa: F811
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    carol = (await create_user(app, "carol", password=PASSWORD)).account
    dave = (await create_user(app, "dave", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[RELATIONSHIPS].follow(bob.id, dave.id)  # dave's messages are not requests
    await app[POSTS].publish(alice, Draft("zqx an older post"))
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "bob", WIDTHS[layout], problems)
    try:
        await until(lambda: app[LIVE].is_connected(bob.id))
        await page.evaluate("window.__noReload = true")
        # Relative times, the exact one on hover.
        time = page.locator("article.post time").first
        await expect(time).to_have_text("just now")
        assert await time.get_attribute("title")

        # A new post by someone bob follows: offered, then shown where he is.
        await app[POSTS].publish(alice, Draft("zqx fresh from alice"))
        offer = page.get_by_role("button", name="1 new post")
        await expect(offer).to_be_visible(timeout=5000)
        await shot(page, f"live-new-posts-{layout}")
        await offer.click()
        fresh = page.locator("section.timeline article.post", has_text="zqx fresh from alice")
        await expect(fresh).to_have_count(1)
        await expect(offer).to_be_hidden()

        # Like without leaving the page: the button and its count change in place.
        await fresh.get_by_role("button", name="Like").click()
        await expect(fresh.get_by_role("button", name="Unlike (1)")).to_be_visible()
        await expect(page.locator(".live-status")).to_have_text("You liked the post.")

        # A message arrives while bob reads his timeline: the badge follows at once.
        await app[DMS].start(dave, "@bob", "zqx ping")
        await expect(page.locator("a.nav-messages .badge")).to_have_text("1", timeout=5000)

        # Following from a profile, without a reload.
        await page.goto(f"{base}/@carol")
        await page.evaluate("window.__noReload = true")
        await page.locator(".profile-actions").get_by_role("button", name="Follow").click()
        await expect(page.locator(".profile-actions").get_by_role("button", name="Unfollow")
                     ).to_be_visible()  # fmt: skip
        await expect(page.locator(".profile-stats")).to_contain_text("1 follower")
        await shot(page, f"live-profile-followed-{layout}")
        assert await page.evaluate("window.__noReload === true")
        assert (await app[RELATIONSHIPS].relationship(bob.id, carol.id)).following
    finally:
        await page.context.close()
    assert problems == []


async def test_the_buttons_still_work_without_javascript(client, app, browser):  # noqa: F811
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    post = await app[POSTS].publish(alice, Draft("zqx plain forms"))
    base = str(client.make_url("/")).rstrip("/")
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(f"{base}/login")
        await page.get_by_label("Username").fill("bob")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.goto(f"{base}/local")
        card = page.locator(f"#post-{post.id}")
        await card.get_by_role("button", name="Like").click()
        await expect(page.locator(f"#post-{post.id}").get_by_role("button", name="Unlike (1)")
                     ).to_be_visible()  # fmt: skip
        await page.goto(f"{base}/@alice")
        await page.get_by_role("button", name="Follow").click()
        await expect(page.get_by_role("button", name="Unfollow")).to_be_visible()
        assert (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    finally:
        await context.close()


async def test_phone_layout_has_a_bottom_bar_compose_behind_a_button_and_no_sideways_scroll(
    client, app, browser  # noqa: F811
):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    for n in range(3):
        long_word = "x" * 60
        await app[POSTS].publish(alice, Draft(f"zqx a long unbroken word {long_word} {n}"))
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "alice", 360, problems)
    try:
        for path in ("/", "/local", "/notifications", "/messages", "/search?q=zqx", "/@alice"):
            await page.goto(base + path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (path, width)
        await page.goto(base + "/")
        bar = page.locator("ul.nav-app")
        box = await bar.bounding_box()
        assert box is not None and box["y"] + box["height"] >= 899  # at the bottom
        compose = page.locator("#compose-source")
        await expect(compose).to_be_hidden()
        await page.get_by_role("link", name="New post").click()
        await expect(compose).to_be_visible()
        await shot(page, "phone-compose-open")
    finally:
        await page.context.close()
    assert problems == []


async def test_images_open_in_a_lightbox_and_articles_read_well(client, app, browser):  # noqa: F811
    from test_media import png_bytes

    from xnode.posts.service import ImageUpload

    alice = (await create_user(app, "alice", password=PASSWORD)).account
    await app[POSTS].publish(alice, Draft("zqx two photos", images=(
        ImageUpload(png_bytes((60, 40)), "a red square"),
        ImageUpload(png_bytes((40, 60)), "a tall one"),
    )))  # fmt: skip
    words = " ".join(["word"] * 900)
    article = await app[POSTS].publish(
        alice, Draft(f"# Heading\n\n{words}", kind="article", title="zqx A long read",
                     source_format="markdown"),
    )  # fmt: skip
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "alice", 1280, problems)
    try:
        await page.goto(f"{base}/local")
        card = page.locator("article.post", has_text="zqx two photos")
        await card.locator(".post-media a").first.click()
        box = page.locator("dialog.lightbox")
        await expect(box).to_be_visible()
        await expect(box.locator("figcaption")).to_have_text("a red square")
        await page.keyboard.press("ArrowRight")
        await expect(box.locator("figcaption")).to_have_text("a tall one")
        await shot(page, "lightbox-desktop")
        await page.keyboard.press("Escape")
        await expect(box).to_be_hidden()
        # An article is an excerpt card in the timeline, with its reading time.
        excerpt = page.locator("article.post", has_text="zqx A long read")
        await expect(excerpt.locator(".article-more")).to_contain_text("4 min read")
        await excerpt.get_by_role("link", name="Read the article").click()
        await expect(page.locator(".article-body")).to_be_visible()
        assert f"/{article.id}" in page.url
        await shot(page, "article-desktop")
    finally:
        await page.context.close()
    assert problems == []
