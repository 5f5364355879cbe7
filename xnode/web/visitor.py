"""Who is making a request: set by the session middleware, read by handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from xnode.accounts.models import User


@dataclass
class Visitor:
    """The per-request view of the client: user, CSRF token, pending flash messages."""

    user: User | None = None
    session_token: str = ""
    csrf_binding: str = ""
    csrf_token: str = ""
    flashes: list[list[str]] = field(default_factory=list)
    unread_notifications: int = 0


VISITOR = web.RequestKey("visitor", Visitor)


def visitor_of(request: web.Request) -> Visitor:
    """The request's visitor (an anonymous one before the session middleware ran)."""
    return request.get(VISITOR) or Visitor()
