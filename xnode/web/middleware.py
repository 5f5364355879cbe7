"""Request middleware: errors, security headers, sessions and CSRF."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from xnode.accounts.models import User
from xnode.accounts.sessions import hash_token
from xnode.errors import RateLimited, XnodeError
from xnode.federation_admin import FederationAdmin
from xnode.web.forms import read_form
from xnode.web.render import RENDERER
from xnode.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    csrf_token,
    csrf_valid,
)
from xnode.web.state import (
    ACCOUNTS,
    CLOCK,
    DB,
    DMS,
    HELPERS_IN_TROUBLE,
    MESSAGE_REQUESTS,
    NOTIFICATIONS,
    PENDING_SIGNUPS,
    SESSIONS,
    SETTINGS,
    UNREAD_MESSAGES,
)
from xnode.web.visitor import VISITOR, Visitor, visitor_of

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "xnode_session"
ANON_COOKIE = "xnode_anon"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Files and the live socket never show the nav, so they skip its unread-messages count.
_NO_NAV_PREFIXES = ("/static/", "/media/", "/live", "/messages/live")

# Endpoints authenticated by other means (HTTP signatures, OAuth bearer
# tokens) are exempt from cookie CSRF checks: the ActivityPub inboxes (only
# inbox routes accept POSTs under /users/ and /actor/).
CSRF_EXEMPT_PREFIXES: tuple[str, ...] = ("/inbox", "/users/", "/actor/")
# The client API is authenticated by bearer tokens only, on every method: no cookie
# session reaches it (a page's cookies must never act through it), so cookie CSRF does
# not apply there. /oauth/token and /oauth/revoke authenticate the app by its client
# secret (or a PKCE verifier). The consent page, /oauth/authorize, is a cookie-session
# form like any other and keeps its CSRF check.
TOKEN_AUTHENTICATED_PREFIXES: tuple[str, ...] = ("/api/", "/oauth/token", "/oauth/revoke")

ERROR_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
}


def wants_json(request: web.Request) -> bool:
    """Whether the client asked for JSON rather than a page.

    A server delivering an activity (a JSON body) usually sends no Accept, or
    ``*/*``; it gets its error as JSON too, which its logs show as text.
    """
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith(TOKEN_AUTHENTICATED_PREFIXES)
        or "application/json" in accept
        or "application/activity+json" in accept
        or "application/ld+json" in accept
        or (accept in ("", "*/*") and request.content_type in _JSON_BODIES)
    ) and "text/html" not in accept


_JSON_BODIES = frozenset({"application/json", "application/activity+json",
                          "application/ld+json"})  # fmt: skip


