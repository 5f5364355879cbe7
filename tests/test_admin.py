"""Admin pages: access control, approval, suspension, deletion, invites, registration."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from conftest import PASSWORD, create_user, csrf_from, login, post_form

from xnode.accounts.models import User
from xnode.web.state import ACCOUNTS

ADMIN_GETS = [
    "/admin",
    "/admin/users",
    "/admin/users?state=pending",
    "/admin/invites",
    "/admin/settings",
]


@pytest.fixture
async def other(client: TestClient) -> AsyncIterator[TestClient]:
    """A second browser (own cookie jar) talking to the same running node."""
    second = TestClient(client.server)
    yield second
    await second.session.close()


async def as_admin(client: TestClient, app, name: str = "boss") -> User:
    """Create an admin and log them in on ``client``."""
    admin = await create_user(app, name, admin=True)
    await login(client, name)
    return admin


async def admin_post(client: TestClient, path: str, data: dict | None = None):
    """Post an admin button form with the token from the user list."""
    token = await csrf_from(client, "/admin/users")
    return await client.post(
        path, data={"csrf_token": token, **(data or {})}, allow_redirects=False
    )


async def flash_after(client: TestClient, response) -> str:
    """Follow a 303 and return the page text (which shows the flash)."""
    assert response.status == 303, await response.text()
    page = await client.get(response.headers["Location"])
    return await page.text()


async def sign_up(client: TestClient, username: str, **extra: str):
    """Submit the public sign-up form."""
    return await post_form(
        client,
        "/signup",
        {
            "username": username,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            **extra,
        },
    )


async def try_login(client: TestClient, username: str):
    """Submit the login form and return the response."""
    return await post_form(client, "/login", {"username": username, "password": PASSWORD})


async def is_logged_in(client: TestClient) -> bool:
    """Whether the client's session is recognised (the logout button is shown)."""
    text = await (await client.get("/")).text()
    return 'action="/logout"' in text


# --- access control ----------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_anonymous_is_sent_to_login(client, path):
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")


