"""A quoted message that is deleted disappears from the replies that quote it too (issue 15).

In real headless Chromium at 1280 and 390 px: bob answers one of alice's messages
with Reply (his message quotes hers); alice deletes hers; bob's open tab replaces
the quote without a reload, and the page says the same after one.
"""

from __future__ import annotations

import pytest
from conftest import create_user
from playwright.async_api import Browser, expect
from test_browser import PASSWORD, browser
from test_browser_live import WIDTHS, shot, signed_in
from test_browser_messages import until

from xnode.web.state import DMS, LIVE, RELATIONSHIPS

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # the fixture, imported for pytest


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_a_deleted_quoted_message_leaves_the_reply_that_quotes_it(
    client, app, browser: Browser, layout: str
):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(bob.id, alice.id)  # not a message request
    quoted = await app[DMS].start(alice, "@bob", "zqx the plan is off")
    conversation = quoted.conversation_id
    # Another message in between: a reply quotes only what is not right above it.
    await app[DMS].send(alice, conversation, "zqx sorry about that")
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page_a = await signed_in(browser, base, "alice", WIDTHS[layout], problems)
    page_b = await signed_in(browser, base, "bob", WIDTHS[layout], problems)
    page_a.on("dialog", lambda dialog: dialog.accept())  # "Delete this message for everyone?"
    try:
        await page_a.goto(f"{base}/messages/{conversation}")
        await page_b.goto(f"{base}/messages/{conversation}")
        await until(lambda: app[LIVE].is_connected(alice.id) and app[LIVE].is_connected(bob.id))
        await page_b.evaluate("window.__noReload = true")

        # bob answers the first message with Reply: his message quotes it.
        first = page_b.locator(f"#m{quoted.id}")
        await first.get_by_role("link", name="Reply").click()
        await expect(page_b.locator("#replying")).to_contain_text("zqx the plan is off")
        await page_b.get_by_label("Message", exact=True).fill("zqx which plan?")
        await page_b.get_by_role("button", name="Send").click()
        answer = page_b.locator("#message-list article.message", has_text="zqx which plan?")
        await expect(answer.locator(".message-quote")).to_contain_text("zqx the plan is off")
        await shot(page_b, f"message-quote-{layout}")

        # alice deletes the quoted message from her tab.
        mine = page_a.locator(f"#m{quoted.id}")
        await expect(page_a.locator("#message-list", has_text="zqx which plan?")).to_be_visible()
        await mine.get_by_role("button", name="Delete").click()
        await expect(mine.locator(".message-deleted")).to_have_text("Message deleted")

        # bob's tab follows without a reload: the message and its quote are gone.
        await expect(first.locator(".message-deleted")).to_have_text("Message deleted")
        await expect(answer.locator(".message-quote")).to_have_text(
            "Replying to a deleted message"
        )
        assert "zqx the plan is off" not in await page_b.locator("#message-list").inner_text()
        assert await page_b.evaluate("window.__noReload === true")
        await shot(page_b, f"message-quote-deleted-{layout}")

        # A fresh load says it was deleted too (not "an earlier message").
        await page_b.reload()
        await expect(answer.locator(".message-quote")).to_contain_text("deleted")
        assert "zqx the plan is off" not in await page_b.locator("#message-list").inner_text()
    finally:
        await page_a.context.close()
        await page_b.context.close()
    assert problems == []
