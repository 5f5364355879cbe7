"""Remote people in real headless Chromium, across two live nodes (issue 15), at 1280 and 390 px.

alice lives on node A, bruno on node B; A also has a local ``bruno``, so anything
built from the bare username would land on the wrong person. alice finds bruno by
his handle, reads his profile and threads as A knows them (backfilled from B),
follows, mutes and blocks him, and they exchange direct messages. Screenshots go
to ``.artifacts/screenshots``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from live_nodes import LiveNode, eventually, follow_across, nodes, remote_post
from PIL import Image
from playwright.async_api import Browser, Page, expect
from test_browser import PASSWORD, browser
from test_browser_live import WIDTHS, shot, signed_in
from test_browser_messages import until

from xnode.accounts.models import Account
from xnode.accounts.relationships import Relationship
from xnode.posts.models import Post
from xnode.posts.service import Draft
from xnode.web.state import ACCOUNTS, LIVE, POSTS, PROFILES, RELATIONSHIPS

pytestmark = pytest.mark.browser

__all__ = ["browser", "nodes"]  # the fixtures, imported for pytest


def base_of(node: LiveNode) -> str:
    """The URL a browser opens the node at."""
    return str(node.server.make_url("")).rstrip("/")


async def person(node: LiveNode, name: str, display_name: str, *, locked: bool = False) -> Account:
    """A user who can sign in with the browser password, with a display name."""
    account = (await node[ACCOUNTS].create_user(name, PASSWORD)).account
    return await node[PROFILES].update_profile(
        account.id, display_name, "", (), locked=locked, discoverable=True
    )


def square_png(colour: tuple[int, int, int]) -> bytes:
    """A 200 px square of one colour (an avatar)."""
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Cast:
    """Who is where: alice and a local bruno on A; bruno, his fan and carol on B."""

    alice: Account
    local_bruno: Account
    bruno: Account  # on B
    posts: list[Post]  # bruno's public posts, oldest first; the first one is pinned
    question: Post  # bruno's post that carol answered on B
    answer: Post  # carol's reply, which nobody on A was sent


async def cast(a: LiveNode, b: LiveNode) -> Cast:
    """Everyone, with bruno's posts, pin, follower and a thread that A was not sent."""
    alice = await person(a, "alice", "Alice A")
    local_bruno = await person(a, "bruno", "Bruno the local")
    bruno = await person(b, "bruno", "Bruno Remote")
    await b[PROFILES].set_image(bruno.id, "avatar", square_png((30, 120, 200)))
    fan = await b.user("fan")
    await b[RELATIONSHIPS].follow(fan.id, bruno.id)
    carol = await b.user("carol")
    posts = [await b[POSTS].publish(bruno, Draft(f"zqx bruno says {n}")) for n in range(3)]
    await b[POSTS].pin(bruno.id, posts[0].id)
    question = await b[POSTS].publish(bruno, Draft("zqx what do you all think?"))
    answer = await b[POSTS].publish(carol, Draft("zqx carol answers on B",
                                                 in_reply_to_id=question.id))  # fmt: skip
    return Cast(alice, local_bruno, bruno, posts, question, answer)


async def untouched(a: LiveNode, c: Cast) -> None:
    """Nothing alice did to the remote bruno landed on the local one."""
    local = await a[RELATIONSHIPS].relationship(c.alice.id, c.local_bruno.id)
    assert not any((local.following, local.requested, local.muting, local.blocking)), local


async def on_b(a: LiveNode, b: LiveNode, c: Cast) -> Relationship:
    """How bruno stands towards alice, as node B knows it."""
    alice_on_b = await b.remote(f"alice@{a.domain}")
    return await b[RELATIONSHIPS].relationship(c.bruno.id, alice_on_b.id)