def error_response(
    request: web.Request, status: int, message: str, body: dict[str, str] | None = None
) -> web.Response:
    """An error page, or a JSON body ``{"error": ...}`` (or ``body``) for JSON clients."""
    if wants_json(request):
        return web.json_response(body or {"error": message}, status=status)
    renderer = request.app[RENDERER]
    title = ERROR_TITLES.get(status, "Error")
    return renderer.render(
        request, "error.html", {"status": status, "title": title, "message": message},
        status=status,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and HTTP errors into styled pages or JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else ""
        response = error_response(request, exc.status, message or exc.reason)
        for name in ("Allow", "Retry-After", "WWW-Authenticate", "Vary"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except RateLimited as exc:
        response = error_response(request, exc.status, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except XnodeError as exc:
        return error_response(request, exc.status, exc.message, exc.json_body())
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "The server hit an error. It has been logged.")


_COMPRESSIBLE = frozenset({
    "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
    "application/activity+json", "application/ld+json", "application/jrd+json",
    "application/manifest+json", "application/atom+xml", "application/rss+xml", "image/svg+xml",
})  # fmt: skip
_COMPRESS_MIN_BYTES = 1024


@web.middleware
async def compression_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Compress text answers (pages, JSON, feeds) for clients that accept gzip or deflate.

    A page is mostly repeated markup: compressed, the home page travels in a fraction of
    its size, which is what a phone on a slow network waits for.
    """
    response = await handler(request)
    if (
        type(response) is web.Response
        and response.content_type in _COMPRESSIBLE
        and response.body is not None
        and len(response.body) >= _COMPRESS_MIN_BYTES  # type: ignore[arg-type]
        and "Content-Encoding" not in response.headers
    ):
        response.enable_compression()
    return response


@web.middleware
async def security_headers_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Add CSP and the other protective headers to every response, redirects included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_security_headers(exc, request.app[SETTINGS].https)
        raise
    _add_security_headers(response, request.app[SETTINGS].https)
    return response


def _add_security_headers(response: web.StreamResponse, https: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach ``request['user']``, the CSRF binding and flash messages.

    Requests authenticated by other means (signed inbox POSTs) get no session:
    they carry no cookies, and would only be handed an anonymous one they drop.
    """
    if _not_cookie_authenticated(request):
        return await handler(request)
    settings = request.app[SETTINGS]
    token = request.cookies.get(SESSION_COOKIE, "")
    user: User | None = await request.app[SESSIONS].resolve(token) if token else None
    new_anon = ""
    if user is not None:
        binding = "session:" + hash_token(token)
    else:
        anon = request.cookies.get(ANON_COOKIE, "")
        if not (20 <= len(anon) <= 64):
            anon = new_anon = secrets.token_urlsafe(24)
        binding = "anon:" + anon
    request[VISITOR] = Visitor(
        user=user,
        session_token=token if user else "",
        csrf_binding=binding,
        csrf_token=csrf_token(settings.secret_key, binding),
        flashes=request.app[RENDERER].read_flashes(request),
        unread_notifications=(
            await request.app[NOTIFICATIONS].unread_count(user.id) if user is not None else 0
        ),
    )
    if user is not None and request.method == "GET" and not request.path.startswith(
        _NO_NAV_PREFIXES
    ):
        request[UNREAD_MESSAGES], request[MESSAGE_REQUESTS] = await request.app[
            DMS
        ].unread_summary(user.id)
        if user.is_admin:
            request[PENDING_SIGNUPS] = await request.app[ACCOUNTS].pending_count()
            if request.path.startswith("/admin"):
                request[HELPERS_IN_TROUBLE] = await FederationAdmin(
                    request.app[DB], request.app[CLOCK]
                ).helpers_in_trouble()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if new_anon:
            _set_cookie(exc, ANON_COOKIE, new_anon, settings.https)
        if token and user is None:
            exc.del_cookie(SESSION_COOKIE, path="/")
        raise
    if new_anon:
        _set_cookie(response, ANON_COOKIE, new_anon, settings.https)
    if token and user is None:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(response: web.StreamResponse, name: str, value: str, secure: bool) -> None:
    response.set_cookie(
        name, value, path="/", httponly=True, samesite="Lax", secure=secure,
        max_age=30 * 24 * 3600,
    )


def set_session_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    """Store a new session token in the browser."""
    _set_cookie(response, SESSION_COOKIE, token, secure)


def clear_session_cookie(response: web.StreamResponse) -> None:
    """Remove the session cookie from the browser."""
    response.del_cookie(SESSION_COOKIE, path="/")


def _origin_matches(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _not_cookie_authenticated(request: web.Request) -> bool:
    return (
        request.method in UNSAFE_METHODS and request.path.startswith(CSRF_EXEMPT_PREFIXES)
    ) or request.path.startswith(TOKEN_AUTHENTICATED_PREFIXES)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests without this visitor's CSRF token.

    The token is an HMAC of the session (or anonymous cookie), sent as a
    hidden form field or the ``X-CSRF-Token`` header. A cross-site ``Origin``
    is refused too, as a second line.
    """
    if request.method not in UNSAFE_METHODS or _not_cookie_authenticated(request):
        return await handler(request)
    if not _origin_matches(request):
        raise web.HTTPForbidden(text="Cross-site request refused.")
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await read_form(request)
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not csrf_valid(request.app[SETTINGS].secret_key, visitor_of(request).csrf_binding, token):
        raise web.HTTPForbidden(
            text="The form's security token is missing or out of date. "
            "Go back, reload the page and try again."
        )
    return await handler(request)


@web.middleware
async def password_change_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Send users with a one-time password to the password form until they change it."""
    user = visitor_of(request).user
    allowed = ("/settings/account", "/logout", "/static/")
    if user is not None and user.must_change_password and not request.path.startswith(allowed):
        raise web.HTTPSeeOther("/settings/account")
    return await handler(request)
