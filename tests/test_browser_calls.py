"""Calls in real headless Chromium (issue 16), at 1280 and 390 px wide: two people on one node,
with fake camera and microphone. The media really flow (getStats shows frames decoded and
packets received on both sides), both pages show the same verification code, and a call
that is declined or hung up ends on both sides. Screenshots go to ``.artifacts/screenshots``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import create_user
from playwright.async_api import Browser, Page, async_playwright, expect
from test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD
from test_browser_live import WIDTHS, shot, signed_in
from test_browser_messages import until

from xnode.web.state import ACCOUNTS, CALL_RELAY, CALLS, LIVE, RELATIONSHIPS

pytestmark = pytest.mark.browser

MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture
async def media_browser() -> Any:
    """Chromium with a fake camera and microphone that grants them without asking."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *MEDIA_ARGS]
        )
        yield launched
        await launched.close()


async def two_people(
    client: Any, app: Any, browser: Browser, width: int
) -> tuple[Page, Page, list[str]]:
    """alice and bob (who follow each other) signed in, each on bob's and alice's profile."""
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    caller = await signed_in(browser, base, "alice", width, problems)
    callee = await signed_in(browser, base, "bob", width, problems)
    await caller.goto(f"{base}/@bob")
    await until(lambda: app[LIVE].is_connected(alice.id) and app[LIVE].is_connected(bob.id))
    return caller, callee, problems


async def media_flows(page: Page) -> bool:
    quality = await page.evaluate("window.xnodeCalls.quality()")
    return bool(quality) and quality["framesDecoded"] > 0 and quality["audioPackets"] > 0


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_a_video_call_connects_both_ways_with_the_same_code_and_hangs_up(
    client, app, media_browser, layout
):
    caller, callee, problems = await two_people(client, app, media_browser, WIDTHS[layout])
    try:
        await caller.get_by_role("button", name="Video call").click()
        banner = callee.get_by_role("alertdialog", name="Incoming video call")
        await expect(banner).to_be_visible(timeout=10_000)
        await expect(banner).to_contain_text("@alice")
        await expect(caller.locator(".call-status")).to_have_text("Ringing…")
        await shot(callee, f"call-incoming-{layout}")
        await banner.get_by_role("button", name="Accept with video").click()

        for page in (caller, callee):
            await expect(page.locator(".call-status")).to_have_text("Connected", timeout=15_000)
            await expect(page.locator(".call-code")).to_be_visible()
        active = "window.xnodeCalls.active().code"
        codes = [await page.evaluate(active) for page in (caller, callee)]
        assert codes[0] is not None and codes[0] == codes[1]
        for page in (caller, callee):
            await until_true(page, media_flows)
        await shot(caller, f"call-connected-{layout}")
        call_id = await caller.evaluate("window.xnodeCalls.active().id")

        await callee.get_by_role("button", name="Hang up").click()
        await expect(caller.locator(".call-status")).to_have_text("Call ended", timeout=5_000)
        await expect(callee.locator(".call-status")).to_have_text("Call ended")
    finally:
        for page in (caller, callee):
            await page.context.close()
    assert problems == []
    call = await app[CALLS].call(int(call_id))
    assert call is not None and call.end_reason == "ended" and call.answered_at is not None


