"""OAuth 2.0 as Mastodon speaks it (RFC 6749, PKCE from RFC 7636).

Apps register with a name, redirect URIs and the scopes they may ask for. A person
allows an app on the consent page (:mod:`xnode.web.oauth`), which issues a code; the app
exchanges it at ``/oauth/token`` for an access token. Secrets (client secrets, codes,
tokens) are random and stored as their SHA-256 only, as sessions are: a copy of the
database hands out nothing that works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from xnode.accounts.models import User
from xnode.clock import Clock
from xnode.errors import InvalidInput, XnodeError
from xnode.events import EventBus
from xnode.ids import new_id
from xnode.oauth import scopes as scope_rules
from xnode.oauth.models import AccessToken, Application, Authorization
from xnode.store import accounts as account_store
from xnode.store import node_settings
from xnode.store import oauth as oauth_store
from xnode.store.database import Database

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
CODE_LIFETIME_S = 600
TOKEN_TOUCH_INTERVAL_S = 3600
PASSWORD_GRANT_SETTING = "oauth_password_grant"
MAX_APP_NAME = 200
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
PKCE_METHODS = ("S256",)
# RFC 7636 4.2: the S256 challenge is base64url (43 characters); the grammar allows 43-128.
_PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def hash_secret(secret: str) -> str:
    """The stored form of a client secret, code or token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class OAuthError(XnodeError):
    """An OAuth error as RFC 6749 section 5.2 words it: ``error`` is the code,
    ``message`` the description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status = status

    def json_body(self) -> dict[str, str]:
        """RFC 6749's error body: the code and its description."""
        return {"error": self.error, "error_description": self.message}


@dataclass(frozen=True)
class TokensRevoked:
    """Access tokens stopped working (their open streams close at once)."""

    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class RegisteredApp:
    """A newly registered app with its client secret (shown this once)."""

    application: Application
    client_secret: str


@dataclass(frozen=True)
class IssuedToken:
    """A new access token (shown this once) and its record."""

    access_token: str
    token: AccessToken


def _check_redirect_uri(uri: str) -> str:
    """An absolute URI with a scheme (a web app's https, a mobile app's custom scheme), or
    the out-of-band marker. No fragments (RFC 6749 3.1.2)."""
    uri = uri.strip()
    if uri == OOB_REDIRECT:
        return uri
    if not uri or len(uri) > MAX_URI_LENGTH or any(c.isspace() for c in uri):
        raise InvalidInput("Each redirect URI must be an absolute URI.", field="redirect_uris")
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or not (parts.netloc or parts.path):
        raise InvalidInput("Each redirect URI must be an absolute URI.", field="redirect_uris")
    if parts.scheme.lower() in ("javascript", "data", "vbscript", "file"):
        raise InvalidInput("That redirect URI scheme is not allowed.", field="redirect_uris")
    return uri


def check_code_challenge(
    code_challenge: str | None, method: str | None
) -> tuple[str | None, str | None]:
    """A PKCE challenge and its method as an authorization request sent them, checked
    (``(None, None)`` without a challenge). Only S256, as Mastodon: ``plain`` (also
    RFC 7636's default when no method is named) would show the verifier to anyone who saw
    the authorization request.

    Raises:
        OAuthError: ``invalid_request``, for another method or a malformed challenge.
    """
    if not code_challenge:
        return None, None
    if (method or "plain") not in PKCE_METHODS:
        raise OAuthError("invalid_request", "code_challenge_method must be S256.")
    if not _PKCE_CHALLENGE.fullmatch(code_challenge):
        raise OAuthError("invalid_request", "The code_challenge is malformed.")
    return code_challenge, method


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    """Whether a PKCE verifier answers the challenge (RFC 7636 4.6)."""
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


