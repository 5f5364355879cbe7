"""OAuth 2.0 for client apps: the consent page, the token and revocation endpoints, the
server metadata, and the settings page listing the apps a person has allowed.

The consent page (``/oauth/authorize``) is an ordinary cookie-session form with its CSRF
token: only the signed-in person, on this site, can allow an app. Everything the page
carries in hidden fields is checked again when the form comes back, since a form is
only what the browser sends. Errors about the app itself (unknown client, a redirect URI
it never registered) are shown on the page and never redirected, so the page cannot be
used to send people to an arbitrary address (RFC 6749 4.1.2.1); other errors go back to
the app's registered redirect URI with ``error`` and ``state``.

``/oauth/token`` and ``/oauth/revoke`` authenticate the app by its client secret (form
fields or HTTP Basic) and always answer in JSON, as RFC 6749 section 5 words it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from aiohttp import web

from xnode.accounts.models import User
from xnode.api.auth import OAUTH
from xnode.api.params import Params, read_params
from xnode.errors import RateLimited, XnodeError
from xnode.oauth import scopes as scope_rules
from xnode.oauth.models import Application
from xnode.oauth.service import (
    OOB_REDIRECT,
    PKCE_METHODS,
    IssuedToken,
    OAuthError,
    check_code_challenge,
)
from xnode.web.auth import authenticate_limited
from xnode.web.forms import read_form, require_user
from xnode.web.render import RENDERER, redirect
from xnode.web.security import CONTENT_SECURITY_POLICY
from xnode.web.state import SETTINGS

AUTHORIZE_PATH = "/oauth/authorize"
APPS_PATH = "/settings/apps"
MAX_STATE = 2000
MAX_CLIENT_FIELD = 200
# Tokens, codes and secrets must never sit in a cache (RFC 6749 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

# --- scopes in plain words ---------------------------------------------------

_TOP_SCOPES = {
    "read": "See everything in your account: your timelines, posts, followers and follows, "
    "notifications, lists, bookmarks and private conversations",
    "write": "Act as you: post, edit and delete posts, like, boost, follow, upload media "
    "and change your profile and settings",
    "follow": "Follow, unfollow, block and mute people, and see whom you block and mute",
    "push": "Send your notifications to your device",
    "profile": "Know who you are (your name and profile), nothing more",
    "admin:read": "See this server's moderation data: accounts, reports and blocks",
    "admin:write": "Take moderation actions on this server: suspend accounts, settle "
    "reports, block domains",
}
_SCOPE_NOUNS = {
    "accounts": "account details", "blocks": "blocks", "bookmarks": "bookmarks",
    "conversations": "conversations", "favourites": "likes", "filters": "filters",
    "follows": "follows", "lists": "lists", "media": "media uploads", "mutes": "mutes",
    "notifications": "notifications", "reports": "reports", "search": "searches",
    "statuses": "posts", "domain_allows": "allowed domains", "domain_blocks": "blocked domains",
    "ip_blocks": "IP blocks", "email_domain_blocks": "blocked e-mail domains",
    "canonical_email_blocks": "blocked e-mail addresses",
}  # fmt: skip
_SCOPE_VERBS = {
    "read": "See your {}",
    "write": "Change your {}",
    "admin:read": "See this server's {} (as an admin)",
    "admin:write": "Change this server's {} (as an admin)",
}


def describe_scope(scope: str) -> str:
    """What a scope lets an app do, in words a person can judge."""
    if scope in _TOP_SCOPES:
        return _TOP_SCOPES[scope]
    parent, _, child = scope.rpartition(":")
    verb = _SCOPE_VERBS.get(parent)
    if verb is None:
        return scope
    return verb.format(_SCOPE_NOUNS.get(child, child.replace("_", " ")))


def _scopes_supported() -> list[str]:
    """Every scope, the top-level ones first (as Mastodon lists them)."""
    top = [s for s in _TOP_SCOPES if s in scope_rules.KNOWN_SCOPES]
    return top + sorted(scope_rules.KNOWN_SCOPES - set(top))


# --- the consent page ----------------------------------------------------------


@dataclass(frozen=True)
class _Grant:
    """An authorization request, checked: what the person is asked to allow."""

    application: Application
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    code_challenge: str | None
    code_challenge_method: str | None


class _RequestRefused(Exception):
    """An authorization request to answer on the page itself, never by a redirect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _field(values: Mapping[str, Any], name: str, max_length: int) -> str:
    """One text field of the query or form ('' when absent).

    Raises:
        _RequestRefused: not text, or too long.
    """
    value = values.get(name, "")
    if not isinstance(value, str) or len(value) > max_length:
        raise _RequestRefused(f"The {name} parameter is malformed.")
    return value


