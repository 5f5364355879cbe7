"""Sign-up, login, logout, sessions, CSRF and rate limiting through the web forms."""

from __future__ import annotations

import re

from conftest import PASSWORD, create_user, csrf_from, login, post_form

from xnode.web.state import ACCOUNTS, DB

CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def user_count(app) -> int:
    return int(await app[DB].fetchvalue("SELECT COUNT(*) FROM users"))


async def signup(client, username, password=PASSWORD, confirm=None, **extra):
    return await post_form(
        client,
        "/signup",
        {"username": username, "password": password,
         "password_confirm": password if confirm is None else confirm, **extra},
    )


async def test_signup_logs_the_new_user_in(client):
    response = await signup(client, "Alice")
    assert response.status == 303
    assert response.headers["Location"] == "/settings/profile"
    page = await (await client.get("/")).text()
    assert "Hello, alice" in page
    assert "@alice@xnode.test" in page


async def test_session_cookie_flags(client):
    response = await signup(client, "alice")
    cookie = response.cookies["xnode_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # plain-HTTP node; see the HTTPS test below


async def test_session_cookie_is_secure_under_https(aiohttp_client, tmp_path, clock):
    from conftest import make_settings

    from xnode.web.app import create_app

    settings = make_settings(tmp_path / "tls", base_url="https://xnode.test")
    client = await aiohttp_client(create_app(settings, clock=clock))
    page = await client.get("/signup")
    anon = page.cookies["xnode_anon"]
    assert anon["secure"]
    # The test client speaks plain HTTP and so holds back Secure cookies: send it by hand.
    token = CSRF_PATTERN.search(await page.text())[1]
    response = await client.post(
        "/signup",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD,
              "password_confirm": PASSWORD},
        headers={"Cookie": f"xnode_anon={anon.value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.cookies["xnode_session"]["secure"]
    assert response.headers["Strict-Transport-Security"]


async def test_bad_usernames_are_refused_and_nothing_is_written(client, app):
    for bad in ["", "a" * 31, "bad name", "émile", "admin", "inbox", "../x", "a-b"]:
        response = await signup(client, bad)
        assert response.status == 422, bad
        assert 'role="alert"' in await response.text()
    assert await user_count(app) == 0


async def test_duplicate_signup_is_refused_case_insensitively(client, app):
    assert (await signup(client, "bob")).status == 303
    await client.post("/logout", data={"csrf_token": await csrf_from(client, "/")})
    response = await signup(client, "BOB")
    assert response.status == 409
    assert "already taken" in await response.text()
    assert await user_count(app) == 1


async def test_weak_passwords_are_refused(client, app):
    short = await signup(client, "carol", password="short")
    assert short.status == 422
    assert "at least 10 characters" in await short.text()
    with_name = await signup(client, "carol", password="carol-is-great-123")
    assert with_name.status == 422
    assert "must not contain your username" in await with_name.text()
    mismatch = await signup(client, "carol", password=PASSWORD, confirm=PASSWORD + "x")
    assert mismatch.status == 422
    assert await user_count(app) == 0


async def test_password_is_stored_hashed_with_argon2id(client, app):
    await signup(client, "dave")
    stored = await app[DB].fetchvalue("SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_login_and_logout(client, app):
    await create_user(app, "erin")
    await login(client, "erin")
    assert "Hello, erin" in await (await client.get("/")).text()
    token = await csrf_from(client, "/")
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert "Welcome to xnode.test" in await (await client.get("/")).text()
    assert await app[DB].fetchvalue("SELECT COUNT(*) FROM sessions") == 0


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, app):
    await create_user(app, "frank")
    wrong = await post_form(client, "/login", {"username": "frank", "password": "nope" * 4})
    unknown = await post_form(client, "/login", {"username": "nobody", "password": "nope" * 4})
    assert wrong.status == unknown.status == 401
    assert "Wrong username or password." in await wrong.text()
    assert "Wrong username or password." in await unknown.text()
    assert "xnode_session" not in wrong.cookies


async def test_login_redirects_to_a_local_next_only(client, app):
    await create_user(app, "gina")
    ok = await post_form(
        client, "/login", {"username": "gina", "password": PASSWORD, "next": "/@gina"}
    )
    assert ok.headers["Location"] == "/@gina"
    await client.post("/logout", data={"csrf_token": await csrf_from(client, "/")})
    evil = await post_form(
        client, "/login",
        {"username": "gina", "password": PASSWORD, "next": "//evil.example/phish"},
    )
    assert evil.headers["Location"] == "/"


async def test_forged_session_cookie_is_anonymous(client, app):
    client.session.cookie_jar.update_cookies({"xnode_session": "forged-token-value"})
    page = await (await client.get("/")).text()
    assert "Welcome to xnode.test" in page


async def test_post_without_csrf_token_is_refused(client, app):
    response = await client.post(
        "/signup",
        data={"username": "hank", "password": PASSWORD, "password_confirm": PASSWORD},
    )
    assert response.status == 403
    assert "security token" in await response.text()
    assert await user_count(app) == 0


async def test_post_with_another_visitors_csrf_token_is_refused(client, app, aiohttp_client):
    other = await aiohttp_client(client.server)
    foreign_token = await csrf_from(other, "/signup")
    await client.get("/signup")  # our own anonymous cookie
    response = await client.post(
        "/signup",
        data={"csrf_token": foreign_token, "username": "ivan", "password": PASSWORD,
              "password_confirm": PASSWORD},
    )
    assert response.status == 403
    assert await user_count(app) == 0


async def test_logged_in_csrf_token_is_bound_to_the_session(client, app):
    await create_user(app, "judy")
    anonymous_token = await csrf_from(client, "/login")
    await login(client, "judy")
    response = await client.post(
        "/logout", data={"csrf_token": anonymous_token}, allow_redirects=False
    )
    assert response.status == 403
    assert "Hello, judy" in await (await client.get("/")).text()


async def test_cross_site_origin_is_refused_even_with_a_token(client, app):
    token = await csrf_from(client, "/signup")
    response = await client.post(
        "/signup",
        data={"csrf_token": token, "username": "kate", "password": PASSWORD,
              "password_confirm": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert await user_count(app) == 0


async def test_login_is_rate_limited_per_account(client, app, clock):
    await create_user(app, "leo")
    for _ in range(10):
        response = await post_form(client, "/login", {"username": "leo", "password": "x" * 12})
        assert response.status == 401
    blocked = await post_form(client, "/login", {"username": "leo", "password": PASSWORD})
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    clock.advance(901)
    await login(client, "leo")


async def test_login_is_rate_limited_per_ip(client, app):
    for i in range(30):
        await post_form(client, "/login", {"username": f"user{i}", "password": "x" * 12})
    response = await post_form(client, "/login", {"username": "other", "password": "x" * 12})
    assert response.status == 429
    assert "Retry-After" in response.headers


async def test_signup_is_rate_limited_per_ip(client, app):
    for i in range(5):
        assert (await signup(client, f"member{i}")).status == 303
        await client.post("/logout", data={"csrf_token": await csrf_from(client, "/")})
    response = await signup(client, "member9")
    assert response.status == 429
    assert await user_count(app) == 5


async def test_sessions_expire(client, app, clock):
    await create_user(app, "mia")
    await login(client, "mia")
    clock.advance(31 * 24 * 3600)
    assert "Welcome to xnode.test" in await (await client.get("/")).text()


async def test_pending_user_cannot_log_in(client, app):
    await app[ACCOUNTS].create_user("ned", PASSWORD, state="pending")
    response = await post_form(client, "/login", {"username": "ned", "password": PASSWORD})
    assert response.status == 403
    assert "approval" in await response.text()


async def test_security_headers_on_pages_and_errors(client):
    for path in ["/", "/no-such-page"]:
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


async def test_error_pages_are_html_or_json(client):
    html = await client.get("/no-such-page")
    assert html.status == 404
    assert "text/html" in html.headers["Content-Type"]
    assert "404" in await html.text()
    as_json = await client.get("/no-such-page", headers={"Accept": "application/json"})
    assert as_json.status == 404
    assert (await as_json.json())["error"]


async def test_every_form_input_has_a_label(client):
    for path in ["/login", "/signup"]:
        page = await (await client.get(path)).text()
        ids = re.findall(r'<(?:input|textarea|select)[^>]*\bid="([^"]+)"', page)
        visible = [
            i for i in re.findall(r"<(?:input|textarea|select)[^>]*>", page)
            if 'type="hidden"' not in i
        ]
        assert len(ids) == len(visible), path
        for ident in ids:
            assert f'for="{ident}"' in page, (path, ident)


async def test_behind_a_proxy_limits_apply_per_forwarded_client(aiohttp_client, tmp_path, clock):
    from conftest import make_settings

    from xnode.web.app import create_app

    settings = make_settings(tmp_path / "proxied", behind_proxy=True)
    client = await aiohttp_client(create_app(settings, clock=clock))

    async def attempt(forwarded: str, username: str = "x"):
        token = await csrf_from(client, "/login")
        return await client.post(
            "/login",
            data={"csrf_token": token, "username": username, "password": "y" * 12},
            headers={"X-Forwarded-For": forwarded},
            allow_redirects=False,
        )

    for i in range(30):
        # A client-supplied first entry must not let one client rotate its identity.
        assert (await attempt(f"10.0.0.{i}, 203.0.113.7", f"user{i}")).status == 401
    assert (await attempt("203.0.113.7", "fresh")).status == 429
    assert (await attempt("203.0.113.8", "fresh")).status == 401


async def test_unexpected_errors_become_a_styled_500_without_internals(aiohttp_client, settings):
    from xnode.web.app import create_app

    app = create_app(settings)

    async def broken(request):
        raise RuntimeError("secret internal detail")

    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    page = await client.get("/broken")
    assert page.status == 500
    body = await page.text()
    assert "Something went wrong" in body and 'class="site-header"' in body
    assert "secret internal detail" not in body and "Traceback" not in body
    as_json = await client.get("/broken", headers={"Accept": "application/json"})
    assert as_json.status == 500
    assert "secret" not in (await as_json.json())["error"]