async def click_action(page: Page, label: str, then: str) -> None:
    """Press a profile button and wait for the one that replaces it (no reload)."""
    actions = page.locator(".profile-actions")
    await actions.get_by_role("button", name=label, exact=True).click()
    await expect(actions.get_by_role("button", name=then, exact=True)).to_be_visible()


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_find_read_follow_mute_and_block_a_person_on_another_node(
    nodes, browser: Browser, layout: str
):
    a, b = nodes
    c = await cast(a, b)
    handle = f"bruno@{b.domain}"
    profile = f"{base_of(a)}/@{handle}"
    problems: list[str] = []
    page = await signed_in(browser, base_of(a), "alice", WIDTHS[layout], problems)
    try:
        # Found by handle (WebFinger to B); the result opens A's own view of him.
        await page.goto(f"{base_of(a)}/search")
        await page.get_by_label("Search posts, people and hashtags").fill(f"@{handle}")
        await page.get_by_role("button", name="Search", exact=True).click()
        row = page.locator(".account-row", has_text=f"@{handle}")
        await expect(row).to_have_count(1)
        await shot(page, f"remote-search-{layout}")
        await row.get_by_role("link", name="Bruno Remote").click()
        await page.wait_for_url(profile)

        # What B knows: his posts, the pinned one, his counts; his avatar comes through A.
        await expect(page.get_by_role("heading", name="Bruno Remote")).to_be_visible()
        pinned = page.locator("section[aria-labelledby=pinned-heading]")
        await expect(pinned.locator("article.post")).to_have_count(1)
        await expect(pinned).to_contain_text("zqx bruno says 0")
        # Newest first, as on his own server (the outbox is read newest first).
        recent = page.locator("section[aria-labelledby=posts-heading] .post-content")
        await expect(recent).to_have_text(
            ["zqx what do you all think?", "zqx bruno says 2", "zqx bruno says 1"]
        )
        stats = page.locator(".profile-stats")
        await expect(stats).to_contain_text("1 follower")
        await expect(stats).to_contain_text("0 following")
        avatar = page.get_by_alt_text("Avatar of Bruno Remote")
        assert (await avatar.get_attribute("src") or "").startswith("/media/remote/avatar/")
        await page.wait_for_function(  # the image really loaded (decoded by the browser)
            "() => { const i = document.querySelector('.profile-head img.avatar');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        # Only "View on …" leads to B; every other link (counts, posts, people) stays on A.
        hrefs = await page.locator("main a[href]").evaluate_all("l => l.map(a => a.href)")
        elsewhere = [h for h in hrefs if not h.startswith(base_of(a))]
        assert elsewhere == [f"http://{b.domain}/@bruno"], elsewhere
        await shot(page, f"remote-profile-{layout}")

        # Follow: on its way, then accepted by B.
        await page.evaluate("window.__noReload = true")
        await page.locator(".profile-actions").get_by_role("button", name="Follow").click()
        await expect(page.locator(".live-status")).to_contain_text(
            f"Your follow is on its way to @{handle}"
        )
        await eventually(lambda: _followed_by(a, b, c))
        them = await a.remote(handle)

        async def accepted() -> bool:  # B's Accept came back to A
            return (await a[RELATIONSHIPS].relationship(c.alice.id, them.id)).following

        await eventually(accepted)
        await page.reload()
        await expect(page.locator(".profile-actions").get_by_role("button", name="Unfollow")
                     ).to_be_visible()  # fmt: skip
        await expect(stats).to_contain_text("2 followers")  # the fan, and alice now
        await shot(page, f"remote-followed-{layout}")
        await untouched(a, c)

        # alice's following list links to A's view of bruno, not to B.
        await page.goto(f"{base_of(a)}/@alice/following")
        await page.locator(".account-row").get_by_role("link", name="Bruno Remote").click()
        await page.wait_for_url(profile)

        # Mute and unmute, block and unblock: all on the remote bruno, in place.
        await page.evaluate("window.__noReload = true")
        rels = a[RELATIONSHIPS]
        await click_action(page, "Mute", "Unmute")
        assert (await rels.relationship(c.alice.id, them.id)).muting
        await click_action(page, "Unmute", "Mute")
        assert not (await rels.relationship(c.alice.id, them.id)).muting
        await click_action(page, "Block", "Unblock")
        assert (await rels.relationship(c.alice.id, them.id)).blocking
        await expect(stats).to_contain_text("1 follower")  # a block ends the follow
        await eventually(lambda: _blocked_by_alice(a, b, c))  # B heard of it
        await shot(page, f"remote-blocked-{layout}")
        await click_action(page, "Unblock", "Follow")
        assert not (await rels.relationship(c.alice.id, them.id)).blocking
        assert await page.evaluate("window.__noReload === true")
        await untouched(a, c)

        # A thread of his: carol's answer (sent to B only) is read from B when alice looks.
        assert await remote_post(a, c.answer.uri) is None
        question = await remote_post(a, c.question.uri)
        await page.goto(profile)
        await page.locator(f"#post-{question['id']} a.post-time").click()
        await page.wait_for_url(f"{profile}/{question['id']}")
        await expect(page.get_by_text("zqx carol answers on B")).to_be_visible()
        await shot(page, f"remote-thread-{layout}")
    finally:
        await page.context.close()
    assert problems == []


async def _followed_by(a: LiveNode, b: LiveNode, c: Cast) -> bool:
    return (await on_b(a, b, c)).followed_by


async def _blocked_by_alice(a: LiveNode, b: LiveNode, c: Cast) -> bool:
    return (await on_b(a, b, c)).blocked_by


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_a_locked_person_on_another_node_gets_a_request(nodes, browser: Browser, layout: str):
    a, b = nodes
    await person(a, "alice", "Alice A")
    lena = await person(b, "lena", "Lena Locked", locked=True)
    handle = f"lena@{b.domain}"
    problems: list[str] = []
    page = await signed_in(browser, base_of(a), "alice", WIDTHS[layout], problems)
    try:
        await page.goto(f"{base_of(a)}/@{handle}")
        await expect(page.locator(".profile .handle")).to_contain_text("locked")
        await click_action(page, "Request to follow", "Cancel request")
        await expect(page.locator(".live-status")).to_contain_text(
            f"Follow request sent. @{handle} reviews requests before accepting."
        )
        alice_on_b = await b.remote(f"alice@{a.domain}")

        async def requested() -> bool:
            return (await b[RELATIONSHIPS].relationship(lena.id, alice_on_b.id)
                    ).has_pending_request_from  # fmt: skip

        await eventually(requested)
        await shot(page, f"remote-locked-requested-{layout}")
    finally:
        await page.context.close()
    assert problems == []


@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_direct_messages_between_two_nodes_arrive_live(nodes, browser: Browser, layout: str):
    a, b = nodes
    alice = await person(a, "alice", "Alice A")
    bruno = await person(b, "bruno", "Bruno Remote")
    await follow_across(b, bruno, a, "alice")  # so alice's message is no request for him
    await follow_across(a, alice, b, "bruno")
    problems: list[str] = []
    page_a = await signed_in(browser, base_of(a), "alice", WIDTHS[layout], problems)
    page_b = await signed_in(browser, base_of(b), "bruno", WIDTHS[layout], problems)
    try:
        await page_b.goto(f"{base_of(b)}/messages")
        await until(lambda: b[LIVE].is_connected(bruno.id))
        await page_b.evaluate("window.__noReload = true")

        # alice writes to bruno by his handle on A.
        await page_a.goto(f"{base_of(a)}/messages/new")
        await page_a.get_by_label("To").fill(f"@bruno@{b.domain}")
        await page_a.get_by_label("Message", exact=True).fill("zqx hello across the nodes")
        await page_a.get_by_role("button", name="Send").click()
        await page_a.wait_for_url(f"{base_of(a)}/messages/*")
        await until(lambda: a[LIVE].is_connected(alice.id))
        await page_a.evaluate("window.__noReload = true")

        # It reaches B and bruno's open list, without a reload.
        row = page_b.locator(".conversation-row", has_text="zqx hello across the nodes")
        await expect(row).to_have_count(1, timeout=10000)
        await expect(page_b.locator("a.nav-messages .badge")).to_have_text("1")
        assert await page_b.evaluate("window.__noReload === true")
        await shot(page_b, f"remote-dm-list-{layout}")
        await row.get_by_role("link").click()
        await expect(page_b.get_by_text("zqx hello across the nodes")).to_be_visible()

        # bruno answers from B; alice's open conversation on A shows it without a reload.
        await page_b.get_by_label("Message", exact=True).fill("zqx hello back from B")
        await page_b.get_by_role("button", name="Send").click()
        await expect(page_b.locator("#message-list article.message",
                                    has_text="zqx hello back from B")).to_have_count(1)  # fmt: skip
        arrived = page_a.locator("#message-list article.message", has_text="zqx hello back from B")
        await expect(arrived).to_have_count(1, timeout=10000)
        await expect(arrived.locator(".message-author")).to_have_text("Bruno Remote")
        assert await page_a.evaluate("window.__noReload === true")
        await shot(page_a, f"remote-dm-conversation-{layout}")
    finally:
        await page_a.context.close()
        await page_b.context.close()
    assert problems == []