async def _client_and_redirect(request: web.Request, values: Mapping[str, Any]) -> tuple[
    Application, str
]:  # fmt: skip
    """The app and the redirect URI it registered, or the reason not to go on.

    Without a redirect_uri, an app that registered exactly one gets that one
    (RFC 6749 3.1.2.3).

    Raises:
        _RequestRefused: an unknown client, or a redirect URI the app did not register.
    """
    client_id = _field(values, "client_id", MAX_CLIENT_FIELD)
    redirect_uri = _field(values, "redirect_uri", 2000)
    if not client_id:
        raise _RequestRefused("The app did not say who it is (no client_id).")
    try:
        application = await request.app[OAUTH].client(client_id)
    except OAuthError:
        raise _RequestRefused("This app is not registered here (unknown client_id).") from None
    if not redirect_uri and len(application.redirect_uris) == 1:
        redirect_uri = application.redirect_uris[0]
    if redirect_uri not in application.redirect_uris:
        raise _RequestRefused(
            "The app asked to be sent to an address it did not register (redirect_uri). "
            "Nothing was sent to it."
        )
    return application, redirect_uri


def _check_grant(
    request: web.Request, values: Mapping[str, Any], application: Application,
    redirect_uri: str, user: User,
) -> _Grant:  # fmt: skip
    """The rest of the request: response type, scopes, PKCE.

    Raises:
        OAuthError: to send back to the app (``unsupported_response_type``,
            ``invalid_scope``, ``invalid_request``).
        _RequestRefused: a malformed field.
    """
    response_type = _field(values, "response_type", 100)
    scope = _field(values, "scope", scope_rules.MAX_SCOPES_TEXT + 1)
    challenge = _field(values, "code_challenge", 200)
    method = _field(values, "code_challenge_method", 20)
    state = _field(values, "state", MAX_STATE)
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "Only response_type=code is supported.")
    scopes = request.app[OAUTH].check_request(application, redirect_uri, scope or None, user)
    # Checked before the page is shown, so a bad challenge goes back to the app at once.
    challenge_or_none, method_or_none = check_code_challenge(challenge or None, method or None)
    return _Grant(application, redirect_uri, scopes, state, challenge_or_none, method_or_none)


def _with_params(uri: str, params: dict[str, str]) -> str:
    """The redirect URI with the answer added to its query (keeping any it had)."""
    query = urlencode({key: value for key, value in params.items() if value})
    return uri + ("&" if "?" in uri else "?") + query


def _see_other(location: str) -> web.Response:
    """A 303 to ``location`` exactly as given: aiohttp's redirect exceptions normalise the
    URL (``myapp://cb`` became ``myapp://cb/``), and an app compares what it registered."""
    return web.Response(status=303, headers={"Location": location, **NO_STORE})


def _refused_page(request: web.Request, message: str, status: int = 400) -> web.Response:
    title = "Access refused" if status == 403 else "This app's request cannot be used"
    return request.app[RENDERER].render(
        request, "error.html", {"status": status, "title": title, "message": message},
        status=status,
    )  # fmt: skip


def _error_answer(
    request: web.Request, redirect_uri: str, error: OAuthError, state: str
) -> web.Response:
    """Tell the app about a refused request: at its redirect URI, or on the page (OOB)."""
    if redirect_uri == OOB_REDIRECT:
        return _refused_page(request, error.message, error.status)
    return _see_other(_with_params(redirect_uri, {
        "error": error.error, "error_description": error.message, "state": state,
    }))  # fmt: skip