async def test_anonymous_post_is_sent_to_login(client, app):
    bob = await create_user(app, "bob")
    token = await csrf_from(client, "/login")
    response = await client.post(
        f"/admin/users/{bob.id}/suspend", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/login")
    assert not (await app[ACCOUNTS].require_user(bob.id)).account.is_suspended


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_non_admin_gets_403(client, app, path):
    await create_user(app, "boss", admin=True)
    await create_user(app, "mallory")
    await login(client, "mallory")
    response = await client.get(path, allow_redirects=False)
    assert response.status == 403


async def test_non_admin_posts_are_refused_and_change_nothing(client, app):
    accounts = app[ACCOUNTS]
    await create_user(app, "boss", admin=True)
    await create_user(app, "mallory")
    victim = await create_user(app, "victim")
    pending = await accounts.create_user("waiting", PASSWORD, state="pending")
    invite = await accounts.create_invite(None)
    await login(client, "mallory")
    token = await csrf_from(client, "/")
    attempts = [
        (f"/admin/users/{pending.id}/approve", {}),
        (f"/admin/users/{pending.id}/reject", {}),
        (f"/admin/users/{victim.id}/suspend", {}),
        (f"/admin/users/{victim.id}/unsuspend", {}),
        (f"/admin/users/{victim.id}/delete", {"confirm": "yes"}),
        ("/admin/invites", {"expires_days": "", "max_uses": ""}),
        (f"/admin/invites/{invite.code}/revoke", {}),
        ("/admin/settings", {"registration": "closed"}),
    ]
    for path, data in attempts:
        response = await client.post(
            path, data={"csrf_token": token, **data}, allow_redirects=False
        )
        assert response.status == 403, path
    assert (await accounts.require_user(pending.id)).state == "pending"
    victim_now = await accounts.require_user(victim.id)
    assert victim_now.is_active
    invites = await accounts.list_invites()
    assert len(invites) == 1 and invites[0].revoked_at is None
    assert await accounts.registration_mode() == "open"


@pytest.mark.parametrize("token", [None, "forged-token"])
async def test_admin_post_without_valid_csrf_is_refused(client, app, token):
    await as_admin(client, app)
    bob = await create_user(app, "bob")
    data = {"csrf_token": token} if token else {}
    for path, extra in [
        (f"/admin/users/{bob.id}/suspend", {}),
        ("/admin/settings", {"registration": "closed"}),
    ]:
        response = await client.post(path, data={**data, **extra}, allow_redirects=False)
        assert response.status == 403
    assert not (await app[ACCOUNTS].require_user(bob.id)).account.is_suspended
    assert await app[ACCOUNTS].registration_mode() == "open"


async def test_admin_index_redirects_to_users(client, app):
    await as_admin(client, app)
    response = await client.get("/admin", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/users"


async def test_unknown_user_id_is_404(client, app):
    await as_admin(client, app)
    for action in ("approve", "reject", "suspend", "unsuspend", "delete"):
        response = await admin_post(client, f"/admin/users/987654/{action}", {"confirm": "yes"})
        assert response.status == 404, action


# --- user list and moderation -------------------------------------------------


async def test_users_page_lists_users_and_pending_first(client, app):
    await as_admin(client, app)
    await create_user(app, "bob")
    await app[ACCOUNTS].create_user(
        "newbie", PASSWORD, state="pending", signup_reason="I <3 gardening"
    )
    text = await (await client.get("/admin/users")).text()
    assert text.index("Pending approval") < text.index("@newbie") < text.index('href="/@bob"')
    assert "I &lt;3 gardening" in text
    assert 'Approve<span class="visually-hidden"> newbie</span>' in text
    assert 'for="confirm-delete-' in text
    pending_only = await (await client.get("/admin/users?state=pending")).text()
    assert "@newbie" in pending_only and 'href="/@bob"' not in pending_only
    assert (await client.get("/admin/users?state=bogus")).status == 422


async def test_approval_flow(client, app, other):
    await as_admin(client, app)
    response = await post_form(client, "/admin/settings", {"registration": "approval"})
    assert "Registration is now: approval" in await flash_after(client, response)
    assert await app[ACCOUNTS].registration_mode() == "approval"

    response = await sign_up(other, "carol", reason="Friend of bob")
    assert response.status == 303 and response.headers["Location"] == "/login"
    refused = await try_login(other, "carol")
    assert refused.status == 403
    assert "approval" in await refused.text()

    carol = await app[ACCOUNTS].require_user_by_name("carol")
    assert "Friend of bob" in await (await client.get("/admin/users")).text()
    response = await admin_post(client, f"/admin/users/{carol.id}/approve")
    assert "Approved @carol" in await flash_after(client, response)
    assert (await try_login(other, "carol")).status == 303
    assert await is_logged_in(other)


async def test_approving_an_active_user_shows_error_flash(client, app):
    await as_admin(client, app)
    bob = await create_user(app, "bob")
    response = await admin_post(client, f"/admin/users/{bob.id}/approve")
    text = await flash_after(client, response)
    assert "flash-error" in text and "not waiting for approval" in text


async def test_reject_removes_pending_user(client, app, other):
    await as_admin(client, app)
    await app[ACCOUNTS].set_registration_mode("approval")
    await sign_up(other, "dave")
    dave = await app[ACCOUNTS].require_user_by_name("dave")
    response = await admin_post(client, f"/admin/users/{dave.id}/reject")
    assert "Rejected the sign-up of @dave" in await flash_after(client, response)
    assert "dave" not in [u.username for u in await app[ACCOUNTS].list_users()]
    # The username is free again.
    response = await sign_up(other, "dave")
    assert response.status == 303


async def test_suspend_ends_session_and_blocks_login(client, app, other):
    await as_admin(client, app)
    bob = await create_user(app, "bob")
    await login(other, "bob")
    assert await is_logged_in(other)

    response = await admin_post(client, f"/admin/users/{bob.id}/suspend")
    assert "Suspended @bob" in await flash_after(client, response)
    assert not await is_logged_in(other)
    refused = await try_login(other, "bob")
    assert refused.status == 403 and "suspended" in await refused.text()
    assert "Unsuspend<span" in await (await client.get("/admin/users")).text()

    response = await admin_post(client, f"/admin/users/{bob.id}/unsuspend")
    assert "no longer suspended" in await flash_after(client, response)
    assert (await try_login(other, "bob")).status == 303
    assert await is_logged_in(other)


async def test_delete_needs_confirmation(client, app):
    await as_admin(client, app)
    bob = await create_user(app, "bob")
    response = await admin_post(client, f"/admin/users/{bob.id}/delete")
    text = await flash_after(client, response)
    assert "flash-error" in text and "Tick the confirmation box" in text
    assert (await app[ACCOUNTS].require_user(bob.id)).is_active

    response = await admin_post(client, f"/admin/users/{bob.id}/delete", {"confirm": "yes"})
    assert "Deleted @bob" in await flash_after(client, response)
    assert "bob" not in [u.username for u in await app[ACCOUNTS].list_users()]
    assert (await try_login(client, "bob")).status != 303


async def test_admin_cannot_suspend_or_delete_self(client, app):
    boss = await as_admin(client, app)
    await create_user(app, "other_admin", admin=True)  # so "last admin" is not the reason
    response = await admin_post(client, f"/admin/users/{boss.id}/suspend")
    assert "cannot suspend your own account" in await flash_after(client, response)
    response = await admin_post(client, f"/admin/users/{boss.id}/delete", {"confirm": "yes"})
    assert "cannot delete your own account" in await flash_after(client, response)
    me = await app[ACCOUNTS].require_user(boss.id)
    assert me.is_active and await is_logged_in(client)


# --- invites -------------------------------------------------------------------


async def create_invite(client: TestClient, expires_days: str = "", max_uses: str = "") -> str:
    """Create an invite through the admin page and return its code (shown in the flash)."""
    response = await post_form(
        client, "/admin/invites", {"expires_days": expires_days, "max_uses": max_uses}
    )
    text = await flash_after(client, response)
    match = re.search(r"Created invite ([A-Za-z0-9_-]+)\.", text)
    assert match, text
    code = match[1]
    assert f"http://xnode.test/signup?invite={code}" in text
    return code


async def test_invite_mode_signups(client, app, other, clock):
    await as_admin(client, app)
    await post_form(client, "/admin/settings", {"registration": "invite"})
    assert await app[ACCOUNTS].registration_mode() == "invite"

    refused = await sign_up(other, "nocode")
    assert refused.status == 422 and "invite code is needed" in await refused.text()

    code = await create_invite(client)
    assert (await sign_up(other, "invited1", invite=code)).status == 303

    once = await create_invite(client, max_uses="1")
    assert (await sign_up(other, "first", invite=once)).status == 303
    refused = await sign_up(other, "second", invite=once)
    assert refused.status == 422 and "not valid" in await refused.text()
    assert "used up" in await (await client.get("/admin/invites")).text()

    revoked = await create_invite(client)
    response = await admin_post(client, f"/admin/invites/{revoked}/revoke")
    assert f"Revoked invite {revoked}" in await flash_after(client, response)
    assert (await sign_up(other, "late", invite=revoked)).status == 422

    expiring = await create_invite(client, expires_days="1")
    clock.advance(24 * 3600 + 1)
    refused = await sign_up(other, "tooslow", invite=expiring)
    assert refused.status == 422
    page = await (await client.get("/admin/invites")).text()
    assert "expired" in page and "revoked" in page and "live" in page
    names = {u.username for u in await app[ACCOUNTS].list_users()}
    assert {"invited1", "first"} <= names
    assert not names & {"nocode", "second", "late", "tooslow"}


async def test_invite_form_validation(client, app):
    await as_admin(client, app)
    for data in (
        {"expires_days": "3", "max_uses": ""},
        {"expires_days": "", "max_uses": "zero"},
        {"expires_days": "", "max_uses": "0"},
    ):
        response = await post_form(client, "/admin/invites", data)
        assert response.status == 422, data
        assert 'role="alert"' in await response.text()
    assert await app[ACCOUNTS].list_invites() == []


async def test_revoke_unknown_invite_is_404(client, app):
    await as_admin(client, app)
    assert (await admin_post(client, "/admin/invites/nosuchcode/revoke")).status == 404


# --- registration settings ------------------------------------------------------


async def test_invalid_registration_mode_is_422(client, app):
    await as_admin(client, app)
    response = await post_form(client, "/admin/settings", {"registration": "everyone"})
    assert response.status == 422
    assert "Registration mode must be one of" in await response.text()
    assert await app[ACCOUNTS].registration_mode() == "open"


async def test_closed_mode(client, app, other):
    await as_admin(client, app)
    await post_form(client, "/admin/settings", {"registration": "closed"})
    page = await other.get("/signup")
    assert "not accepting new accounts" in await page.text()
    token = await csrf_from(other, "/login")
    response = await other.post(
        "/signup",
        data={
            "csrf_token": token,
            "username": "eve",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
        allow_redirects=False,
    )
    assert response.status == 403
    assert "eve" not in [u.username for u in await app[ACCOUNTS].list_users()]
