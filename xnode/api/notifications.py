"""Client API: notifications (``/api/v1/notifications``).

The node's kinds map onto Mastodon's types: ``mention`` and ``reply`` are both
``mention`` (Mastodon has no reply type: a reply notifies its parent's author as a
mention), ``like`` is ``favourite``, ``boost`` is ``reblog``; ``follow`` and
``follow_request`` keep their names. ``missed_call`` has no Mastodon type, and an app
shown an unknown type either drops it or breaks, so missed calls stay out of the API
(listing, counts, single reads, dismiss and clear alike); they remain on the web page.

Notifications about a post the recipient can no longer see, or from an account that is
gone, are left out (:class:`xnode.notifications.NotificationService` re-checks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aiohttp import web

from xnode.api import entities
from xnode.api.auth import require_user
from xnode.api.pagination import page_request, paginated, parse_id
from xnode.api.params import read_params
from xnode.api.present import context_for
from xnode.errors import InvalidInput
from xnode.notifications import Notification
from xnode.web.state import NOTIFICATIONS

TYPE_OF_KIND = {
    "mention": "mention",
    "reply": "mention",
    "follow": "follow",
    "follow_request": "follow_request",
    "like": "favourite",
    "boost": "reblog",
}
API_KINDS = frozenset(TYPE_OF_KIND)
"""The kinds the API shows (all but ``missed_call``)."""

# Types are checked for shape, not against a list: Mastodon adds types over time and
# apps ask for the ones they know ("quote", "severed_relationships"…); a type the node
# never writes simply matches nothing, while garbage is refused with 422.
_TYPE_SHAPE = re.compile(r"[a-z][a-z_.]{0,39}")
DEFAULT_UNREAD_CAP = 100
MAX_UNREAD_CAP = 1000


async def notification_entities(
    app: web.Application, viewer_id: int, notifications: Sequence[Notification]
) -> list[dict[str, object]]:
    """Notification entities for the recipient ``viewer_id`` (missed calls left out).

    Public for the streaming API's ``notification`` events.
    """
    shown = [n for n in notifications if n.kind in TYPE_OF_KIND]
    if not shown:
        return []
    ctx = await context_for(
        app,
        accounts=[n.from_account for n in shown],
        views=[n.post for n in shown if n.post is not None],
    )
    found = []
    for item in shown:
        entity: dict[str, object] = {
            "id": str(item.id),
            "type": TYPE_OF_KIND[item.kind],
            # The v1 list never groups: Mastodon's key for an ungrouped notification.
            "group_key": f"ungrouped-{item.id}",
            "created_at": entities.timestamp(item.created_at),
            "account": entities.account(item.from_account, ctx),
        }
        if item.post is not None:
            entity["status"] = entities.status(item.post, ctx)
        found.append(entity)
    return found


def _types(values: list[str], name: str) -> set[str]:
    for value in values:
        if not _TYPE_SHAPE.fullmatch(value):
            raise InvalidInput(f"{name} holds an unknown notification type.", field=name)
    return set(values)


async def _filters(request: web.Request) -> tuple[set[str], int | None]:
    """The node's kinds asked for by ``types[]``/``exclude_types[]``, and ``account_id``."""
    params = await read_params(request)
    wanted = _types(params.strings("types"), "types")
    excluded = _types(params.strings("exclude_types"), "exclude_types")
    kinds = {
        kind for kind, api_type in TYPE_OF_KIND.items()
        if (not wanted or api_type in wanted) and api_type not in excluded
    }  # fmt: skip
    return kinds, params.id("account_id")


def _notification_id(request: web.Request) -> int:
    found = parse_id(request.match_info["id"], "id")
    assert found is not None  # the route needs a non-empty id
    return found


async def list_notifications(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications``: newest first, with ``Link`` headers."""
    user = require_user(request, "read:notifications")
    page = page_request(request, default=40, maximum=80)
    kinds, from_account_id = await _filters(request)
    found = await request.app[NOTIFICATIONS].listing(
        user.id, kinds, from_account_id=from_account_id, max_id=page.max_id,
        min_id=page.min_id, since_id=page.since_id, limit=page.limit,
    )  # fmt: skip
    body = await notification_entities(request.app, user.id, found.items)
    # Cursors from every row read: a page whose notifications were all left out
    # still leads on to the next one.
    return paginated(request, page, body, found.scanned)


async def get_notification(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications/:id``: one's own only (others' are 404)."""
    user = require_user(request, "read:notifications")
    item = await request.app[NOTIFICATIONS].get(user.id, _notification_id(request), API_KINDS)
    return web.json_response((await notification_entities(request.app, user.id, [item]))[0])


async def dismiss(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/:id/dismiss``: delete one; answers ``{}``."""
    user = require_user(request, "write:notifications")
    await request.app[NOTIFICATIONS].dismiss(user.id, _notification_id(request), API_KINDS)
    return web.json_response({})


async def clear(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/clear``: delete every notification the API shows
    (missed calls, which apps never saw, stay for the web page)."""
    user = require_user(request, "write:notifications")
    await request.app[NOTIFICATIONS].clear(user.id, API_KINDS)
    return web.json_response({})


async def unread_count(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications/unread_count``: ``{"count": n}``, capped by ``limit``
    (default 100, at most 1000). Unread means not yet read on the web page nor passed by
    the notifications marker (setting the marker marks them read)."""
    user = require_user(request, "read:notifications")
    params = await read_params(request)
    cap = params.integer("limit", DEFAULT_UNREAD_CAP, low=1, high=2**31)
    assert cap is not None
    kinds, from_account_id = await _filters(request)
    count = await request.app[NOTIFICATIONS].count_unread(
        user.id, kinds, from_account_id=from_account_id, cap=min(cap, MAX_UNREAD_CAP)
    )
    return web.json_response({"count": count})


def add_routes(app: web.Application) -> None:
    """Register the notifications endpoints."""
    app.router.add_get("/api/v1/notifications", list_notifications)
    app.router.add_get("/api/v1/notifications/unread_count", unread_count)
    app.router.add_post("/api/v1/notifications/clear", clear)
    app.router.add_get("/api/v1/notifications/{id}", get_notification)
    app.router.add_post("/api/v1/notifications/{id}/dismiss", dismiss)