def _form_action_source(redirect_uri: str) -> str:
    """The CSP source allowing the consent form's redirect to the app ('' if none is
    needed, or the URI does not make a clean one)."""
    if redirect_uri == OOB_REDIRECT:
        return ""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        return ""
    if scheme not in ("http", "https"):
        return f"{scheme}:"  # an app's own scheme (myapp://cb): the scheme is the app
    if not _HOST_PORT.fullmatch(parts.netloc):
        return ""
    return f"{scheme}://{parts.netloc.lower()}"


def _consent_policy(redirect_uri: str) -> str:
    """The page's CSP, letting its form lead to the app's redirect URI.

    Browsers apply ``form-action`` to the redirects that follow a form submission too
    (Chromium does): with ``'self'`` alone, Allow would end in a blocked navigation
    instead of at the app."""
    source = _form_action_source(redirect_uri)
    if not source:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {source}"
    )


async def authorize_page(request: web.Request) -> web.Response:
    """The consent page: which app asks for what, for whom; Allow or Deny."""
    try:
        application, redirect_uri = await _client_and_redirect(request, request.query)
    except _RequestRefused as exc:
        return _refused_page(request, exc.message)
    user = require_user(request)  # to the login page, which comes back here, query and all
    try:
        grant = _check_grant(request, request.query, application, redirect_uri, user)
    except _RequestRefused as exc:
        return _refused_page(request, exc.message)
    except OAuthError as exc:
        return _error_answer(request, redirect_uri, exc, request.query.get("state", "")[:MAX_STATE])
    response = request.app[RENDERER].render(request, "oauth_authorize.html", {
        "application": grant.application,
        "grant": grant,
        "scope_text": " ".join(grant.scopes),
        "scopes": [
            (scope, describe_scope(scope), scope_rules.is_admin_scope(scope))
            for scope in grant.scopes
        ],
        "oob": grant.redirect_uri == OOB_REDIRECT,
    })  # fmt: skip
    response.headers["Content-Security-Policy"] = _consent_policy(grant.redirect_uri)
    response.headers.update(NO_STORE)
    return response


async def authorize_submit(request: web.Request) -> web.Response:
    """Allow (a code for the app) or Deny, after checking the whole request again."""
    form = await read_form(request)
    try:
        application, redirect_uri = await _client_and_redirect(request, form)
    except _RequestRefused as exc:
        return _refused_page(request, exc.message)
    user = require_user(request)
    try:
        state = _field(form, "state", MAX_STATE)
    except _RequestRefused as exc:
        return _refused_page(request, exc.message)
    try:
        grant = _check_grant(request, form, application, redirect_uri, user)
        decision = _field(form, "decision", 10)
        if decision != "allow":
            raise OAuthError("access_denied", "You did not allow the app.", 403)
        code = await request.app[OAUTH].issue_code(
            application, user, grant.redirect_uri, grant.scopes, grant.code_challenge,
            grant.code_challenge_method,
        )  # fmt: skip
    except _RequestRefused as exc:
        return _refused_page(request, exc.message)
    except OAuthError as exc:
        if exc.error == "access_denied" and redirect_uri == OOB_REDIRECT:
            return request.app[RENDERER].render(
                request, "oauth_code.html", {"application": application, "code": None}
            )
        return _error_answer(request, redirect_uri, exc, state)
    if grant.redirect_uri == OOB_REDIRECT:
        response = request.app[RENDERER].render(
            request, "oauth_code.html", {"application": application, "code": code}
        )
        response.headers.update(NO_STORE)
        return response
    return _see_other(_with_params(grant.redirect_uri, {"code": code, "state": grant.state}))


# --- the token endpoint ----------------------------------------------------------


def _client_credentials(request: web.Request, params: Params) -> tuple[str, str, bool]:
    """The client id and secret, from HTTP Basic (RFC 6749 2.3.1: each part form-encoded)
    or the body; and whether Basic was used.

    Raises:
        OAuthError: ``invalid_client``, for a malformed Basic header or missing secret.
    """
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise OAuthError("invalid_client", "The Basic credentials are malformed.",
                             401) from None  # fmt: skip
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise OAuthError("invalid_client", "The Basic credentials are malformed.", 401)
        body_id = params.text("client_id", max_length=MAX_CLIENT_FIELD)
        if body_id and body_id != unquote_plus(client_id):
            raise OAuthError("invalid_request", "Two different client_ids were sent.")
        return unquote_plus(client_id), unquote_plus(secret), True
    client_id = params.text("client_id", max_length=MAX_CLIENT_FIELD)
    secret = params.text("client_secret", max_length=MAX_CLIENT_FIELD)
    return client_id, secret, False


