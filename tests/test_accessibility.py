"""An automated accessibility check of the main pages: axe-core in Chromium (issue 15).

axe-core comes from the npm registry with the other front-end assets
(assets/package.json); the check fails on any violation axe rates serious or
critical, at desktop and phone widths.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import create_user
from playwright.async_api import Page
from test_browser import PASSWORD, browser  # noqa: F401 (the fixture)

from xnode.posts.service import Draft
from xnode.web.state import DMS, POSTS, RELATIONSHIPS

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "assets" / "node_modules" / "axe-core" / "axe.min.js"


async def violations(page: Page) -> list[str]:
    """Serious and critical axe violations on the page, as readable lines."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => `${v.id} (${v.impact}): ${v.help} -- ${v.nodes.map(n => n.target.join(' '))"
        ".slice(0, 3).join(', ')}`)"
    )
    return list(found)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is installed by `make test` (assets)")
@pytest.mark.parametrize("width", [1280, 390])
async def test_main_pages_have_no_serious_accessibility_violations(
    client, app, browser, width  # noqa: F811
):
    alice = (await create_user(app, "alice", password=PASSWORD)).account
    bob = (await create_user(app, "bob", password=PASSWORD)).account
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    post = await app[POSTS].publish(bob, Draft("zqx a post with a #tag and a link https://x.org"))
    await app[POSTS].like(alice.id, post.id)
    message = await app[DMS].start(bob, "@alice", "zqx hello alice")
    base = str(client.make_url("/")).rstrip("/")
    # axe is injected as a script: the page's CSP (no inline scripts) is set aside for it.
    context = await browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    found: dict[str, list[str]] = {}
    try:
        await page.goto(f"{base}/login")
        found["/login"] = await violations(page)
        await page.get_by_label("Username").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{base}/")
        for path in ("/", "/local", "/@bob", f"/@bob/{post.id}", "/notifications",
                     "/messages", f"/messages/{message.conversation_id}", "/search?q=zqx",
                     "/settings/profile", "/settings/account"):  # fmt: skip
            await page.goto(base + path)
            found[path] = await violations(page)
        # The check itself works: a button without a name is a critical violation.
        await page.evaluate("document.body.append(document.createElement('button'))")
        assert any(line.startswith("button-name") for line in await violations(page))
    finally:
        await context.close()
    assert {path: lines for path, lines in found.items() if lines} == {}
