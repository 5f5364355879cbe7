"""A person on the independent Fedify peer, in real headless Chromium (issue 15).

Collected from ``test_fedify.py``, which imports the test: the peer (127.0.0.12:443)
and the node (127.0.0.21:443) each bind one address's port 443, so every test
that needs them must run in the one pytest-xdist worker that owns those ports,
and ``--dist loadfile`` keeps one file's tests together. The test uses that
module's ``node`` fixture: xnode at https://xnode-a.test, trusting the test CA.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from fedify_peer import NODE_HOST, PEER_HOST, FedifyPeer
from live_nodes import eventually
from playwright.async_api import Browser, expect
from test_browser import PASSWORD
from test_browser_live import WIDTHS, shot, signed_in

from xnode.activitypub.endpoints import RESOLVER
from xnode.web.state import ACCOUNTS, RELATIONSHIPS


async def ctl(peer: FedifyPeer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The peer's control API, off the event loop that serves xnode."""
    return await asyncio.to_thread(peer.ctl, path, body)


@pytest.mark.browser
@pytest.mark.parametrize("layout", list(WIDTHS))
async def test_a_fedify_person_is_found_read_and_followed_in_the_browser(
    node: Any, fedify_peer: FedifyPeer, browser: Browser, layout: str
):
    tag = secrets.token_hex(3)  # the peer's state lasts the whole session: fresh names
    local, remote = f"xa{tag}", f"pb{tag}"
    alice = (await node[ACCOUNTS].create_user(local, PASSWORD)).account
    assert (await ctl(fedify_peer, "/actor", {"actor": remote, "displayName": "Fedi Peer"}))["ok"]
    for n in range(2):
        note = await ctl(fedify_peer, "/note", {"actor": remote, "to": ["public"],
                                                "content": f"zqx fedify says {n}"})  # fmt: skip
        assert note["ok"], note
    base, handle = f"https://{NODE_HOST}", f"{remote}@{PEER_HOST}"
    problems: list[str] = []
    # Chromium does not know the test CA; xnode's own fetches do check it.
    page = await signed_in(browser, base, local, WIDTHS[layout], problems,
                           ignore_https_errors=True)  # fmt: skip
    try:
        await page.goto(f"{base}/search")
        await page.get_by_label("Search posts, people and hashtags").fill(f"@{handle}")
        await page.get_by_role("button", name="Search", exact=True).click()
        row = page.locator(".account-row", has_text=f"@{handle}")
        await row.get_by_role("link", name="Fedi Peer").click()
        await page.wait_for_url(f"{base}/@{handle}")  # our view, not the peer's page

        # The peer's public notes, read from its outbox, newest first.
        await expect(page.get_by_role("heading", name="Fedi Peer")).to_be_visible()
        posts = page.locator("section[aria-labelledby=posts-heading] .post-content")
        await expect(posts).to_have_text(["zqx fedify says 1", "zqx fedify says 0"])
        await expect(page.locator(".profile-stats")).to_contain_text("0 followers")

        await page.locator(".profile-actions").get_by_role("button", name="Follow").click()
        await expect(page.locator(".live-status")).to_contain_text(
            f"Your follow is on its way to @{handle}"
        )

        # The peer has alice among its followers, and its Accept came back.
        async def on_the_peer() -> bool:
            followers = (await ctl(fedify_peer, f"/followers/{remote}"))["items"]
            return f"https://{NODE_HOST}/users/{local}" in [f["id"] for f in followers]

        await eventually(on_the_peer)
        account = await node[RESOLVER].actor_by_handle(handle)

        async def accepted() -> bool:
            return (await node[RELATIONSHIPS].relationship(alice.id, account.id)).following

        await eventually(accepted)
        await page.reload()
        await expect(page.locator(".profile-actions").get_by_role("button", name="Unfollow")
                     ).to_be_visible()  # fmt: skip
        await expect(page.locator(".profile-stats")).to_contain_text("1 follower")
        await shot(page, f"fedify-profile-followed-{layout}")
    finally:
        await page.context.close()
    assert problems == []
