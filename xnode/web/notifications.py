"""The notifications page and marking notifications read."""

from __future__ import annotations

from aiohttp import web

from xnode.notifications import grouped
from xnode.web.forms import require_user
from xnode.web.render import RENDERER, redirect
from xnode.web.social import cursor_param
from xnode.web.state import NOTIFICATIONS, RELATIONSHIPS


async def notifications_page(request: web.Request) -> web.Response:
    """The logged-in user's notifications, newest first, unread ones marked."""
    user = require_user(request)
    max_id = cursor_param(request)
    items, next_max_id = await request.app[NOTIFICATIONS].page(user.id, max_id)
    context = {
        "notifications": grouped(items),
        "next_max_id": next_max_id,
        "paged": max_id is not None,
        "pending_requests": await request.app[RELATIONSHIPS].pending_request_count(user.id),
    }
    return request.app[RENDERER].render(request, "notifications.html", context)


async def mark_read(request: web.Request) -> web.Response:
    """Mark every notification read."""
    user = require_user(request)
    # All of them, not just those listed: the nav count includes notifications the
    # page leaves out (about posts the user can no longer see), and it must clear.
    await request.app[NOTIFICATIONS].mark_read(user.id)
    raise redirect(request, "/notifications", "All notifications are marked as read.", "success")


def add_routes(app: web.Application) -> None:
    """Register the notification pages."""
    app.router.add_get("/notifications", notifications_page, name="notifications")
    app.router.add_post("/notifications/read", mark_read)