class OAuthService:
    """Registers apps, issues codes and tokens, resolves and revokes tokens."""

    def __init__(self, db: Database, clock: Clock, events: EventBus) -> None:
        self.db = db
        self.clock = clock
        self.events = events

    # --- apps ----------------------------------------------------------------

    async def register(
        self, name: str, redirect_uris: str | list[str], scopes: str | None,
        website: str | None = None,
    ) -> RegisteredApp:
        """Register an app (``POST /api/v1/apps``).

        Raises:
            InvalidInput: no name, a bad redirect URI, an unknown scope.
        """
        name = name.strip()
        if not name:
            raise InvalidInput("The app needs a name.", field="client_name")
        if len(name) > MAX_APP_NAME:
            raise InvalidInput(f"App names are limited to {MAX_APP_NAME} characters.",
                               field="client_name")  # fmt: skip
        listed = redirect_uris.split() if isinstance(redirect_uris, str) else redirect_uris
        if not listed:
            raise InvalidInput("The app needs a redirect URI.", field="redirect_uris")
        if len(listed) > MAX_REDIRECT_URIS:
            raise InvalidInput("Too many redirect URIs.", field="redirect_uris")
        uris = [_check_redirect_uri(uri) for uri in listed]
        parsed = scope_rules.parse_scopes(scopes)
        if website is not None:
            website = website.strip() or None
            if website is not None and (
                len(website) > MAX_URI_LENGTH or urlsplit(website).scheme not in ("http", "https")
            ):
                raise InvalidInput("The website must be an http(s) URL.", field="website")
        secret = secrets.token_urlsafe(32)
        app_id = new_id()
        await oauth_store.insert_application(
            self.db, id=app_id, name=name, website=website, redirect_uris="\n".join(uris),
            scopes=" ".join(parsed), client_id=secrets.token_urlsafe(32),
            client_secret_hash=hash_secret(secret), now=self.clock.now(),
        )  # fmt: skip
        application = await oauth_store.get_application(self.db, app_id)
        assert application is not None
        return RegisteredApp(application, secret)

    async def application(self, application_id: int) -> Application | None:
        """An app by id."""
        return await oauth_store.get_application(self.db, application_id)

    async def client(self, client_id: str) -> Application:
        """The app a client id names (the consent page's first check).

        Raises:
            OAuthError: ``invalid_client``.
        """
        found = await oauth_store.get_application_by_client(self.db, client_id[:200])
        if found is None:
            raise OAuthError("invalid_client", "Unknown client_id.", 401)
        return found[0]

    async def authenticate_client(self, client_id: str, client_secret: str) -> Application:
        """The app whose id and secret these are.

        Raises:
            OAuthError: ``invalid_client`` (unknown id or wrong secret).
        """
        found = await oauth_store.get_application_by_client(self.db, client_id[:200])
        if found is None or not hmac.compare_digest(found[1], hash_secret(client_secret)):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        return found[0]

    # --- authorization code --------------------------------------------------

    def check_request(
        self, application: Application, redirect_uri: str, scope: str | None, user: User | None
    ) -> tuple[str, ...]:
        """The scopes an authorization request asks for, once it is one the app may make.

        Raises:
            OAuthError: the redirect URI is not registered (never redirected to), a scope
                is unknown or beyond the app's registration, or an admin scope asked of a
                person who is not an admin.
        """
        if redirect_uri not in application.redirect_uris:
            raise OAuthError("invalid_request", "The redirect_uri is not one the app registered.")
        try:
            requested = scope_rules.parse_scopes(scope, default=application.scopes)
        except InvalidInput as exc:
            raise OAuthError("invalid_scope", exc.message) from None
        if not scope_rules.within(requested, application.scopes):
            raise OAuthError("invalid_scope", "The app asks for scopes it did not register.")
        if user is not None and not user.is_admin and any(
            scope_rules.is_admin_scope(s) for s in requested
        ):
            raise OAuthError("invalid_scope", "Only admins can allow admin scopes.", 403)
        return requested

    async def issue_code(
        self, application: Application, user: User, redirect_uri: str, scopes: tuple[str, ...],
        code_challenge: str | None = None, code_challenge_method: str | None = None,
    ) -> str:
        """A code for the app to exchange, after the person allowed it.

        Raises:
            OAuthError: an unsupported PKCE method or malformed challenge
                (:func:`check_code_challenge`).
        """
        code_challenge, method = check_code_challenge(code_challenge, code_challenge_method)
        code = secrets.token_urlsafe(32)
        now = self.clock.now()
        await oauth_store.insert_code(
            self.db, code_hash=hash_secret(code), application_id=application.id,
            account_id=user.id, redirect_uri=redirect_uri, scopes=" ".join(scopes),
            code_challenge=code_challenge, code_challenge_method=method, now=now,
            expires_at=now + CODE_LIFETIME_S,
        )  # fmt: skip
        return code

    async def purge_expired_codes(self) -> int:
        """Forget authorization codes nobody exchanged in time; how many there were."""
        return await oauth_store.purge_expired_codes(self.db, self.clock.now())

    async def exchange_code(
        self, application: Application, code: str, redirect_uri: str, code_verifier: str | None
    ) -> IssuedToken:
        """A token for a code (``grant_type=authorization_code``).

        Raises:
            OAuthError: ``invalid_grant`` (unknown, used or expired code; another app's;
                another redirect URI; the PKCE verifier does not match).
        """
        found = await oauth_store.take_code(self.db, hash_secret(code))
        if (
            found is None
            or found.application_id != application.id
            or found.expires_at <= self.clock.now()
            or found.redirect_uri != redirect_uri
        ):
            raise OAuthError("invalid_grant", "The authorization code is invalid or expired.")
        if found.code_challenge is not None and not (
            code_verifier
            and pkce_matches(code_verifier, found.code_challenge, found.code_challenge_method or "")
        ):
            raise OAuthError("invalid_grant", "The code_verifier does not match the challenge.")
        user = await account_store.get_user(self.db, found.account_id)
        if user is None or not user.is_active:
            raise OAuthError("invalid_grant", "The account can no longer sign in.")
        return await self._issue(application, found.account_id, found.scopes)

    async def client_token(self, application: Application, scope: str | None) -> IssuedToken:
        """A token for the app itself (``grant_type=client_credentials``): it acts for nobody.

        Raises:
            OAuthError: ``invalid_scope``.
        """
        try:
            requested = scope_rules.parse_scopes(scope, default=application.scopes)
        except InvalidInput as exc:
            raise OAuthError("invalid_scope", exc.message) from None
        if not scope_rules.within(requested, application.scopes) or any(
            scope_rules.is_admin_scope(s) for s in requested
        ):
            raise OAuthError("invalid_scope", "The app asks for scopes it may not have.")
        return await self._issue(application, None, requested)

    async def password_grant_allowed(self) -> bool:
        """Whether the admin allowed the password grant (off by default, as in Mastodon 4.4)."""
        return await node_settings.get_node_setting(self.db, PASSWORD_GRANT_SETTING) == "on"

    async def set_password_grant(self, allowed: bool) -> None:
        """Allow or forbid the password grant (for scripts)."""
        await node_settings.set_node_setting(
            self.db, PASSWORD_GRANT_SETTING, "on" if allowed else "off", self.clock.now()
        )

    async def password_token(
        self, application: Application, user: User, scope: str | None
    ) -> IssuedToken:
        """A token for a person who gave their password (the caller checked it).

        Raises:
            OAuthError: ``unsupported_grant_type`` while the admin has it off; ``invalid_scope``.
        """
        if not await self.password_grant_allowed():
            raise OAuthError("unsupported_grant_type", "The password grant is turned off here.")
        requested = self.check_request(application, application.redirect_uris[0], scope, user)
        return await self._issue(application, user.id, requested)

    async def _issue(
        self, application: Application, account_id: int | None, scopes: tuple[str, ...]
    ) -> IssuedToken:
        access_token = secrets.token_urlsafe(32)
        token_id = new_id()
        now = self.clock.now()
        await oauth_store.insert_token(
            self.db, id=token_id, token_hash=hash_secret(access_token),
            application_id=application.id, account_id=account_id, scopes=" ".join(scopes),
            now=now,
        )  # fmt: skip
        token = AccessToken(token_id, application.id, account_id, scopes, now, None, None)
        return IssuedToken(access_token, token)

    # --- using and revoking tokens --------------------------------------------

    async def resolve(self, access_token: str) -> tuple[AccessToken, User | None] | None:
        """The live token and its person (None for an app token); None if it does not work
        (unknown, revoked, or its person can no longer sign in)."""
        if not access_token or len(access_token) > 200:
            return None
        token = await oauth_store.get_token(self.db, hash_secret(access_token))
        if token is None:
            return None
        user = None
        if token.account_id is not None:
            user = await account_store.get_user(self.db, token.account_id)
            if user is None or not user.is_active:
                return None
        now = self.clock.now()
        if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL_S:
            await oauth_store.touch_token(self.db, token.id, now)
        return token, user

    async def revoke(self, application: Application, access_token: str) -> None:
        """Revoke a token the app holds (RFC 7009: an unknown token is not an error)."""
        token_id = await oauth_store.revoke_token(
            self.db, hash_secret(access_token[:200]), application.id, self.clock.now()
        )
        if token_id:
            await self.events.publish(TokensRevoked((token_id,)))

    async def authorizations(self, account_id: int) -> list[Authorization]:
        """The apps a person has allowed, with their scopes and last use (settings page)."""
        by_app: dict[int, Authorization] = {}
        for token, application in await oauth_store.live_tokens_of(self.db, account_id):
            seen = by_app.get(application.id)
            if seen is None:
                by_app[application.id] = Authorization(
                    application, token.scopes, token.created_at, token.last_used_at
                )
                continue
            scopes = seen.scopes + tuple(s for s in token.scopes if s not in seen.scopes)
            used = max((t for t in (seen.last_used_at, token.last_used_at) if t), default=None)
            by_app[application.id] = Authorization(
                application, scopes, min(seen.created_at, token.created_at), used
            )
        return list(by_app.values())

    async def revoke_application(self, account_id: int, application_id: int) -> int:
        """Take an app's access away from a person: all its tokens, its streams closed."""
        token_ids = await oauth_store.revoke_application_tokens(
            self.db, account_id, application_id, self.clock.now()
        )
        if token_ids:
            await self.events.publish(TokensRevoked(tuple(token_ids)))
        return len(token_ids)