async def until_true(page: Page, check: Any, timeout_s: float = 15.0) -> None:
    """Wait until ``check(page)`` holds (media take a moment to flow)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check(page):
        assert asyncio.get_running_loop().time() < deadline, "media did not flow"
        await asyncio.sleep(0.25)


async def test_a_declined_call_says_so_and_the_other_tabs_stop_ringing(client, app, media_browser):
    caller, callee, problems = await two_people(client, app, media_browser, WIDTHS["desktop"])
    second_tab = await callee.context.new_page()
    await second_tab.goto(callee.url)
    try:
        await caller.get_by_role("button", name="Call", exact=True).click()
        for page in (callee, second_tab):
            await expect(page.get_by_role("alertdialog", name="Incoming call")).to_be_visible(
                timeout=10_000
            )
        await callee.get_by_role("button", name="Decline").click()
        await expect(caller.locator(".call-status")).to_have_text("Declined", timeout=5_000)
        await expect(second_tab.get_by_role("alertdialog")).to_have_count(0)
    finally:
        for page in (caller, callee):
            await page.context.close()
    assert problems == []


async def test_a_video_call_between_two_nodes_in_chromium(tmp_path, media_browser):
    from live_nodes import follow_across, start_node

    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b")
    problems: list[str] = []
    try:
        alice = (await a.app[ACCOUNTS].create_user("alice", PASSWORD)).account
        bob = (await b.app[ACCOUNTS].create_user("bob", PASSWORD)).account
        await follow_across(b, bob, a, "alice")  # bob takes calls from people he follows
        caller = await signed_in(media_browser, f"http://{a.domain}", "alice", 1280, problems)
        callee = await signed_in(media_browser, f"http://{b.domain}", "bob", 390, problems)
        await caller.goto(f"http://{a.domain}/@bob@{b.domain}")
        await until(lambda: a.app[LIVE].is_connected(alice.id) and b.app[LIVE].is_connected(bob.id))
        await caller.get_by_role("button", name="Video call").click()
        banner = callee.get_by_role("alertdialog", name="Incoming video call")
        await expect(banner).to_be_visible(timeout=10_000)
        await expect(banner).to_contain_text(f"@alice@{a.domain}")
        await banner.get_by_role("button", name="Accept with video").click()
        for page in (caller, callee):
            await expect(page.locator(".call-status")).to_have_text("Connected", timeout=15_000)
            await until_true(page, media_flows)
        active = "window.xnodeCalls.active().code"
        assert await caller.evaluate(active) == await callee.evaluate(active)
        await shot(callee, "call-across-nodes-phone")
        await caller.get_by_role("button", name="Hang up").click()
        await expect(callee.locator(".call-status")).to_have_text("Call ended", timeout=10_000)
    finally:
        for node in (b, a):
            await node.server.close()
    assert problems == []


async def test_always_relay_sends_the_call_through_the_nodes_own_relay(tmp_path, media_browser):
    from live_nodes import start_node

    node = await start_node(tmp_path, "a", call_relay=True)
    problems: list[str] = []
    try:
        alice = (await node.app[ACCOUNTS].create_user("alice", PASSWORD)).account
        bob = (await node.app[ACCOUNTS].create_user("bob", PASSWORD)).account
        await node.app[RELATIONSHIPS].follow(bob.id, alice.id)
        await node.app[CALLS].set_policy(alice.id, "following", True)  # always relay
        base = f"http://{node.domain}"
        caller = await signed_in(media_browser, base, "alice", 1280, problems)
        callee = await signed_in(media_browser, base, "bob", 1280, problems)
        await caller.goto(f"{base}/@bob")
        await until(lambda: node.app[LIVE].is_connected(bob.id))
        await caller.get_by_role("button", name="Call", exact=True).click()
        banner = callee.get_by_role("alertdialog", name="Incoming call")
        await banner.get_by_role("button", name="Accept").click()
        await expect(caller.locator(".call-status")).to_have_text("Connected", timeout=15_000)

        async def relayed(page: Page) -> bool:
            quality = await page.evaluate("window.xnodeCalls.quality()")
            return bool(quality) and quality["path"] == "relay" and quality["audioPackets"] > 0

        await until_true(caller, relayed)
        await expect(caller.locator(".call-quality")).to_contain_text("Through the relay")
        counters = node.app[CALL_RELAY].counters()
        assert counters.allocations_total >= 1 and counters.packets_to_peers > 0
        await caller.get_by_role("button", name="Hang up").click()
    finally:
        await node.server.close()
    assert problems == []


async def test_the_ringing_banner_and_the_call_view_pass_the_accessibility_check(
    client, app, media_browser
):
    from test_accessibility import AXE, violations

    if not AXE.exists():
        pytest.skip("axe-core is installed by `make test` (assets)")
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    # axe is injected as a script: the pages' CSP is set aside for it.
    caller = await signed_in(media_browser, base, "alice", 390, problems, bypass_csp=True)
    callee = await signed_in(media_browser, base, "bob", 390, problems, bypass_csp=True)
    try:
        await caller.goto(f"{base}/@bob")
        await until(lambda: app[LIVE].is_connected(bob.id))
        await caller.get_by_role("button", name="Video call").click()
        banner = callee.get_by_role("alertdialog", name="Incoming video call")
        await expect(banner).to_be_visible(timeout=10_000)
        found = {"banner": await violations(callee)}
        await banner.get_by_role("button", name="Accept with video").click()
        await expect(caller.locator(".call-status")).to_have_text("Connected", timeout=15_000)
        found["call view"] = await violations(caller)
        await caller.get_by_role("button", name="Hang up").click()
    finally:
        for page in (caller, callee):
            await page.context.close()
    assert {where: lines for where, lines in found.items() if lines} == {}
    assert problems == []


@pytest.mark.parametrize("ending", ["no answer", "cancelled", "busy"])
async def test_calls_that_do_not_happen_say_why_in_plain_words(
    client, app, media_browser, ending
):
    caller, callee, problems = await two_people(client, app, media_browser, WIDTHS["phone"])
    app[CALLS].ring_timeout_s = 1.5
    try:
        if ending == "busy":
            # bob is in a call with carol already.
            carol = (await create_user(app, "carol", password=PASSWORD)).account
            bob = await app[ACCOUNTS].require_user_by_name("bob")
            await app[RELATIONSHIPS].follow(bob.id, carol.id)
            base = str(client.make_url("/")).rstrip("/")
            third = await signed_in(media_browser, base, "carol", 390, problems)
            await third.goto(f"{base}/@bob")
            await until(lambda: app[LIVE].is_connected(carol.id))
            await third.get_by_role("button", name="Call", exact=True).click()
            await callee.get_by_role("alertdialog").get_by_role("button", name="Accept").click()
            await expect(third.locator(".call-status")).to_have_text("Connected", timeout=15_000)
            await caller.get_by_role("button", name="Call", exact=True).click()
            await expect(caller.locator(".call-status")).to_have_text("Busy", timeout=5_000)
            await shot(caller, "call-busy-phone")
            return
        await caller.get_by_role("button", name="Call", exact=True).click()
        banner = callee.get_by_role("alertdialog", name="Incoming call")
        await expect(banner).to_be_visible(timeout=10_000)
        if ending == "cancelled":
            await caller.get_by_role("button", name="Hang up").click()
            await expect(caller.locator(".call-status")).to_have_text("Cancelled")
        else:
            await expect(caller.locator(".call-status")).to_have_text("No answer", timeout=5_000)
        # Either way bob's banner goes, and the call he missed is in his notifications.
        await expect(banner).to_have_count(0, timeout=5_000)
        await callee.goto(str(client.make_url("/notifications")))
        await expect(callee.locator("li.notification-missed_call")).to_contain_text(
            "you missed the call"
        )
    finally:
        for page in (caller, callee):
            await page.context.close()
    assert problems == []


async def test_a_group_video_call_of_three_in_chromium(client, app, media_browser):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    names = ("bob", "carol")
    people = {name: (await create_user(app, name, password=PASSWORD)).account for name in names}
    for account in people.values():
        await app[RELATIONSHIPS].follow(account.id, alice.id)  # they take calls from alice
        await app[RELATIONSHIPS].follow(alice.id, account.id)
    from xnode.web.state import DMS

    message = await app[DMS].start(alice, "@bob @carol", "zqx the three of us")
    base = str(client.make_url("/")).rstrip("/")
    problems: list[str] = []
    pages = {"alice": await signed_in(media_browser, base, "alice", 1280, problems)}
    for name in names:
        pages[name] = await signed_in(media_browser, base, name, 390, problems)
    try:
        await pages["alice"].goto(f"{base}/messages/{message.conversation_id}")
        await until(lambda: all(app[LIVE].is_connected(a.id) for a in people.values()))
        await pages["alice"].get_by_role("button", name="Group video call").click()
        for name in names:
            banner = pages[name].get_by_role("alertdialog", name="Incoming video call")
            await expect(banner).to_be_visible(timeout=10_000)
            await banner.get_by_role("button", name="Accept with video").click()
        # Everyone sees and hears both others.
        for page in pages.values():
            await expect(page.locator(".call-status")).to_have_text("Connected", timeout=15_000)

            async def both_flow(page: Page = page) -> bool:
                found = await page.evaluate("window.xnodeCalls.peerQualities()")
                return bool(found) and len(found) == 2 and all(
                    q["framesDecoded"] > 0 and q["audioPackets"] > 0 for q in found.values()
                )

            await until_true(page, both_flow)
            await expect(page.locator(".call-tile")).to_have_count(2)
        # Each pair sees the same code for their connection (each page shows one per other
        # person once its connections' certificates are read, shortly after connecting).
        for page in pages.values():

            async def both_codes(page: Page = page) -> bool:
                code = await page.evaluate("window.xnodeCalls.active().code")
                return isinstance(code, dict) and len(code) == 2

            await until_true(page, both_codes)
        codes = {name: await page.evaluate("window.xnodeCalls.active().code")
                 for name, page in pages.items()}  # fmt: skip
        ids = {"alice": str(alice.id), **{n: str(a.id) for n, a in people.items()}}
        for one, other in (("alice", "bob"), ("alice", "carol"), ("bob", "carol")):
            assert codes[one][ids[other]] == codes[other][ids[one]]
        await shot(pages["alice"], "call-group-desktop")
        # bob leaves: alice and carol go on, with one tile each.
        await pages["bob"].get_by_role("button", name="Hang up").click()
        for name in ("alice", "carol"):
            await expect(pages[name].locator(".call-tile")).to_have_count(1, timeout=5_000)
        await pages["carol"].get_by_role("button", name="Hang up").click()
        await expect(pages["alice"].locator(".call-status")).to_have_text("Call ended",
                                                                          timeout=5_000)
    finally:
        for page in pages.values():
            await page.context.close()
    assert problems == []
