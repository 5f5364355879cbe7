"""Settings pages: profile editing, password, account deletion (see add_routes)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register the settings routes."""
