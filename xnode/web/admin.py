"""Admin pages: users, invites, registration mode (see add_routes)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register the admin routes."""
