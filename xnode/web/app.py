"""The aiohttp application: services, middleware, routes and background workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

import xnode
from xnode.accounts.profile import ProfileService
from xnode.accounts.relationships import RelationshipService
from xnode.accounts.service import AccountService
from xnode.accounts.sessions import SessionService
from xnode.activitypub.delivery import fetch_settings_for
from xnode.activitypub.node import setup_federation
from xnode.api import auth as api_auth
from xnode.api import routes as api_routes
from xnode.api.auth import OAUTH, api_middleware
from xnode.calls.ice import CallRelay
from xnode.calls.service import CallService
from xnode.clock import Clock, SystemClock
from xnode.dms.service import DirectMessages
from xnode.events import EventBus
from xnode.link_previews.service import LinkPreviewService
from xnode.live.feeds import LiveFeeds
from xnode.live.hub import LiveHub
from xnode.live.stream_audience import StreamAudience
from xnode.media import MediaStore
from xnode.notifications import NotificationService
from xnode.oauth.service import OAuthService
from xnode.posts.service import MAX_MEDIA, PostService
from xnode.ratelimit import rate_limiter_for
from xnode.remote_media import RemoteMediaCache
from xnode.search import SearchService
from xnode.settings import Settings
from xnode.store.database import database_for
from xnode.timelines import TimelineService
from xnode.web import (
    admin,
    auth,
    calls,
    federation_admin,
    feeds,
    live,
    messages,
    notifications,
    oauth,
    pages,
    profile,
    search,
    social,
    timelines,
)
from xnode.web import posts as post_pages
from xnode.web.middleware import (
    compression_middleware,
    csrf_middleware,
    error_middleware,
    password_change_middleware,
    security_headers_middleware,
    session_middleware,
)
from xnode.web.render import RENDERER, Renderer
from xnode.web.state import (
    ACCOUNTS,
    CALL_RELAY,
    CALLS,
    CLOCK,
    DB,
    DMS,
    EVENTS,
    HELPERS_IN_TROUBLE,
    LIMITER,
    LINK_PREVIEWS,
    LIVE,
    LIVE_FEEDS,
    MEDIA,
    MESSAGE_REQUESTS,
    NOTIFICATIONS,
    PENDING_SIGNUPS,
    POSTS,
    PROFILES,
    RELATIONSHIPS,
    REMOTE_MEDIA,
    SEARCH,
    SESSIONS,
    SETTINGS,
    STREAM_AUDIENCE,
    TIMELINES,
    UNREAD_MESSAGES,
)

log = logging.getLogger(__name__)

SESSION_PURGE_INTERVAL_S = 3600.0
MUTE_LOOK_INTERVAL_S = 60.0
"""How often timed mutes are looked at when none ends sooner (mutes set through another
serving process are seen at the latest then)."""
RATE_LIMIT_PURGE_INTERVAL_S = 3600.0
"""How often shared rate-limit counts that no longer count are deleted (PostgreSQL)."""
RELAY_REPORT_INTERVAL_S = 30.0


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[DB].open()
    yield
    await app[DB].close()


async def _every(interval_s: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``work`` every ``interval_s`` seconds until cancelled; a failure is logged and
    the next round runs as planned."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval_s)


async def _purge_sessions(app: web.Application) -> None:
    purged = await app[SESSIONS].purge_expired()
    if purged:
        log.info("purged %d expired sessions", purged)


async def _purge_oauth_codes(app: web.Application) -> None:
    """Authorization codes an app never came back to exchange (they are useless after ten
    minutes, but would otherwise stay in the table for good)."""
    purged = await app[OAUTH].purge_expired_codes()
    if purged:
        log.info("forgot %d unexchanged authorization codes", purged)


async def _end_timed_mutes(app: web.Application) -> None:
    """End timed mutes (the client API's mute ``duration``) when they expire, until cancelled:
    timelines and notifications test for the mute's row, so the row goes on time."""
    relationships = app[RELATIONSHIPS]
    while True:
        try:
            ended = await relationships.purge_expired_mutes()
            if ended:
                log.info("ended %d timed mutes", ended)
            await relationships.wait_for_mute_end(MUTE_LOOK_INTERVAL_S)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ending timed mutes failed")
            await asyncio.sleep(MUTE_LOOK_INTERVAL_S)


async def _calls_ctx(app: web.Application) -> AsyncIterator[None]:
    # Only the serving process holds tabs, so only it rings, keeps call state and runs
    # the relay.
    await app[CALL_RELAY].start()
    await app[CALLS].start()
    # Written where `xnode calls relay` reads the relay's state and counters.
    reporter = asyncio.create_task(
        _every(RELAY_REPORT_INTERVAL_S, app[CALL_RELAY].save_report, "saving the relay's report"),
        name="relay-report",
    )
    yield
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    await app[CALLS].close()
    await app[CALL_RELAY].close()
    with contextlib.suppress(Exception):  # the database may be closing already
        await app[CALL_RELAY].save_report(stopped=True)


async def _workers_ctx(app: web.Application) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(
            _every(SESSION_PURGE_INTERVAL_S, lambda: _purge_sessions(app), "session purge"),
            name="purge-sessions",
        ),
        asyncio.create_task(
            _every(
                SESSION_PURGE_INTERVAL_S, lambda: _purge_oauth_codes(app),
                "purging expired authorization codes",
            ),
            name="purge-oauth-codes",
        ),
        asyncio.create_task(_end_timed_mutes(app), name="end-timed-mutes"),
        asyncio.create_task(
            _every(
                RATE_LIMIT_PURGE_INTERVAL_S, app[LIMITER].forget_old,
                "forgetting old rate-limit counts",
            ),
            name="purge-rate-limits",
        ),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    settings: Settings, *, clock: Clock | None = None, role: str | None = None
) -> web.Application:
    """Build the node's web application from its settings.

    The database opens when the application starts (``cleanup_ctx``) and the
    background workers run for as long as it serves. ``role`` is "all" (the
    serving process: every worker, and the helper processes when the load needs
    them) or "inbox" (the inbox process; see :mod:`xnode.activitypub.inbox_process`).
    """
    if role is None:
        role = "all"
    if role not in ("all", "inbox"):
        raise ValueError(f"unknown role {role!r}")
    clock = clock or SystemClock()
    # Room for a multipart form carrying a post's images (or an avatar and a
    # header) at the limit.
    app = web.Application(
        client_max_size=settings.max_upload_bytes * MAX_MEDIA + 256 * 1024,
        middlewares=[
            compression_middleware,
            security_headers_middleware,
            api_middleware,
            error_middleware,
            session_middleware,
            csrf_middleware,
            password_change_middleware,
        ],
    )
    db = database_for(settings.database)
    renderer = Renderer(settings.secret_key, secure_cookies=settings.https)
    renderer.add_globals(
        node_domain=settings.domain, base_url=settings.base_url, version=xnode.__version__
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[DB] = db
    app[RENDERER] = renderer
    events = app[EVENTS] = EventBus(clock)
    app[ACCOUNTS] = AccountService(db, settings, clock, events)
    app[SESSIONS] = SessionService(db, clock)
    app[LIMITER] = rate_limiter_for(db, clock)
    app[MEDIA] = MediaStore(settings.media_dir)
    remote_media = app[REMOTE_MEDIA] = RemoteMediaCache(
        settings.remote_media_dir, fetch_settings_for(settings),
        settings.remote_media_cache_mb * 1024 * 1024,
    )  # fmt: skip

    async def close_remote_media(app: web.Application) -> None:
        await remote_media.close()

    app.on_cleanup.append(close_remote_media)
    app[PROFILES] = ProfileService(db, app[MEDIA], clock, settings.max_upload_bytes, events)
    posts = app[POSTS] = PostService(db, settings, clock, events, app[MEDIA])
    app[RELATIONSHIPS] = RelationshipService(db, clock, events)
    app[TIMELINES] = TimelineService(db, posts)
    # Cards for posts' links, looked for in the background when a post arrives (local or
    # remote: in the inbox process, remote posts arrive there).
    link_previews = app[LINK_PREVIEWS] = LinkPreviewService(
        db, clock, fetch_settings_for(settings), remote_media, posts,
        own_hosts=(settings.domain, urlsplit(settings.base_url).netloc),
        enabled=settings.link_previews,
    )  # fmt: skip
    link_previews.subscribe(events)

    async def stop_link_previews(app: web.Application) -> None:
        await link_previews.stop()  # on shutdown: before the database closes

    async def close_link_previews(app: web.Application) -> None:
        await link_previews.close()

    app.on_shutdown.append(stop_link_previews)
    app.on_cleanup.append(close_link_previews)
    app[NOTIFICATIONS] = NotificationService(db, clock, posts)
    app[SEARCH] = SearchService(db, posts)
    dms = app[DMS] = DirectMessages(db, settings, clock, events, posts)
    hub = app[LIVE] = LiveHub()
    app[LIVE_FEEDS] = LiveFeeds(hub, dms, clock)
    app[LIVE_FEEDS].subscribe(events)
    app[STREAM_AUDIENCE] = StreamAudience(db)  # the client API's streams read through it
    app[CALLS] = CallService(
        db, clock, hub, base_url=settings.base_url, domain=settings.domain, events=events
    )
    app[CALL_RELAY] = CallRelay(settings, clock, db)
    app[CALLS].ice_servers = app[CALL_RELAY].ice_servers
    # The client API's tokens (xnode/oauth/) and rate counts (xnode/api/auth.py).
    api_auth.install(app, OAuthService(db, clock, events), settings)
    # The nav's unread-messages badge; the session middleware counts it per page view.
    renderer.add_globals(
        unread_messages=lambda request: request.get(UNREAD_MESSAGES, 0),
        message_requests=lambda request: request.get(MESSAGE_REQUESTS, 0),
        pending_signups=lambda request: request.get(PENDING_SIGNUPS, 0),
    )
    # The admin pages' alert about helper processes that keep crashing (set by the middleware).
    renderer.add_globals(helper_trouble=lambda request: request.get(HELPERS_IN_TROUBLE, []))
    app.cleanup_ctx.append(_database_ctx)
    if role != "inbox":
        app.cleanup_ctx.append(_workers_ctx)
        app.cleanup_ctx.append(_calls_ctx)

    app.router.add_static("/static/", renderer.static_dir, name="static")
    pages.add_routes(app)
    auth.add_routes(app)
    profile.add_routes(app)
    admin.add_routes(app)
    federation_admin.add_routes(app)
    post_pages.add_routes(app)
    timelines.add_routes(app)
    social.add_routes(app)
    notifications.add_routes(app)
    search.add_routes(app)
    feeds.add_routes(app)
    messages.add_routes(app)
    live.add_routes(app)
    calls.add_routes(app)
    oauth.add_routes(app)
    api_routes.add_routes(app)
    setup_federation(app, role)
    return app