async def _authenticate_client(request: web.Request, params: Params) -> Application:
    """The app making the request, by its id and secret.

    Every app registered here has a secret (Mastodon's apps are confidential clients), so
    it is required on every grant, PKCE or not (RFC 6749 3.2.1).

    Raises:
        OAuthError: ``invalid_client`` (401).
    """
    client_id, secret, _ = _client_credentials(request, params)
    if not client_id or not secret:
        raise OAuthError("invalid_client", "Client authentication failed: send the "
                         "client_id and client_secret.", 401)  # fmt: skip
    return await request.app[OAUTH].authenticate_client(client_id, secret)


def _token_body(issued: IssuedToken) -> dict[str, object]:
    """A Token entity, as Mastodon answers."""
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "scope": " ".join(issued.token.scopes),
        "created_at": int(issued.token.created_at),
    }


def _oauth_error_response(request: web.Request, exc: OAuthError) -> web.Response:
    headers = dict(NO_STORE)
    if exc.status == 401 and request.headers.get("Authorization", "").lower().startswith("basic"):
        headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return web.json_response(exc.json_body(), status=exc.status, headers=headers)


async def _password_user(request: web.Request, params: Params) -> User:
    """The person whose username and password came with a password grant; counted against
    the same limits as the login form, so the grant is no side door for guessing.

    Raises:
        OAuthError: ``invalid_grant`` for wrong credentials or an account that cannot sign in.
        RateLimited: too many attempts.
    """
    username = params.text("username", max_length=300).strip().lstrip("@").lower()
    password = params.text("password", max_length=1024)
    # Mastodon.py sends the e-mail address; here people sign in by name, so a
    # user@this-domain address is taken as the name.
    domain = "@" + request.app[SETTINGS].domain.lower()
    if username.endswith(domain):
        username = username[: -len(domain)]
    if not username or not password:
        raise OAuthError("invalid_request", "The password grant needs a username and password.")
    try:
        user = await authenticate_limited(request, username, password)
    except RateLimited:
        raise
    except XnodeError as exc:
        raise OAuthError("invalid_grant", exc.message) from None
    if user.must_change_password:
        raise OAuthError("invalid_grant", "Log in on the website and choose a new password first.")
    return user


async def _grant(request: web.Request, params: Params) -> IssuedToken:
    oauth = request.app[OAUTH]
    grant_type = params.text("grant_type", max_length=100)
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is missing.")
    if grant_type not in ("authorization_code", "client_credentials", "password"):
        raise OAuthError("unsupported_grant_type", f"The {grant_type[:40]!r} grant is not "
                         "supported here.")  # fmt: skip
    application = await _authenticate_client(request, params)
    scope = params.text("scope", max_length=scope_rules.MAX_SCOPES_TEXT) or None
    if grant_type == "client_credentials":
        return await oauth.client_token(application, scope)
    if grant_type == "password":
        # Checked before the password, so a node with the grant off answers no guesses.
        if not await oauth.password_grant_allowed():
            raise OAuthError("unsupported_grant_type", "The password grant is turned off here.")
        user = await _password_user(request, params)
        return await oauth.password_token(application, user, scope)
    code = params.text("code", max_length=200)
    if not code:
        raise OAuthError("invalid_request", "The authorization code is missing.")
    redirect_uri = params.text("redirect_uri", max_length=2000)
    if not redirect_uri and len(application.redirect_uris) == 1:
        redirect_uri = application.redirect_uris[0]  # as the consent page defaulted it
    verifier = params.text("code_verifier", max_length=200) or None
    # The token carries the scopes the person allowed; a ``scope`` sent here changes nothing.
    return await oauth.exchange_code(application, code, redirect_uri, verifier)


