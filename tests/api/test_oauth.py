"""OAuth 2.0 as apps meet it: the consent page, /oauth/token, /oauth/revoke, the server
metadata, the authorised-apps settings page and the admin's password-grant switch.

The node here serves on a real loopback port that is also its base URL, so Mastodon.py
follows the endpoints the metadata names, as it does against a real server.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from conftest import PASSWORD, create_user, csrf_from, login, post_form

from api.conftest import Api, base_url, in_thread, token_for
from xnode.api.auth import OAUTH
from xnode.oauth.service import OOB_REDIRECT, TokensRevoked
from xnode.web.state import EVENTS, SETTINGS

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_CODE = re.compile(r'id="oauth-code"[^>]*>([^<]+)</textarea>')


@pytest.fixture
def client(addressed_client: TestClient) -> TestClient:
    """The node here serves where its base URL says (the metadata names it)."""
    return addressed_client


async def register(client: TestClient, redirect_uris: str = OOB_REDIRECT,
                   scopes: str = "read write", **extra: str) -> dict[str, Any]:  # fmt: skip
    """Register an app through the API, as an app does."""
    response = await client.post("/api/v1/apps", json={
        "client_name": extra.pop("name", "Test client"), "redirect_uris": redirect_uris,
        "scopes": scopes, **extra,
    })  # fmt: skip
    assert response.status == 200, await response.text()
    return await response.json()


def authorize_url(registered: dict[str, Any], redirect_uri: str = OOB_REDIRECT,
                  scope: str = "read write", **extra: str) -> str:  # fmt: skip
    query = {"response_type": "code", "client_id": registered["client_id"],
             "redirect_uri": redirect_uri, "scope": scope, **extra}  # fmt: skip
    return "/oauth/authorize?" + urlencode(query)


async def consent_form(client: TestClient, url: str) -> tuple[str, dict[str, str]]:
    """Load the consent page; its HTML and its form's hidden fields."""
    response = await client.get(url, allow_redirects=False)
    html = await response.text()
    assert response.status == 200, html
    return html, {name: unescape(value) for name, value in _HIDDEN.findall(html)}


async def answer(client: TestClient, url: str, decision: str = "allow", **tamper: str) -> Any:
    """Press Allow or Deny on the consent page (``tamper`` changes hidden fields first)."""
    _, fields = await consent_form(client, url)
    data = {**fields, **tamper, "decision": decision}
    return await client.post("/oauth/authorize", data=data, allow_redirects=False)


def redirect_params(response: Any) -> dict[str, str]:
    """The query the app was sent back with."""
    assert response.status == 303, response.status
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


async def oob_code(client: TestClient, url: str) -> str:
    response = await answer(client, url)
    html = await response.text()
    assert response.status == 200, html
    match = _CODE.search(html)
    assert match, html
    return match[1]


