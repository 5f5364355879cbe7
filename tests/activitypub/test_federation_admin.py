"""The federation admin page, the author's delivery status on the post page, silenced servers."""

from __future__ import annotations

import html

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from conftest import create_user, csrf_from, login, post_form

from xnode.accounts.models import Account
from xnode.ids import new_id
from xnode.posts.service import Draft
from xnode.store import deliveries, domain_blocks
from xnode.web.state import DB, POSTS

PAGE = "/admin/federation"


async def as_admin(client: TestClient, app: Application) -> None:
    """Create an admin and log them in."""
    await create_user(app, "boss", admin=True)
    await login(client, "boss")


async def flash_after(client: TestClient, response) -> str:
    """Follow a 303 and return the page text (which shows the flash)."""
    assert response.status == 303, await response.text()
    page = await client.get(response.headers["Location"])
    return html.unescape(await page.text())


async def remote_account(app: Application, username: str, domain: str) -> Account:
    """A remote account row, as the incoming side stores it."""
    account_id = new_id()
    actor = f"https://{domain}/users/{username}"
    await app[DB].execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
        (account_id, username, username, domain, actor, f"{actor}/inbox"),
    )
    return Account(
        id=account_id, username=username, domain=domain, display_name="", bio_source="",
        bio_html="", fields=(), avatar_file=None, header_file=None, locked=False,
        discoverable=True, hide_network=False, uri=actor, url=None, created_at=0,
        updated_at=0, suspended_at=None, deleted_at=None,
    )


# --- access ------------------------------------------------------------------------------


async def test_anonymous_is_sent_to_login(client):
    response = await client.get(PAGE, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")


async def test_non_admins_can_neither_see_nor_change(client, app):
    await create_user(app, "mallory")
    await login(client, "mallory")
    assert (await client.get(PAGE, allow_redirects=False)).status == 403
    token = await csrf_from(client, "/")
    for path, data in [
        (f"{PAGE}/blocks", {"domain": "evil.test", "severity": "suspend"}),
        (f"{PAGE}/unblock", {"domain": "evil.test"}),
        (f"{PAGE}/retry", {"host": "evil.test"}),
    ]:
        response = await client.post(path, data={"csrf_token": token, **data},
                                      allow_redirects=False)
        assert response.status == 403, path
    assert await domain_blocks.list_blocks(app[DB]) == []


async def test_forms_need_the_csrf_token(client, app):
    await as_admin(client, app)
    for token in (None, "forged"):
        data = {"domain": "evil.test", "severity": "suspend"}
        if token:
            data["csrf_token"] = token
        response = await client.post(f"{PAGE}/blocks", data=data, allow_redirects=False)
        assert response.status == 403
    assert await domain_blocks.list_blocks(app[DB]) == []


async def test_admin_nav_links_the_page(client, app):
    await as_admin(client, app)
    text = await (await client.get("/admin/users")).text()
    assert f'href="{PAGE}"' in text


# --- domain blocks ---------------------------------------------------------------------


async def test_block_and_unblock(client, app):
    await as_admin(client, app)
    response = await post_form(
        client, f"{PAGE}/blocks",
        {"domain": "Spam.TEST", "severity": "silence", "reason": "bots"}, token_page=PAGE,
    )
    page = await flash_after(client, response)
    assert "spam.test is now silenced." in page
    assert "bots" in page
    [block] = await domain_blocks.list_blocks(app[DB])
    assert (block.domain, block.severity, block.reason) == ("spam.test", "silence", "bots")

    response = await post_form(client, f"{PAGE}/unblock", {"domain": "spam.test"},
                               token_page=PAGE)
    assert "Lifted the block on spam.test." in await flash_after(client, response)
    assert await domain_blocks.list_blocks(app[DB]) == []
    response = await post_form(client, f"{PAGE}/unblock", {"domain": "spam.test"},
                               token_page=PAGE)
    assert "spam.test was not blocked." in await flash_after(client, response)


async def test_suspend_cancels_queued_deliveries(client, app):
    await as_admin(client, app)
    await deliveries.insert_many(
        app[DB], [deliveries.NewDelivery("a1", None, None, "https://evil.test/inbox", "{}")], 0
    )
    response = await post_form(client, f"{PAGE}/blocks",
                               {"domain": "evil.test", "severity": "suspend"}, token_page=PAGE)
    page = await flash_after(client, response)
    assert "evil.test is now suspended. 1 queued deliveries were cancelled." in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"domain": "not a domain", "severity": "suspend"}, "Give a domain name"),
        ({"domain": "ok.test", "severity": "obliterate"}, "Choose suspend or silence."),
    ],
)
async def test_invalid_block_is_shown_with_the_form(client, app, data, message):
    await as_admin(client, app)
    response = await post_form(client, f"{PAGE}/blocks", data, token_page=PAGE)
    assert response.status == 422
    text = html.unescape(await response.text())
    assert message in text
    assert f'value="{data["domain"]}"' in text
    assert await domain_blocks.list_blocks(app[DB]) == []


