"""Short-lived TURN credentials in the "TURN REST API" scheme.

The node and the relay share one secret. The node hands a signed-in person a username of
the form ``"<expiry unix time>:<user id>"`` and, as the password, the base64 of
HMAC-SHA1(secret, username). The relay recomputes the password from the username, so it
keeps no list of users, and refuses a username whose expiry has passed. coturn understands
the same scheme (``use-auth-secret`` with ``static-auth-secret``), so a node can point its
callers at an external coturn instead of the built-in relay without changing anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredentials:
    """A username and password for the relay, valid until ``expires_at`` (Unix time)."""

    username: str
    password: str
    ttl: int
    expires_at: int


def turn_password(secret: bytes, username: str) -> str:
    """The password that goes with ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def issue_credentials(secret: bytes, user: str, ttl_s: int, now: float) -> TurnCredentials:
    """Credentials for ``user`` that the relay (or coturn) accepts for ``ttl_s`` seconds.

    Args:
        secret: the secret shared with the relay.
        user: an opaque id of the person (no ``:``), used for the per-user allocation quota.
        ttl_s: how long the credentials stay valid, in seconds.
        now: the current Unix time.

    Returns:
        The username, the password, the ttl and the expiry time.

    Raises:
        ValueError: if the user id is empty or holds a ``:``, or ``ttl_s`` is not positive.
    """
    if not user or ":" in user:
        raise ValueError("the TURN user id must be non-empty and must not contain ':'")
    if ttl_s <= 0:
        raise ValueError("the TURN credentials' ttl must be positive")
    expires_at = int(now) + ttl_s
    username = f"{expires_at}:{user}"
    return TurnCredentials(
        username=username,
        password=turn_password(secret, username),
        ttl=ttl_s,
        expires_at=expires_at,
    )


def parse_username(username: str) -> tuple[int, str] | None:
    """The expiry time and user id in a TURN REST API username, or None if it is not one.

    coturn also accepts the order ``"<user>:<expiry>"`` from old clients; xnode issues only
    ``"<expiry>:<user>"``, and reading one order keeps the user id unambiguous.
    """
    expiry_text, sep, user = username.partition(":")
    if not sep or not user or not expiry_text.isdigit() or len(expiry_text) > 12:
        return None
    return int(expiry_text), user