async def exchange(client: TestClient, registered: dict[str, Any], code: str,
                   redirect_uri: str = OOB_REDIRECT, **extra: str) -> Any:  # fmt: skip
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": registered["client_id"],
            "client_secret": registered["client_secret"], **extra}  # fmt: skip
    return await client.post("/oauth/token", data={k: v for k, v in data.items() if v})


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(registered: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    raw = f"{registered['client_id']}:{secret or registered['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def app_name_for(client: TestClient, token: str, expect: int = 200) -> Any:
    """GET /api/v1/apps/verify_credentials with the token (any live token passes)."""
    return await Api(client, token).get("/api/v1/apps/verify_credentials", expect=expect)


# --- the main flow, with Mastodon.py ---------------------------------------------


async def test_mastodon_py_signs_in_through_the_consent_page(client, app):
    from mastodon import Mastodon

    await create_user(app, "alice")
    await login(client, "alice")
    base = base_url(client)
    client_id, secret = await in_thread(
        Mastodon.create_app, "Toot desk", api_base_url=base, scopes=["read", "write"],
        redirect_uris=OOB_REDIRECT, website="https://toot.example",
    )  # fmt: skip
    masto = await in_thread(Mastodon, client_id=client_id, client_secret=secret,
                            api_base_url=base, request_timeout=20)  # fmt: skip
    url = await in_thread(masto.auth_request_url, redirect_uris=OOB_REDIRECT,
                          scopes=["read", "write"], state="s1", allow_http=True)  # fmt: skip
    # Mastodon.py took the endpoint from the metadata.
    assert url.startswith(f"{base}/oauth/authorize?")
    path = url[len(base):]
    html, fields = await consent_form(client, path)
    assert "Toot desk" in html and "https://toot.example" in html
    assert "@alice@xnode.test" in html
    assert "See everything in your account" in html and "Act as you" in html
    assert fields["scope"] == "read write" and fields["state"] == "s1"
    code = await oob_code(client, path)

    token = await in_thread(masto.log_in, code=code, redirect_uri=OOB_REDIRECT,
                            scopes=["read", "write"], allow_http=True)  # fmt: skip
    assert (await app_name_for(client, token))["name"] == "Toot desk"
    assert (await in_thread(masto.app_verify_credentials))["name"] == "Toot desk"
    # The code was good once.
    response = await exchange(client, {"client_id": client_id, "client_secret": secret}, code)
    assert response.status == 400 and (await response.json())["error"] == "invalid_grant"
    # Mastodon.py's log-out revokes the token at the metadata's revocation endpoint.
    await in_thread(masto.revoke_access_token, allow_http=True)
    await app_name_for(client, token, expect=401)


async def test_metadata_describes_the_endpoints_as_mastodon_does(client, app):
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = await response.json()
    base = app[SETTINGS].base_url
    assert base == base_url(client)
    assert body["issuer"] == f"{base}/"
    assert body["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert body["token_endpoint"] == f"{base}/oauth/token"
    assert body["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert body["app_registration_endpoint"] == f"{base}/api/v1/apps"
    assert body["service_documentation"] == "https://docs.joinmastodon.org/"
    assert body["response_types_supported"] == ["code"]
    assert body["response_modes_supported"] == ["query"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post"
    ]
    assert body["scopes_supported"][:3] == ["read", "write", "follow"]
    assert "read:statuses" in body["scopes_supported"]
    assert body["grant_types_supported"] == ["authorization_code", "client_credentials"]
    await app[OAUTH].set_password_grant(True)
    body = await (await client.get("/.well-known/oauth-authorization-server")).json()
    assert "password" in body["grant_types_supported"]


# --- redirects, state, PKCE ----------------------------------------------------------


async def test_custom_scheme_redirect_carries_code_and_state_exactly(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb")
    response = await answer(client, authorize_url(registered, "myapp://cb", state="st&8=/"))
    location = response.headers["Location"]
    # Exactly the registered URI (no slash added), then the answer.
    assert location.startswith("myapp://cb?code=")
    params = redirect_params(response)
    assert params["state"] == "st&8=/"
    assert response.headers["Cache-Control"] == "no-store"
    token_response = await exchange(client, registered, params["code"], "myapp://cb")
    assert token_response.status == 200
    body = await token_response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    assert isinstance(body["created_at"], int)
    assert (await app_name_for(client, body["access_token"]))["name"] == "Test client"


async def test_consent_page_lets_its_form_lead_to_the_app(client, app):
    """Browsers apply CSP form-action to the redirect after a form: the page must allow
    the app's redirect URI (and only it), or Allow ends in a blocked navigation."""
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb https://app.example:8443/done")
    response = await client.get(authorize_url(registered, "https://app.example:8443/done"))
    assert "form-action 'self' https://app.example:8443;" in response.headers[
        "Content-Security-Policy"
    ]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    response = await client.get(authorize_url(registered, "myapp://cb"))
    assert "form-action 'self' myapp:;" in response.headers["Content-Security-Policy"]


async def test_pkce_s256_verifier_must_match_and_codes_work_once(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb")
    verifier, challenge = pkce_pair()
    url = authorize_url(registered, "myapp://cb", code_challenge=challenge,
                        code_challenge_method="S256")  # fmt: skip

    code = redirect_params(await answer(client, url))["code"]
    wrong = await exchange(client, registered, code, "myapp://cb", code_verifier="x" * 50)
    assert wrong.status == 400 and (await wrong.json())["error"] == "invalid_grant"
    # A failed attempt used the code up: the right verifier no longer helps.
    again = await exchange(client, registered, code, "myapp://cb", code_verifier=verifier)
    assert again.status == 400

    code = redirect_params(await answer(client, url))["code"]
    missing = await exchange(client, registered, code, "myapp://cb")
    assert missing.status == 400 and (await missing.json())["error"] == "invalid_grant"

    code = redirect_params(await answer(client, url))["code"]
    # The app's secret is still required (every app here is a confidential client).
    no_secret = await client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "myapp://cb",
        "client_id": registered["client_id"], "code_verifier": verifier,
    })  # fmt: skip
    assert no_secret.status == 401 and (await no_secret.json())["error"] == "invalid_client"

    code = redirect_params(await answer(client, url))["code"]
    good = await exchange(client, registered, code, "myapp://cb", code_verifier=verifier)
    assert good.status == 200, await good.text()
    reused = await exchange(client, registered, code, "myapp://cb", code_verifier=verifier)
    assert reused.status == 400 and (await reused.json())["error"] == "invalid_grant"


async def test_pkce_plain_is_refused(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb")
    response = await client.get(authorize_url(
        registered, "myapp://cb", code_challenge="a" * 43, state="p",
    ), allow_redirects=False)  # fmt: skip
    params = redirect_params(response)
    assert params["error"] == "invalid_request" and params["state"] == "p"
    response = await client.get(authorize_url(
        registered, "myapp://cb", code_challenge="short", code_challenge_method="S256",
    ), allow_redirects=False)  # fmt: skip
    assert redirect_params(response)["error"] == "invalid_request"
    # Also when the form comes back with the method changed.
    _, challenge = pkce_pair()
    url = authorize_url(registered, "myapp://cb", code_challenge=challenge,
                        code_challenge_method="S256")  # fmt: skip
    tampered = await answer(client, url, code_challenge_method="plain")
    assert redirect_params(tampered)["error"] == "invalid_request"


async def test_deny_sends_access_denied_and_issues_nothing(client, app):
    alice = await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, f"myapp://cb {OOB_REDIRECT}")
    response = await answer(client, authorize_url(registered, "myapp://cb", state="d1"),
                            decision="deny")  # fmt: skip
    params = redirect_params(response)
    assert params["error"] == "access_denied" and params["state"] == "d1"
    assert "code" not in params
    response = await answer(client, authorize_url(registered), decision="deny")
    html = await response.text()
    assert response.status == 200 and "Access denied" in html and 'id="oauth-code"' not in html
    assert await app[OAUTH].authorizations(alice.id) == []


async def test_expired_code_is_refused(client, app, clock):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client)
    code = await oob_code(client, authorize_url(registered))
    clock.advance(601)
    response = await exchange(client, registered, code)
    assert response.status == 400 and (await response.json())["error"] == "invalid_grant"
    code = await oob_code(client, authorize_url(registered))
    clock.advance(590)
    assert (await exchange(client, registered, code)).status == 200



async def test_codes_nobody_exchanged_are_purged(client, app, clock):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client)
    await oob_code(client, authorize_url(registered))
    clock.advance(300)
    fresh = await oob_code(client, authorize_url(registered))
    clock.advance(301)  # the first code is 601 s old, the second 301 s
    assert await app[OAUTH].purge_expired_codes() == 1
    assert await app[OAUTH].purge_expired_codes() == 0
    assert (await exchange(client, registered, fresh)).status == 200


# --- who may allow what ---------------------------------------------------------------


async def test_consent_page_needs_login_and_comes_back_with_the_whole_request(client, app):
    await create_user(app, "alice")
    registered = await register(client, "myapp://cb")
    url = authorize_url(registered, "myapp://cb", state="a+b c&d=é/?", scope="read")
    response = await client.get(url, allow_redirects=False)
    assert response.status == 303
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    html = await (await client.get(login_url)).text()
    next_value = unescape(re.search(r'name="next" value="([^"]*)"', html)[1])
    response = await post_form(client, "/login", {
        "username": "alice", "password": PASSWORD, "next": next_value,
    }, token_page=login_url)  # fmt: skip
    assert response.status == 303
    _, fields = await consent_form(client, response.headers["Location"])
    assert fields["state"] == "a+b c&d=é/?"
    assert fields["redirect_uri"] == "myapp://cb" and fields["scope"] == "read"
    assert redirect_params(await answer(client, response.headers["Location"]))["state"] == (
        "a+b c&d=é/?"
    )


async def test_allowing_needs_the_csrf_token(client, app):
    alice = await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb")
    _, fields = await consent_form(client, authorize_url(registered, "myapp://cb"))
    fields.pop("csrf_token")
    response = await client.post("/oauth/authorize", data={**fields, "decision": "allow"},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 403 and "Location" not in response.headers
    response = await client.post("/oauth/authorize", allow_redirects=False, data={
        **fields, "decision": "allow", "csrf_token": "forged",
    })  # fmt: skip
    assert response.status == 403 and "Location" not in response.headers
    assert await app[OAUTH].authorizations(alice.id) == []


async def test_unknown_client_or_unregistered_redirect_is_never_followed(client, app):
    alice = await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, "myapp://cb")
    response = await client.get(authorize_url(
        {"client_id": "nope"}, "https://evil.example/steal"), allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    assert "not registered" in await response.text()
    response = await client.get(authorize_url(registered, "https://evil.example/steal",
                                              scope="nonsense"), allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    assert "did not register" in await response.text()
    # A form sent back with another redirect URI is refused the same way: no code leaves.
    response = await answer(client, authorize_url(registered, "myapp://cb"),
                            redirect_uri="https://evil.example/steal")  # fmt: skip
    assert response.status == 400 and "Location" not in response.headers
    assert await app[OAUTH].authorizations(alice.id) == []


async def test_bad_scope_goes_back_to_the_app_with_the_error(client, app):
    await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client, f"myapp://cb {OOB_REDIRECT}", scopes="read")
    response = await client.get(authorize_url(registered, "myapp://cb", scope="read write",
                                              state="s9"), allow_redirects=False)
    params = redirect_params(response)
    assert params == {"error": "invalid_scope", "state": "s9",
                      "error_description": params["error_description"]}  # fmt: skip
    # Out of band, the person sees it.
    response = await client.get(authorize_url(registered, scope="read write"))
    assert response.status == 400 and "did not register" in await response.text()
    # Scopes added to the form on the way back are refused too.
    response = await answer(client, authorize_url(registered, "myapp://cb", scope="read"),
                            scope="read write")  # fmt: skip
    assert redirect_params(response)["error"] == "invalid_scope"


async def test_admin_scopes_only_for_admins(client, app):
    alice = await create_user(app, "alice")
    await create_user(app, "boss", admin=True)
    registered = await register(client, f"myapp://cb {OOB_REDIRECT}",
                                scopes="read admin:read admin:write")  # fmt: skip
    await login(client, "alice")
    response = await client.get(authorize_url(registered, scope="read admin:read"))
    assert response.status == 403 and 'name="decision"' not in await response.text()
    response = await client.get(authorize_url(registered, "myapp://cb", scope="admin:read"),
                                allow_redirects=False)  # fmt: skip
    assert redirect_params(response)["error"] == "invalid_scope"
    # Nor by rewriting the form of an allowed request.
    response = await answer(client, authorize_url(registered, "myapp://cb", scope="read"),
                            scope="read admin:write")  # fmt: skip
    assert redirect_params(response)["error"] == "invalid_scope"
    assert await app[OAUTH].authorizations(alice.id) == []

    client.session.cookie_jar.clear()
    await login(client, "boss")
    html, _ = await consent_form(client, authorize_url(registered, scope="read admin:write"))
    assert "Take moderation actions on this server" in html
    code = await oob_code(client, authorize_url(registered, scope="read admin:write"))
    body = await (await exchange(client, registered, code)).json()
    assert body["scope"] == "read admin:write"


# --- the token endpoint's other grants --------------------------------------------------


async def test_client_credentials_token_acts_for_nobody(client, app):
    registered = await register(client, scopes="read write")
    response = await client.post("/oauth/token", headers=basic(registered), data={
        "grant_type": "client_credentials", "scope": "read",
    })  # fmt: skip
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["scope"] == "read"
    assert (await app_name_for(client, body["access_token"]))["name"] == "Test client"
    token, user = await app[OAUTH].resolve(body["access_token"])
    assert user is None and token.account_id is None

    wrong = await client.post("/oauth/token", headers=basic(registered, "wrong"),
                              data={"grant_type": "client_credentials"})  # fmt: skip
    assert wrong.status == 401 and (await wrong.json())["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    no_secret = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": registered["client_id"],
    })  # fmt: skip
    assert no_secret.status == 401
    beyond = await client.post("/oauth/token", headers=basic(registered), data={
        "grant_type": "client_credentials", "scope": "follow",
    })  # fmt: skip
    assert beyond.status == 400 and (await beyond.json())["error"] == "invalid_scope"


async def test_token_errors_are_json_for_any_client(client, app):
    registered = await register(client)
    response = await client.post("/oauth/token", headers={"Accept": "text/html"}, data={
        "grant_type": "refresh_token", "refresh_token": "x",
        "client_id": registered["client_id"], "client_secret": registered["client_secret"],
    })  # fmt: skip
    assert response.status == 400
    assert (await response.json())["error"] == "unsupported_grant_type"
    response = await client.post("/oauth/token", data={})
    assert (await response.json())["error"] == "invalid_request"
    response = await client.post("/oauth/token", json={
        "grant_type": "authorization_code", "code": "made-up",
        "client_id": registered["client_id"], "client_secret": registered["client_secret"],
        "redirect_uri": OOB_REDIRECT,
    })  # fmt: skip
    assert response.status == 400 and (await response.json())["error"] == "invalid_grant"


async def test_password_grant_is_off_until_the_admin_allows_it(client, app):
    from mastodon import Mastodon
    from mastodon.errors import MastodonIllegalArgumentError

    await create_user(app, "alice")
    await create_user(app, "boss", admin=True)
    registered = await register(client, scopes="read write")
    grant = {"grant_type": "password", "username": "alice", "password": PASSWORD,
             "scope": "read"}  # fmt: skip
    response = await client.post("/oauth/token", headers=basic(registered), data=grant)
    assert response.status == 400
    assert (await response.json())["error"] == "unsupported_grant_type"
    # Nor does it tell a right password from a wrong one.
    response = await client.post("/oauth/token", headers=basic(registered),
                                 data={**grant, "password": "wrong"})  # fmt: skip
    assert (await response.json())["error"] == "unsupported_grant_type"
    masto = await in_thread(Mastodon, client_id=registered["client_id"],
                            client_secret=registered["client_secret"],
                            api_base_url=base_url(client), request_timeout=20)  # fmt: skip
    with pytest.raises(MastodonIllegalArgumentError):
        await in_thread(masto.log_in, "alice@xnode.test", PASSWORD, scopes=["read"],
                        allow_http=True)  # fmt: skip

    # Only an admin may turn it on.
    await login(client, "alice")
    response = await post_form(client, "/admin/settings/oauth", {"password_grant": "1"},
                               token_page="/settings/account")  # fmt: skip
    assert response.status == 403
    assert not await app[OAUTH].password_grant_allowed()
    client.session.cookie_jar.clear()
    await login(client, "boss")
    page = await (await client.get("/admin/settings")).text()
    assert 'name="password_grant"' in page and "checked" not in page.split(
        'name="password_grant"')[1].split(">")[0]
    response = await post_form(client, "/admin/settings/oauth", {"password_grant": "1"},
                               token_page="/admin/settings")  # fmt: skip
    assert response.status == 303
    assert await app[OAUTH].password_grant_allowed()

    wrong = await client.post("/oauth/token", headers=basic(registered),
                              data={**grant, "password": "not the password"})  # fmt: skip
    assert wrong.status == 400 and (await wrong.json())["error"] == "invalid_grant"
    response = await client.post("/oauth/token", headers=basic(registered), data=grant)
    assert response.status == 200, await response.text()
    assert (await response.json())["scope"] == "read"
    # Mastodon.py sends the e-mail-like address; the name at this domain is accepted.
    token = await in_thread(masto.log_in, "alice@xnode.test", PASSWORD, scopes=["read"],
                            allow_http=True)  # fmt: skip
    _, user = await app[OAUTH].resolve(token)
    assert user is not None and user.username == "alice"

    response = await post_form(client, "/admin/settings/oauth", {},
                               token_page="/admin/settings")  # fmt: skip
    assert response.status == 303 and not await app[OAUTH].password_grant_allowed()
    response = await client.post("/oauth/token", headers=basic(registered), data=grant)
    assert (await response.json())["error"] == "unsupported_grant_type"


# --- revoking -----------------------------------------------------------------------------


async def test_revoke_endpoint_ends_the_token_only_for_its_own_app(client, app):
    alice = await create_user(app, "alice")
    await login(client, "alice")
    registered = await register(client)
    other = await register(client, name="Other app")
    code = await oob_code(client, authorize_url(registered))
    token = (await (await exchange(client, registered, code)).json())["access_token"]

    # Another app cannot revoke it (RFC 7009 still answers 200).
    response = await client.post("/oauth/revoke", data={
        "client_id": other["client_id"], "client_secret": other["client_secret"],
        "token": token,
    })  # fmt: skip
    assert response.status == 200
    await app_name_for(client, token)
    response = await client.post("/oauth/revoke", data={
        "client_id": registered["client_id"], "client_secret": "wrong", "token": token,
    })  # fmt: skip
    assert response.status == 401
    await app_name_for(client, token)

    seen: list[TokensRevoked] = []

    async def note(event: TokensRevoked) -> None:
        seen.append(event)

    app[EVENTS].subscribe(TokensRevoked, note)
    response = await client.post("/oauth/revoke", headers=basic(registered),
                                 data={"token": token})  # fmt: skip
    assert response.status == 200 and await response.json() == {}
    await app_name_for(client, token, expect=401)
    assert len(seen) == 1
    response = await client.post("/oauth/revoke", headers=basic(registered),
                                 data={"token": token})  # fmt: skip
    assert response.status == 200
    assert await app[OAUTH].authorizations(alice.id) == []


async def test_settings_page_lists_apps_and_revoking_signs_them_out(client, app):
    alice = await create_user(app, "alice")
    await create_user(app, "bob")
    token = await token_for(app, alice, "read write", app_name="Pocket Toot")
    await app_name_for(client, token)  # used once: "last used" shows a time
    await login(client, "alice")
    response = await client.get("/settings/apps")
    html = await response.text()
    assert response.status == 200
    assert 'href="/settings/apps" aria-current="page"' in html
    assert "Pocket Toot" in html and "See everything in your account" in html
    assert "last used never" not in html
    application_id = next(iter(await app[OAUTH].authorizations(alice.id))).application.id

    seen: list[TokensRevoked] = []

    async def note(event: TokensRevoked) -> None:
        seen.append(event)

    app[EVENTS].subscribe(TokensRevoked, note)
    # Without the CSRF token: refused.
    response = await client.post(f"/settings/apps/{application_id}/revoke",
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 403
    await app_name_for(client, token)
    # Bob cannot take Alice's app away.
    client.session.cookie_jar.clear()
    await login(client, "bob")
    response = await post_form(client, f"/settings/apps/{application_id}/revoke", {},
                               token_page="/settings/apps")  # fmt: skip
    assert response.status == 303
    await app_name_for(client, token)
    assert seen == []

    client.session.cookie_jar.clear()
    await login(client, "alice")
    response = await post_form(client, f"/settings/apps/{application_id}/revoke", {},
                               token_page="/settings/apps")  # fmt: skip
    assert response.status == 303
    await app_name_for(client, token, expect=401)
    assert len(seen) == 1 and len(seen[0].token_ids) == 1
    html = await (await client.get("/settings/apps")).text()
    assert "Pocket Toot can no longer use your account." in html
    assert 'id="no-apps"' in html and "Revoke Pocket Toot" not in html


async def test_settings_link_and_page_need_login(client, app):
    await create_user(app, "alice")
    response = await client.get("/settings/apps", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    await login(client, "alice")
    token = await csrf_from(client, "/settings/profile")
    assert token
    assert 'href="/settings/apps"' in await (await client.get("/settings/profile")).text()


async def test_password_grant_shares_the_login_forms_guessing_limit(client, app):
    await create_user(app, "alice")
    await app[OAUTH].set_password_grant(True)
    registered = await register(client, scopes="read")
    grant = {"grant_type": "password", "username": "alice", "scope": "read"}
    for _ in range(10):
        response = await client.post("/oauth/token", headers=basic(registered),
                                     data={**grant, "password": "guess"})  # fmt: skip
        assert response.status == 400
    response = await client.post("/oauth/token", headers=basic(registered),
                                 data={**grant, "password": PASSWORD})  # fmt: skip
    assert response.status == 429 and "Retry-After" in response.headers
    assert (await response.json())["error"] == "invalid_grant"
    # The login form counts the same failures.
    response = await post_form(client, "/login", {"username": "alice", "password": PASSWORD})
    assert response.status == 429
