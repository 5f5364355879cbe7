"""The social parts of the web UI in headless Chromium (issue 15), at 1280 and 390 px wide:
grouped notifications with small previews and a live badge, a boost shown once, a reply
written on a thread's page (no article options, back to the thread, "replying to"), and
the admin's sign-up badge. Screenshots go to ``.artifacts/screenshots``.
"""

from __future__ import annotations

import re

import pytest
from conftest import create_user
from playwright.async_api import expect
from test_browser import PASSWORD, browser  # noqa: F401 (the fixture)
from test_browser_live import WIDTHS, shot, signed_in
from test_browser_messages import until

from xnode.posts.service import Draft
from xnode.web.state import ACCOUNTS, LIVE, POSTS, RELATIONSHIPS

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_likes_are_grouped_with_a_small_preview_and_the_badge_is_live(
    client, app, browser, layout  # noqa: F811
):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    post = await app[POSTS].publish(alice, Draft("zqx a post people like"))
    for name in ("bob", "carol", "dave"):
        fan = (await create_user(app, name, password=PASSWORD)).account
        await app[POSTS].like(fan.id, post.id)
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "alice", WIDTHS[layout], problems)
    try:
        badge = page.locator('a[href="/notifications"] .badge')
        await expect(badge).to_have_text("3")
        await page.goto(f"{base}/notifications")
        grouped = page.locator("li.notification-like")
        await expect(grouped).to_have_count(1)
        await expect(grouped).to_contain_text(re.compile(r"dave and 2 others\s+liked your post"))
        # A small preview of one's own post, not the whole card with its images.
        await expect(grouped.locator("a.notification-preview")).to_contain_text(
            "zqx a post people like"
        )
        await expect(grouped.locator("article.post")).to_have_count(0)
        await shot(page, f"notifications-grouped-{layout}")

        # A new follower while alice reads her home timeline: the badge moves at once.
        await page.get_by_role("button", name="Mark all as read").click()
        await page.goto(f"{base}/")
        await expect(badge).to_have_count(0)
        await until(lambda: app[LIVE].is_connected(alice.id))
        erin = (await create_user(app, "erin", password=PASSWORD)).account
        await app[RELATIONSHIPS].follow(erin.id, alice.id)
        await expect(badge).to_have_text("1", timeout=5000)
    finally:
        await page.context.close()
    assert problems == []


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_a_boost_shows_once_and_a_reply_returns_to_its_thread(
    client, app, browser, layout  # noqa: F811
):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    carol = (await create_user(app, "carol", password=PASSWORD)).account
    dave = (await create_user(app, "dave", password=PASSWORD)).account
    for friend in (carol, dave):
        await app[RELATIONSHIPS].follow(alice.id, friend.id)
    original = await app[POSTS].publish(bob, Draft("zqx worth sharing"))
    await app[POSTS].boost(carol, original.id)
    await app[POSTS].boost(dave, original.id)
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "alice", WIDTHS[layout], problems)
    try:
        # Boosted by two people alice follows: once, under the latest boost.
        shared = page.locator("section.timeline article.post", has_text="zqx worth sharing")
        await expect(shared).to_have_count(1)
        await expect(shared.locator(".post-boosted")).to_contain_text("dave boosted")
        await shot(page, f"boost-once-{layout}")

        # Replying from the thread: a short post only, then back on the thread.
        thread_url = f"{base}/@bob/{original.id}"
        await page.goto(thread_url)
        reply = page.locator("form#reply")
        await expect(reply.get_by_text("Article", exact=True)).to_have_count(0)
        await reply.get_by_label("Your reply").fill("zqx agreed, @bob")
        await reply.get_by_role("button", name="Reply").click()
        await page.wait_for_url(re.compile(re.escape(thread_url)))
        answer = page.locator(".thread-replies article.post", has_text="zqx agreed")
        await expect(answer).to_have_count(1)
        await expect(answer.locator(".post-meta")).to_contain_text("replying to @bob")
        await shot(page, f"reply-on-thread-{layout}")
    finally:
        await page.context.close()
    assert problems == []


async def test_the_admin_sees_waiting_sign_ups_in_the_navigation(client, app, browser):  # noqa: F811
    await create_user(app, "ops", password=PASSWORD, admin=True)
    await app[ACCOUNTS].create_user(
        "newcomer", PASSWORD, state="pending", signup_reason="I garden"
    )
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    page = await signed_in(browser, base, "ops", WIDTHS["phone"], problems)
    try:
        waiting = page.get_by_label("1 sign-ups waiting for approval").first
        await expect(waiting).to_be_visible()
        await shot(page, "admin-sign-up-badge-phone")
    finally:
        await page.context.close()
    assert problems == []
