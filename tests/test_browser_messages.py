"""Two people chatting in real headless Chromium: messages and typing arrive without reloads."""

from __future__ import annotations

import asyncio

import pytest
from conftest import create_user
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_browser import PASSWORD, browser  # noqa: F401 (the fixture)

from xnode.web.state import DMS, LIVE, RELATIONSHIPS

pytestmark = pytest.mark.browser


async def logged_in_page(
    browser: Browser,  # noqa: F811 (the fixture's value)
    base: str,
    username: str,
    problems: list[str],
) -> tuple[BrowserContext, Page]:
    """A fresh browser profile with ``username`` logged in; errors and CSP reports collected."""
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"{username}: {exc}"))
    # CSP violations are reported as console errors; the node has no favicon (Chromium asks).
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
    return context, page


async def until(condition, timeout_s: float = 5.0) -> None:
    """Wait for a server-side condition (polling)."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_message_and_typing_arrive_live(client, app, browser):  # noqa: F811
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    first = await app[DMS].start(alice, "@bob", "zqx hello from the service")
    conversation = first.conversation_id
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []

    context_a, page_a = await logged_in_page(browser, base, "alice", problems)
    context_b, page_b = await logged_in_page(browser, base, "bob", problems)
    try:
        await page_a.goto(f"{base}/messages/{conversation}")
        await page_b.goto(f"{base}/messages/{conversation}")
        await expect(page_b.get_by_text("zqx hello from the service")).to_be_visible()
        # Both tabs (and the earlier front pages' sockets, now closed) settle on one socket each.
        await until(lambda: app[LIVE].is_connected(alice.id) and app[LIVE].is_connected(bob.id))
        # A marker that a reload would wipe.
        await page_b.evaluate("window.__noReload = true")

        box = page_a.get_by_label("Message", exact=True)
        await box.click()
        # Text that looks like a frame's keys must not confuse the script's big-id parsing.
        await box.press_sequentially('zqx typed live {"id": 1, "conversation": 2}', delay=20)
        typing = page_b.locator("#typing")
        await expect(typing).to_have_text("alice is typing…", timeout=5000)

        await page_a.get_by_role("button", name="Send").click()
        arrived = page_b.locator("#message-list article.message", has_text="zqx typed live")
        await expect(arrived).to_have_count(1, timeout=5000)
        assert await page_b.evaluate("window.__noReload === true")
        assert page_b.url == f"{base}/messages/{conversation}"
        # The sender sees it once (its own reply and the pushed frame are deduplicated),
        # and the box is empty again.
        mine = page_a.locator("#message-list article.message", has_text="zqx typed live")
        await expect(mine).to_have_count(1)
        await expect(box).to_have_value("")

        # Bob reacts without a reload; alice's tab follows.
        await page_b.locator("article.message", has_text="zqx typed live").get_by_text(
            "React", exact=True
        ).click()
        await page_b.get_by_role("button", name="React with 🎉").last.click()
        await expect(
            page_a.locator("article.message", has_text="zqx typed live").locator(".reaction")
        ).to_have_text("🎉 1", timeout=5000)
        assert await page_b.evaluate("window.__noReload === true")
    finally:
        await context_a.close()
        await context_b.close()
    assert problems == []
