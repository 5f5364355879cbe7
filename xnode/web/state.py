"""Typed keys for the services an aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from xnode.accounts.profile import ProfileService
from xnode.accounts.service import AccountService
from xnode.accounts.sessions import SessionService
from xnode.clock import Clock
from xnode.media import MediaStore
from xnode.ratelimit import RateLimiter
from xnode.settings import Settings
from xnode.store.database import Database
from xnode.web.render import RENDERER

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DB = web.AppKey("db", Database)
ACCOUNTS = web.AppKey("accounts", AccountService)
SESSIONS = web.AppKey("sessions", SessionService)
LIMITER = web.AppKey("limiter", RateLimiter)
MEDIA = web.AppKey("media", MediaStore)
PROFILES = web.AppKey("profiles", ProfileService)

__all__ = ["ACCOUNTS", "CLOCK", "DB", "LIMITER", "MEDIA", "RENDERER", "SESSIONS", "SETTINGS"]