# --- the queue ---------------------------------------------------------------------------


async def test_queue_summary_and_retry_button(client, app):
    await as_admin(client, app)
    db = app[DB]
    await deliveries.insert_many(db, [
        deliveries.NewDelivery("a1", None, None, "https://slow.test/inbox", "{}"),
        deliveries.NewDelivery("a2", None, None, "https://slow.test/inbox", "{}"),
    ], 0)
    await db.execute(
        "UPDATE deliveries SET state = 'failed', attempts = 16,"
        " last_error = 'HTTP 502 (gave up after 16 attempts)' WHERE activity_id = 'a2'"
    )
    text = html.unescape(await (await client.get(PAGE)).text())
    assert "slow.test" in text and "HTTP 502 (gave up after 16 attempts)" in text
    assert 'name="host" value="slow.test"' in text

    response = await post_form(client, f"{PAGE}/retry", {"host": "slow.test"}, token_page=PAGE)
    assert "Retrying 2 deliveries to slow.test now." in await flash_after(client, response)
    rows = await db.fetchall("SELECT state, attempts FROM deliveries ORDER BY id")
    assert [tuple(r) for r in rows] == [("pending", 0), ("pending", 0)]

    response = await post_form(client, f"{PAGE}/retry", {"host": "idle.test"}, token_page=PAGE)
    assert "Nothing to retry for idle.test." in await flash_after(client, response)


# --- the post page -----------------------------------------------------------------------


async def test_only_the_author_sees_delivery_status(client: TestClient, app):
    alice = await create_user(app, "alice")
    await create_user(app, "bob")
    post = await app[POSTS].publish(alice.account, Draft("hello fediverse"))
    await deliveries.insert_many(app[DB], [
        deliveries.NewDelivery("c1", alice.id, post.id, "https://up.test/inbox", "{}"),
        deliveries.NewDelivery("c1", alice.id, post.id, "https://down.test/inbox", "{}"),
    ], 0)
    await app[DB].execute("UPDATE deliveries SET state = 'delivered', attempts = 1"
                          " WHERE host = 'up.test'")
    await app[DB].execute("UPDATE deliveries SET attempts = 3, last_error = 'HTTP 503'"
                          " WHERE host = 'down.test'")
    path = f"/@alice/{post.id}"

    async def page() -> str:
        response = await client.get(path)
        assert response.status == 200
        return await response.text()

    assert "Delivery to other servers" not in await page()  # anonymous
    await login(client, "bob")
    assert "Delivery to other servers" not in await page()

    await client.post("/logout", data={"csrf_token": await csrf_from(client, "/")})
    await login(client, "alice")
    text = await page()
    assert "Delivery to other servers" in text
    assert "<strong>up.test</strong>: Delivered" in text
    assert "<strong>down.test</strong>: On its way" in text
    assert "HTTP 503; tried 3 times, will retry" in text


# --- silenced servers ------------------------------------------------------------------


async def test_silenced_servers_stay_out_of_the_federated_timeline(client, app):
    loud = await remote_account(app, "loud", "social.noisy.test")
    calm = await remote_account(app, "calm", "calm.test")
    for author, text in ((loud, "BUY NOW"), (calm, "a quiet thought")):
        await app[DB].execute(
            "INSERT INTO posts (id, account_id, uri, content_html, visibility, local, created_at)"
            " VALUES (?, ?, ?, ?, 'public', 0, 0)",
            (new_id(), author.id, f"{author.uri}/statuses/1", f"<p>{text}</p>"),
        )
    before = await (await client.get("/federated")).text()
    assert "BUY NOW" in before and "a quiet thought" in before

    await domain_blocks.add_block(app[DB], "noisy.test", "silence", "", 0)
    after = await (await client.get("/federated")).text()
    assert "BUY NOW" not in after and "a quiet thought" in after

    await domain_blocks.remove_block(app[DB], "noisy.test")
    assert "BUY NOW" in await (await client.get("/federated")).text()
