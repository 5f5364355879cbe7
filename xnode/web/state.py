"""Typed keys for the services an aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from xnode.accounts.profile import ProfileService
from xnode.accounts.relationships import RelationshipService
from xnode.accounts.service import AccountService
from xnode.accounts.sessions import SessionService
from xnode.calls.ice import CallRelay
from xnode.calls.service import CallService
from xnode.clock import Clock
from xnode.dms.service import DirectMessages
from xnode.events import EventBus
from xnode.link_previews.service import LinkPreviewService
from xnode.live.feeds import LiveFeeds
from xnode.live.hub import LiveHub
from xnode.live.stream_audience import StreamAudience
from xnode.media import MediaStore
from xnode.notifications import NotificationService
from xnode.posts.service import PostService
from xnode.ratelimit import RateLimiter
from xnode.remote_media import RemoteMediaCache
from xnode.search import SearchService
from xnode.settings import Settings
from xnode.store.database import Database
from xnode.store.helper_processes import HelperState
from xnode.timelines import TimelineService
from xnode.web.render import RENDERER

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DB = web.AppKey("db", Database)
EVENTS = web.AppKey("events", EventBus)
ACCOUNTS = web.AppKey("accounts", AccountService)
SESSIONS = web.AppKey("sessions", SessionService)
LIMITER = web.AppKey("limiter", RateLimiter)
MEDIA = web.AppKey("media", MediaStore)
REMOTE_MEDIA = web.AppKey("remote_media", RemoteMediaCache)
LINK_PREVIEWS = web.AppKey("link_previews", LinkPreviewService)
PROFILES = web.AppKey("profiles", ProfileService)
POSTS = web.AppKey("posts", PostService)
RELATIONSHIPS = web.AppKey("relationships", RelationshipService)
TIMELINES = web.AppKey("timelines", TimelineService)
NOTIFICATIONS = web.AppKey("notifications", NotificationService)
SEARCH = web.AppKey("search", SearchService)
DMS = web.AppKey("dms", DirectMessages)
LIVE = web.AppKey("live", LiveHub)
CALLS = web.AppKey("calls", CallService)
CALL_RELAY = web.AppKey("call_relay", CallRelay)
LIVE_FEEDS = web.AppKey("live_feeds", LiveFeeds)
# The reads of the client API's streaming fan-out (xnode/api/stream_hub.py).
STREAM_AUDIENCE = web.AppKey("stream_audience", StreamAudience)
# Conversations with unread messages, counted once per page view for the nav badge.
UNREAD_MESSAGES = web.RequestKey("unread_messages", int)
# Message requests waiting, and (for admins) sign-ups waiting: the nav's other badges.
MESSAGE_REQUESTS = web.RequestKey("message_requests", int)
PENDING_SIGNUPS = web.RequestKey("pending_signups", int)
# For admins on admin pages: helper processes that keep crashing.
HELPERS_IN_TROUBLE = web.RequestKey("helpers_in_trouble", list[HelperState])

__all__ = [
    "ACCOUNTS",
    "CALLS",
    "CALL_RELAY",
    "CLOCK",
    "DB",
    "DMS",
    "EVENTS",
    "HELPERS_IN_TROUBLE",
    "LIMITER",
    "LINK_PREVIEWS",
    "LIVE",
    "LIVE_FEEDS",
    "MEDIA",
    "MESSAGE_REQUESTS",
    "NOTIFICATIONS",
    "PENDING_SIGNUPS",
    "POSTS",
    "PROFILES",
    "RELATIONSHIPS",
    "RENDERER",
    "SEARCH",
    "SESSIONS",
    "SETTINGS",
    "STREAM_AUDIENCE",
    "TIMELINES",
    "UNREAD_MESSAGES",
]
