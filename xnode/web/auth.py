"""Login, logout and sign-up pages."""

from __future__ import annotations

from aiohttp import web

from xnode.accounts.models import User
from xnode.errors import InvalidInput, RateLimited, XnodeError
from xnode.ratelimit import Limit
from xnode.web.forms import client_ip, current_user, read_form, safe_next, text_field
from xnode.web.middleware import clear_session_cookie, set_session_cookie
from xnode.web.render import RENDERER, redirect
from xnode.web.state import ACCOUNTS, LIMITER, SESSIONS, SETTINGS
from xnode.web.visitor import visitor_of

LOGIN_ATTEMPTS_PER_IP = Limit(count=30, window_s=300)
LOGIN_FAILURES_PER_ACCOUNT = Limit(count=10, window_s=900)
SIGNUPS_PER_IP = Limit(count=5, window_s=1800)

TOO_MANY_LOGINS = "Too many login attempts. Wait a few minutes and try again."
TOO_MANY_SIGNUPS = "Too many sign-ups from your address. Try again later."


async def authenticate_limited(request: web.Request, username: str, password: str) -> User:
    """Check a username and password, within the login limits (per client address, and
    per account for failures): the login form and the OAuth password grant share them, so
    neither is a way around the other's.

    Raises:
        RateLimited: too many attempts.
        XnodeError: wrong credentials, or an account that cannot log in.
    """
    limiter = request.app[LIMITER]
    ip_key = f"login-ip:{client_ip(request)}"
    account_key = f"login-account:{username}"
    await limiter.check(account_key, LOGIN_FAILURES_PER_ACCOUNT, TOO_MANY_LOGINS)
    # Checked and counted in one step: a burst of guesses (over several serving
    # processes, too) cannot all pass before the first is counted.
    await limiter.attempt(ip_key, LOGIN_ATTEMPTS_PER_IP, TOO_MANY_LOGINS)
    try:
        user = await request.app[ACCOUNTS].authenticate(username, password)
    except XnodeError:
        await limiter.hit(account_key, LOGIN_FAILURES_PER_ACCOUNT)
        raise
    await limiter.reset(account_key)
    return user


async def login_page(request: web.Request) -> web.Response:
    """The login form."""
    if current_user(request):
        raise web.HTTPSeeOther("/")
    return request.app[RENDERER].render(
        request, "login.html", {"next": safe_next(request.query.get("next")), "error": None,
                                "username": ""}
    )


async def login_submit(request: web.Request) -> web.Response:
    """Check credentials (rate-limited per IP and per account) and start a session."""
    form = await read_form(request)
    username = text_field(form, "username", max_length=100).strip().lstrip("@").lower()
    password = text_field(form, "password", max_length=1024)
    target = safe_next(text_field(form, "next", max_length=2000))
    try:
        user = await authenticate_limited(request, username, password)
    except RateLimited:
        raise
    except XnodeError as exc:
        return request.app[RENDERER].render(
            request,
            "login.html",
            {"next": target, "error": exc.message, "username": username},
            status=exc.status,
        )
    token = await request.app[SESSIONS].start(
        user.id, client_ip(request), request.headers.get("User-Agent", "")
    )
    if user.must_change_password:
        response = redirect(
            request, "/settings/account", "Choose a new password to finish logging in."
        )
    else:
        response = redirect(request, target, f"Welcome back, {user.account.name_for_display}.")
    set_session_cookie(response, token, request.app[SETTINGS].https)
    raise response


async def logout_submit(request: web.Request) -> web.Response:
    """End the current session."""
    token = visitor_of(request).session_token
    if token:
        await request.app[SESSIONS].end(token)
    response = redirect(request, "/", "You are logged out.")
    clear_session_cookie(response)
    raise response


async def _signup_context(request: web.Request, **extra: object) -> dict[str, object]:
    mode = await request.app[ACCOUNTS].registration_mode()
    context: dict[str, object] = {
        "mode": mode,
        "error": None,
        "error_field": None,
        "username": "",
        "reason": "",
        "invite": request.query.get("invite", ""),
    }
    context.update(extra)
    return context


async def signup_page(request: web.Request) -> web.Response:
    """The sign-up form, shaped by the registration mode."""
    if current_user(request):
        raise web.HTTPSeeOther("/")
    return request.app[RENDERER].render(request, "signup.html", await _signup_context(request))


async def signup_submit(request: web.Request) -> web.Response:
    """Create an account (active, pending approval, or via invite)."""
    form = await read_form(request)
    limiter = request.app[LIMITER]
    ip_key = f"signup-ip:{client_ip(request)}"
    await limiter.check(ip_key, SIGNUPS_PER_IP, TOO_MANY_SIGNUPS)
    username = text_field(form, "username", max_length=100)
    reason = text_field(form, "reason", max_length=2000)
    invite = text_field(form, "invite", max_length=100)
    try:
        password = text_field(form, "password", max_length=1024)
        if password != text_field(form, "password_confirm", max_length=1024):
            raise InvalidInput("The two passwords do not match.", field="password_confirm")
        result = await request.app[ACCOUNTS].sign_up(
            username, password, invite_code=invite, reason=reason
        )
    except XnodeError as exc:
        context = await _signup_context(
            request,
            error=exc.message,
            error_field=exc.field,
            username=username,
            reason=reason,
            invite=invite,
        )
        return request.app[RENDERER].render(request, "signup.html", context, status=exc.status)
    await limiter.hit(ip_key, SIGNUPS_PER_IP)
    if result.pending:
        raise redirect(
            request,
            "/login",
            "Thanks for signing up. An administrator will review your request; "
            "you can log in once it is approved.",
        )
    token = await request.app[SESSIONS].start(
        result.user.id, client_ip(request), request.headers.get("User-Agent", "")
    )
    response = redirect(request, "/settings/profile", "Welcome! Set up your profile.")
    set_session_cookie(response, token, request.app[SETTINGS].https)
    raise response


def add_routes(app: web.Application) -> None:
    """Register the login and sign-up routes."""
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout_submit, name="logout")
    app.router.add_get("/signup", signup_page, name="signup")
    app.router.add_post("/signup", signup_submit)