async def token(request: web.Request) -> web.Response:
    """``POST /oauth/token``: authorization_code, client_credentials, or (when the admin
    allowed it) password. Errors are RFC 6749 5.2's JSON, never a page."""
    try:
        issued = await _grant(request, await read_params(request))
    except OAuthError as exc:
        return _oauth_error_response(request, exc)
    except RateLimited as exc:
        return web.json_response(
            {"error": "invalid_grant", "error_description": exc.message}, status=429,
            headers={**NO_STORE, "Retry-After": str(exc.retry_after)},
        )  # fmt: skip
    except XnodeError as exc:  # a malformed body or field
        return _oauth_error_response(request, OAuthError("invalid_request", exc.message))
    return web.json_response(_token_body(issued), headers=NO_STORE)


async def revoke(request: web.Request) -> web.Response:
    """``POST /oauth/revoke`` (RFC 7009): the app revokes one of its tokens; an unknown or
    already revoked token is not an error."""
    try:
        params = await read_params(request)
        application = await _authenticate_client(request, params)
        access_token = params.text("token", max_length=200)
        if not access_token:
            raise OAuthError("invalid_request", "The token to revoke is missing.")
        await request.app[OAUTH].revoke(application, access_token)
    except OAuthError as exc:
        return _oauth_error_response(request, exc)
    except XnodeError as exc:
        return _oauth_error_response(request, OAuthError("invalid_request", exc.message))
    return web.json_response({}, headers=NO_STORE)


async def server_metadata(request: web.Request) -> web.Response:
    """RFC 8414 metadata, with the fields Mastodon (4.3+) publishes; apps such as
    Mastodon.py read their endpoints from here. Only what this node does is listed: the
    password grant only while the admin allows it, the ``query`` response mode only."""
    base = request.app[SETTINGS].base_url
    grants = ["authorization_code", "client_credentials"]
    if await request.app[OAUTH].password_grant_allowed():
        grants.insert(1, "password")
    body = {
        "issuer": f"{base}/",
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}{AUTHORIZE_PATH}",
        "token_endpoint": f"{base}/oauth/token",
        # Mastodon's own field: /api/v1/apps is not RFC 7591 dynamic registration.
        "app_registration_endpoint": f"{base}/api/v1/apps",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": _scopes_supported(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": list(PKCE_METHODS),
    }
    # Browser apps (Elk, Phanpy) read it from their own origin.
    return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})


# --- settings: authorised apps ---------------------------------------------------


async def apps_page(request: web.Request) -> web.Response:
    """The apps the person has allowed, with what they may do and a Revoke button."""
    user = require_user(request)
    authorizations = await request.app[OAUTH].authorizations(user.id)
    authorizations.sort(key=lambda a: a.created_at, reverse=True)
    return request.app[RENDERER].render(request, "settings_apps.html", {
        "settings_section": "apps",
        "authorizations": [
            (authorization, [(s, describe_scope(s)) for s in authorization.scopes])
            for authorization in authorizations
        ],
    })  # fmt: skip


async def app_revoke(request: web.Request) -> web.Response:
    """Take an app's access away: its tokens stop working and its open streams close."""
    user = require_user(request)
    application_id = int(request.match_info["id"])
    oauth = request.app[OAUTH]
    application = await oauth.application(application_id)
    revoked = await oauth.revoke_application(user.id, application_id)
    if not revoked or application is None:
        raise redirect(request, APPS_PATH, "That app had no access to your account.", "error")
    raise redirect(request, APPS_PATH, f"{application.name} can no longer use your account.",
                   "success")  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the OAuth endpoints and the authorised-apps settings page."""
    app.router.add_get(AUTHORIZE_PATH, authorize_page, name="oauth_authorize")
    app.router.add_post(AUTHORIZE_PATH, authorize_submit)
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/oauth/revoke", revoke)
    app.router.add_get("/.well-known/oauth-authorization-server", server_metadata)
    app.router.add_get(APPS_PATH, apps_page, name="settings_apps")
    # At most 18 digits so the id always fits SQLite's 64-bit integers.
    app.router.add_post(APPS_PATH + r"/{id:\d{1,18}}/revoke", app_revoke)

