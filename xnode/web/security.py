"""CSRF tokens, signed cookies and security headers (pure helpers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Other servers' images and media come through the node (xnode/remote_media.py):
        # no page makes a reader's browser contact another server.
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}


def _mac(secret: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def csrf_token(secret: bytes, binding: str) -> str:
    """The CSRF token for a session (or anonymous visitor) binding."""
    return base64.urlsafe_b64encode(_mac(secret, "csrf", binding)).decode().rstrip("=")


def csrf_valid(secret: bytes, binding: str, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token for ``binding`` (constant-time)."""
    if not token or not binding:
        return False
    return hmac.compare_digest(csrf_token(secret, binding), token)


def sign_value(secret: bytes, purpose: str, payload: Any) -> str:
    """Serialise ``payload`` as JSON and sign it for a cookie."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    mac = base64.urlsafe_b64encode(_mac(secret, purpose, body)).decode().rstrip("=")
    return f"{body}.{mac}"


def unsign_value(secret: bytes, purpose: str, signed: str | None) -> Any:
    """Return the payload of a signed cookie value, or None if it was tampered with."""
    if not signed or "." not in signed:
        return None
    body, mac = signed.rsplit(".", 1)
    expected = base64.urlsafe_b64encode(_mac(secret, purpose, body)).decode().rstrip("=")
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
