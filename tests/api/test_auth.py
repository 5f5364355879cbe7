"""Who may call the client API: bearer tokens only, scopes, dead tokens, rate limits."""

from __future__ import annotations

import pytest
from conftest import create_user, login, make_settings

from api.conftest import Api, token_for
from xnode.api.auth import OAUTH
from xnode.oauth import scopes
from xnode.web.app import create_app


def test_scopes_cover_their_granular_forms_and_nothing_else():
    assert scopes.grants(("read",), "read:statuses")
    assert scopes.grants(("read:statuses",), "read:statuses")
    assert not scopes.grants(("read:statuses",), "read:notifications")
    assert not scopes.grants(("read",), "write:statuses")
    assert scopes.grants(("follow",), "write:follows")  # the legacy bundle
    assert not scopes.grants(("follow",), "write:statuses")
    assert scopes.grants(("admin:read",), "admin:read:accounts")
    assert not scopes.grants(("read",), "admin:read:accounts")
    assert scopes.parse_scopes("read+write") == ("read", "write")
    with pytest.raises(Exception, match="Unknown scope"):
        scopes.parse_scopes("read everything")


async def test_a_cookie_session_never_reaches_the_api(client, app, aiohttp_client):
    await create_user(app, "alice")
    await login(client, "alice")
    assert (await client.get("/")).status == 200  # signed in as a browser
    response = await client.get("/api/v1/apps/verify_credentials")
    assert response.status == 401
    assert await response.json() == {"error": "The access token is invalid"}
    # The session machinery does not even run there: a cookie-less API call is not handed
    # the anonymous cookie every page visitor gets (it would if /api/ went through it).
    fresh = Api(await aiohttp_client(client.server), None)
    await fresh.get("/api/v1/instance")
    assert "Set-Cookie" not in fresh.last.headers
    page = await fresh.client.get("/login")
    assert "xnode_anon" in page.headers.get("Set-Cookie", "")  # what pages do


async def test_bearer_requests_need_no_csrf_token_and_dead_tokens_are_refused(client, app):
    alice = await create_user(app, "alice")
    token = await token_for(app, alice, "read")
    api = Api(client, token)
    # A POST with a token and no CSRF token is not refused by the CSRF check (this
    # endpoint takes no token at all; reaching its validation proves CSRF let it through).
    await api.post("/api/v1/apps", json={"client_name": "x"}, expect=422)
    await api.get("/api/v1/apps/verify_credentials")
    application = (await app[OAUTH].resolve(token))[0].application_id
    await app[OAUTH].revoke_application(alice.id, application)
    body = await api.get("/api/v1/instance", expect=401)
    assert body["error"] == "The access token is invalid"
    assert "Bearer" in api.last.headers["WWW-Authenticate"]


async def test_a_suspended_persons_tokens_stop_working(client, app):
    from xnode.web.state import ACCOUNTS

    alice = await create_user(app, "alice")
    api = Api(client, await token_for(app, alice, "read"))
    await api.get("/api/v1/apps/verify_credentials")
    await app[ACCOUNTS].set_suspended(alice.id, True)
    await api.get("/api/v1/apps/verify_credentials", expect=401)


async def test_rate_limit_headers_and_429(aiohttp_client, tmp_path):
    app = create_app(make_settings(tmp_path / "node", api_rate_limit=3))
    client = await aiohttp_client(app)
    alice = await create_user(app, "alice")
    api = Api(client, await token_for(app, alice, "read"))
    remaining = []
    for _ in range(3):
        await api.get("/api/v1/apps/verify_credentials")
        assert api.last.headers["X-RateLimit-Limit"] == "3"
        remaining.append(int(api.last.headers["X-RateLimit-Remaining"]))
        assert api.last.headers["X-RateLimit-Reset"].endswith("Z")
    assert remaining == [2, 1, 0]
    body = await api.get("/api/v1/apps/verify_credentials", expect=429)
    assert body == {"error": "Too many requests"}
    assert int(api.last.headers["Retry-After"]) > 0
    # Another token has its own budget.
    other = Api(client, await token_for(app, alice, "read"))
    await other.get("/api/v1/apps/verify_credentials")


async def test_cors_preflight_for_browser_apps(client):
    response = await client.options("/api/v1/timelines/home", headers={
        "Origin": "https://elk.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})  # fmt: skip
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_hostile_query_strings_and_bodies_are_clear_errors(client, app):
    alice = await create_user(app, "alice")
    api = Api(client, await token_for(app, alice, "read write"))
    await api.post("/api/v1/apps", data=b'{"client_name": "\\ud800"}',
                   headers={"Content-Type": "application/json"}, expect=422)
    await api.post("/api/v1/apps", data=b"\xff\xfe{}", headers={"Content-Type":
                   "application/json"}, expect=422)  # fmt: skip
    await api.post("/api/v1/apps", data=b"[1, 2]", headers={"Content-Type":
                   "application/json"}, expect=422)  # fmt: skip
    # Bytes that are no UTF-8 in the query reach handlers as harmless text (yarl keeps
    # them escaped), never as lone surrogates: the request is answered, not a 500.
    await api.get("/api/v1/instance/peers?x=%ED%A0%80", expect=200)


def test_the_access_log_never_holds_tokens():
    from xnode.web.access_log import redacted

    assert redacted("/api/v1/streaming?access_token=abc&stream=user") == (
        "/api/v1/streaming?access_token=[redacted]&stream=user")
    assert redacted("/oauth/authorize?client_id=x&code=secret") == (
        "/oauth/authorize?client_id=x&code=[redacted]")
    assert redacted("/tags/access_token=1") == "/tags/access_token=1"  # a path, not a query
