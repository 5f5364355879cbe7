"""The navigation's indicators, the first-login page, and the installable web app (issue 15)."""

from __future__ import annotations

import re

from conftest import create_user, login, post_form

from xnode.web.state import ACCOUNTS, DMS


def nav_of(page: str) -> str:
    return re.search(r'<nav class="nav".*?</nav>', page, re.S)[0]


async def test_message_requests_and_pending_sign_ups_show_in_the_nav(client, app):
    await create_user(app, "root_admin", admin=True)
    stranger = (await create_user(app, "stranger")).account
    await app[DMS].start(stranger, "@root_admin", "hello, may I?")
    await app[ACCOUNTS].set_registration_mode("approval")
    await app[ACCOUNTS].sign_up("newcomer", "correct horse battery", reason="hi")
    await login(client, "root_admin")
    nav = nav_of(await (await client.get("/")).text())
    assert 'aria-label="1 message requests"' in nav and 'href="/messages/requests"' in nav
    assert 'aria-label="1 sign-ups waiting for approval"' in nav


async def test_the_first_login_page_shows_only_the_password_change(client, app):
    user = await create_user(app, "fresh")
    await app[ACCOUNTS].set_password(user.id, "correct horse battery", must_change=True)
    await login(client, "fresh")
    page = await (await client.get("/settings/account")).text()
    assert "Choose a new password" in page
    nav = nav_of(page)
    assert "Log out" in nav and 'href="/messages"' not in nav and 'href="/search"' not in nav
    assert "Delete your account" not in page and "danger-zone" not in page


async def test_a_reply_form_has_no_article_options(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    response = await post_form(client, "/posts", {"source": "hello"}, token_page="/")
    page = await (await client.get(response.headers["Location"])).text()
    reply = page[page.index('id="reply"'):]
    assert 'name="title"' not in reply and 'name="kind"' not in reply


async def test_the_node_installs_as_an_app(client):
    page = await (await client.get("/login")).text()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<link rel="icon" href="/static/icon.svg"' in page
    manifest = await (await client.get("/manifest.webmanifest")).json(content_type=None)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    icon = await client.get(manifest["icons"][0]["src"])
    assert icon.status == 200 and icon.content_type == "image/svg+xml"


async def test_pages_are_compressed_for_clients_that_accept_it(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "<!doctype html>" in await response.text()  # the client inflates it
    plain = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
