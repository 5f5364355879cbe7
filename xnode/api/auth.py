"""Bearer tokens on the client API: who is calling, with which scopes, how often.

Every ``/api/`` request goes through :func:`api_middleware`: it answers CORS (browser
apps such as Elk and Phanpy call from their own origin, with a token, never cookies),
resolves the ``Authorization: Bearer`` token, counts the request against the caller's
rate limit and reports it in ``X-RateLimit-*`` headers. Handlers then ask for what they
need with :func:`require_scope` or :func:`require_user`; errors are Mastodon's:
401 without a working token, 403 for a scope the token lacks, 422 for an app token
where a person is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from xnode.accounts.models import User
from xnode.api.entities import timestamp
from xnode.errors import Forbidden, RateLimited, Unauthorized, XnodeError
from xnode.oauth import scopes as scope_rules
from xnode.oauth.models import AccessToken
from xnode.oauth.service import OAuthService
from xnode.ratelimit import Limit, WindowCounter, window_counter_for
from xnode.settings import Settings
from xnode.web.forms import client_ip
from xnode.web.state import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIXES = ("/api/", "/oauth/token", "/oauth/revoke", "/oauth/userinfo")
RATE_WINDOW_S = 300.0
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key",
    "Access-Control-Expose-Headers": "Link, X-RateLimit-Limit, X-RateLimit-Remaining,"
    " X-RateLimit-Reset, Retry-After",
    "Access-Control-Max-Age": "86400",
}


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: the token, and its person (None for an app's own token)."""

    token: AccessToken
    user: User | None


OAUTH = web.AppKey("oauth", OAuthService)
API_LIMITS = web.AppKey("api_limits", WindowCounter)
CALLER = web.RequestKey("api_caller", Caller)


class TokenInvalid(Unauthorized):
    """No token, or one that does not work (Mastodon's words)."""

    def __init__(self) -> None:
        super().__init__("The access token is invalid")


class UserRequired(XnodeError):
    """An app's own token on an endpoint that acts for a person."""

    status = 422

    def __init__(self) -> None:
        super().__init__("This method requires an authenticated user")


def install(app: web.Application, oauth: OAuthService, settings: Settings) -> None:
    """Give the application its OAuth service and the API's rate counter."""
    app[OAUTH] = oauth
    app[API_LIMITS] = window_counter_for(
        oauth.db, oauth.clock, Limit(settings.api_rate_limit or 1, RATE_WINDOW_S)
    )


def bearer_token(request: web.Request) -> str | None:
    """The access token of a request: ``Authorization: Bearer``; for streaming (browsers
    cannot set headers on a WebSocket) also ``access_token`` in the query or the
    ``Sec-WebSocket-Protocol`` header, as Mastodon accepts."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.path.startswith("/api/v1/streaming"):
        token = request.query.get("access_token") or request.headers.get(
            "Sec-WebSocket-Protocol"
        )
        if token:
            return token.strip()
    return None


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS, bearer tokens and rate limits for the client API (other paths pass through).

    A token that does not work (unknown, revoked, its person suspended) is refused with 401
    on every endpoint, even those open to anonymous callers: an app must learn at once
    that it was signed out.
    """
    if not request.path.startswith(API_PREFIXES):
        return await handler(request)
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=_CORS_HEADERS)
    app = request.app
    token = bearer_token(request) if request.path.startswith("/api/") else None
    if token is not None:
        resolved = await app[OAUTH].resolve(token)
        if resolved is None:
            return _json_error(401, "The access token is invalid",
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        request[CALLER] = Caller(*resolved)
    headers: dict[str, str] = {}
    limit = app[SETTINGS].api_rate_limit
    if limit and not request.path.startswith("/api/v1/streaming"):
        caller: Caller | None = request.get(CALLER)
        key = f"token:{caller.token.id}" if caller else f"ip:{client_ip(request)}"
        try:
            remaining, reset_at = await app[API_LIMITS].hit(key)
        except RateLimited as exc:
            return _json_error(429, "Too many requests", {
                "Retry-After": str(exc.retry_after), "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
            })  # fmt: skip
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": timestamp(reset_at),
        }
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_CORS_HEADERS)
        exc.headers.update(headers)
        raise
    if not response.prepared:
        response.headers.update(_CORS_HEADERS)
        response.headers.update(headers)
    return response


def _json_error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    response.headers.update(_CORS_HEADERS)
    response.headers.update(headers)
    return response


def caller_of(request: web.Request) -> Caller | None:
    """The token's caller, or None for an anonymous request."""
    return request.get(CALLER)


def require_token(request: web.Request) -> Caller:
    """The caller, whatever its scopes.

    Raises:
        TokenInvalid: no working token (401).
    """
    caller: Caller | None = request.get(CALLER)
    if caller is None:
        raise TokenInvalid()
    return caller


def require_scope(request: web.Request, scope: str) -> Caller:
    """The caller, once its token holds ``scope`` (or a scope covering it).

    Raises:
        TokenInvalid: no working token (401).
        Forbidden: the token lacks the scope (403).
    """
    caller: Caller | None = request.get(CALLER)
    if caller is None:
        raise TokenInvalid()
    if not scope_rules.grants(caller.token.scopes, scope):
        raise Forbidden("This action is outside the authorized scopes")
    return caller


def require_user(request: web.Request, scope: str) -> User:
    """The person a token acts for, once it holds ``scope``.

    Raises:
        TokenInvalid: no working token (401).
        Forbidden: the token lacks the scope (403).
        UserRequired: an app's own token (422).
    """
    caller = require_scope(request, scope)
    if caller.user is None:
        raise UserRequired()
    return caller.user


def optional_viewer(request: web.Request, scope: str) -> User | None:
    """For endpoints open to anonymous callers: the person, if a token with ``scope`` acts
    for one (a token without the scope is refused rather than silently ignored)."""
    caller: Caller | None = request.get(CALLER)
    if caller is None:  # no token at all: api_middleware already refused a dead one
        return None
    if not scope_rules.grants(caller.token.scopes, scope):
        raise Forbidden("This action is outside the authorized scopes")
    return caller.user
