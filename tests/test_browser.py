"""A person in real headless Chromium: sign up, log in, edit profile with avatar, log out."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Chromium must not try to reach Google's services: this machine's network is closed.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a long browser password"

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright (installed by `make test`)."""
    assert CHROMIUM.exists(), "Chromium is missing: run `make test-deps` (apt package chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


def avatar_png(path: Path) -> Path:
    image = Image.new("RGB", (640, 480), (200, 40, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


async def log_out(page: Page) -> None:
    await page.get_by_text("More", exact=True).click()  # the menu that holds it
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_load_state()
    assert await page.get_by_role("link", name="Log in").first.is_visible()


async def test_sign_up_edit_profile_with_avatar_and_log_out(client, browser, tmp_path):
    base = str(client.make_url("/")).rstrip("/")
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(f"{base}/signup")
    await page.get_by_label("Username").fill("rosa")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"{base}/settings/profile")

    await log_out(page)
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill("rosa")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/")
    assert "Hello, rosa" in await page.content()

    await page.goto(f"{base}/settings/profile")
    await page.get_by_label("Display name").fill("Rosa Parks")
    await page.get_by_label("Bio").fill("Sits where she likes. https://example.org")
    await page.get_by_label("New avatar").set_input_files(str(avatar_png(tmp_path / "me.png")))
    await page.get_by_role("button", name="Save profile").click()
    await page.wait_for_load_state()

    await page.goto(f"{base}/@rosa")
    assert await page.get_by_role("heading", name="Rosa Parks").is_visible()
    avatar = page.get_by_alt_text("Avatar of Rosa Parks")
    await avatar.wait_for()
    # The image really loaded (decoded by the browser), and was resized to at most 400 px.
    width = await avatar.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert 0 < width <= 400
    link = page.get_by_role("link", name="https://example.org")
    assert await link.get_attribute("rel") == "nofollow noopener noreferrer"

    await log_out(page)
    await page.goto(f"{base}/settings/profile")
    assert page.url.startswith(f"{base}/login")
    assert errors == []


HOSTILE = (
    '<script>window.__xss = "script"</script>'
    '<img src=x onerror="window.__xss = \'onerror\'">'
    '<a href="javascript:window.__xss=\'link\'" id="jslink">click</a>'
    '<svg onload="window.__xss = \'svg\'"></svg>'
)


async def test_hostile_post_executes_nothing(client, app, browser):
    """Plain-text and Markdown posts full of script and event handlers stay inert."""
    from conftest import create_user

    await create_user(app, "mallory", password=PASSWORD)
    base = str(client.make_url("/")).rstrip("/")
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill("mallory")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/")

    post_urls = []
    for text_format in ("plain", "markdown"):
        await page.goto(f"{base}/")
        await page.get_by_label("What do you want to say?").fill(f"{text_format}: {HOSTILE}")
        await page.get_by_label("Text format").select_option(text_format)
        await page.get_by_role("button", name="Publish").click()
        await page.wait_for_load_state()
        post_urls.append(page.url)

    for url in [*post_urls, f"{base}/", f"{base}/local", f"{base}/@mallory"]:
        await page.goto(url)
        await page.wait_for_load_state("load")
        assert await page.evaluate("window.__xss === undefined"), url
        assert await page.locator("article.post script, article.post [onerror]").count() == 0
        links = page.locator("article.post a[href^='javascript:']")
        assert await links.count() == 0, url
    assert "plain: <script>" in await page.content() or "&lt;script&gt;" in await page.content()
    assert dialogs == []
