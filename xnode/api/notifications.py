"""Client API: notifications (``/api/v1/notifications``).

The node's kinds map onto Mastodon's types: ``mention`` and ``reply`` are both
``mention`` (Mastodon has no reply type: a reply notifies its parent's author as a
mention), ``like`` is ``favourite``, ``boost`` is ``reblog``; ``follow`` and
``follow_request`` keep their names. ``missed_call`` has no Mastodon type, and an app
shown an unknown type either drops it or breaks, so missed calls stay out of the API
(listing, counts, single reads, dismiss and clear alike); they remain on the web page.

Notifications about a post the recipient can no longer see, or from an account that is
gone, are left out (:class:`xnode.notifications.NotificationService` re-checks).

Grouped notifications (``/api/v2/notifications``, Mastodon 4.3, which the node's
``api_versions`` announces) gather likes and boosts of one post and follows of one day
(UTC), as the web page does; the rest are groups of one (``ungrouped-ID``). A page reads
``limit`` notifications and groups those, so it may hold fewer groups than ``limit``;
``notifications_count`` counts the whole group. ``expand_accounts=partial_avatars`` is
answered with full accounts (``partial_accounts`` is optional), and ``include_filtered``
changes nothing: the node filters no notifications.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aiohttp import web

from xnode.accounts.models import Account
from xnode.api import entities, present
from xnode.api.auth import require_user
from xnode.api.pagination import RECORD_NOT_FOUND, page_request, paginated, path_id
from xnode.api.params import Params, read_params
from xnode.api.present import context_for
from xnode.errors import InvalidInput, NotFound
from xnode.notifications import GROUPABLE_KINDS, ApiGroup, GroupKey, Notification
from xnode.posts.models import PostView
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
    app: web.Application, notifications: Sequence[Notification]
) -> list[dict[str, object]]:
    """Notification entities (missed calls left out); the notifications were read for
    their recipient, whose view of each post they carry.

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
            # The key of the group /api/v2/notifications puts it in (as Mastodon, the
            # single notification and streaming APIs always name the "proper" group).
            "group_key": GroupKey.of(item).text,
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


def _filters(params: Params) -> tuple[set[str], int | None]:
    """The node's kinds asked for by ``types[]``/``exclude_types[]``, and ``account_id``."""
    wanted = _types(params.strings("types"), "types")
    excluded = _types(params.strings("exclude_types"), "exclude_types")
    kinds = {
        kind for kind, api_type in TYPE_OF_KIND.items()
        if (not wanted or api_type in wanted) and api_type not in excluded
    }  # fmt: skip
    return kinds, params.id("account_id")



async def list_notifications(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications``: newest first, with ``Link`` headers."""
    user = require_user(request, "read:notifications")
    page = page_request(request, default=40, maximum=80)
    kinds, from_account_id = _filters(await read_params(request))
    found = await request.app[NOTIFICATIONS].listing(
        user.id, kinds, from_account_id=from_account_id, max_id=page.max_id,
        min_id=page.min_id, since_id=page.since_id, limit=page.limit,
    )  # fmt: skip
    body = await notification_entities(request.app, found.items)
    # Cursors from every row read: a page whose notifications were all left out
    # still leads on to the next one.
    return paginated(request, page, body, found.scanned)


async def get_notification(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications/:id``: one's own only (others' are 404)."""
    user = require_user(request, "read:notifications")
    item = await request.app[NOTIFICATIONS].get(user.id, path_id(request), API_KINDS)
    return web.json_response((await notification_entities(request.app, [item]))[0])


async def dismiss(request: web.Request) -> web.Response:
    """``POST /api/v1/notifications/:id/dismiss``: delete one; answers ``{}``."""
    user = require_user(request, "write:notifications")
    await request.app[NOTIFICATIONS].dismiss(user.id, path_id(request), API_KINDS)
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
    kinds, from_account_id = _filters(params)
    count = await request.app[NOTIFICATIONS].count_unread(
        user.id, kinds, from_account_id=from_account_id, cap=min(cap, MAX_UNREAD_CAP)
    )
    return web.json_response({"count": count})


GROUPABLE_TYPES = {TYPE_OF_KIND[kind]: kind for kind in GROUPABLE_KINDS}
"""The API types that can be grouped (``grouped_types[]``), and their kinds."""


def _groupable(params: Params) -> set[str]:
    if not params.has("grouped_types"):
        return set(GROUPABLE_TYPES.values())
    asked = _types(params.strings("grouped_types"), "grouped_types")
    return {kind for api_type, kind in GROUPABLE_TYPES.items() if api_type in asked}


async def _grouped_results(
    app: web.Application, groups: Sequence[ApiGroup], *, paged: bool
) -> dict[str, object]:
    """A GroupedNotificationsResults: the groups, and their accounts and statuses once."""
    accounts: dict[int, Account] = {}
    views: dict[int, PostView] = {}
    for group in groups:
        for item in group.items:
            accounts.setdefault(item.from_account.id, item.from_account)
            if item.post is not None:
                views.setdefault(item.post.post.id, item.post)
    ctx = await context_for(app, accounts=list(accounts.values()), views=list(views.values()))
    found = []
    for group in groups:
        newest = group.items[0]
        samples = list(dict.fromkeys(str(n.from_account.id) for n in group.items))[:8]
        entity: dict[str, object] = {
            "group_key": group.key.text,
            "notifications_count": group.total,
            "type": TYPE_OF_KIND[group.kind],
            "most_recent_notification_id": str(newest.id),
            "sample_account_ids": samples,
        }
        if paged:
            entity["page_min_id"] = str(group.items[-1].id)
            entity["page_max_id"] = str(newest.id)
            entity["latest_page_notification_at"] = entities.timestamp(newest.created_at)
        if newest.post is not None:
            entity["status_id"] = str(newest.post.post.id)
        found.append(entity)
    return {
        "accounts": [entities.account(a, ctx) for a in accounts.values()],
        "statuses": [entities.status(v, ctx) for v in views.values()],
        "notification_groups": found,
    }


def _group_key(request: web.Request) -> GroupKey:
    key = GroupKey.parse(request.match_info["group_key"])
    if key is None:
        raise NotFound(RECORD_NOT_FOUND)  # not a key of ours: no such group
    return key


async def list_groups(request: web.Request) -> web.Response:
    """``GET /api/v2/notifications``: grouped notifications, with ``Link`` headers."""
    user = require_user(request, "read:notifications")
    page = page_request(request, default=40, maximum=80)
    params = await read_params(request)
    kinds, from_account_id = _filters(params)
    found = await request.app[NOTIFICATIONS].groups(
        user.id, kinds, groupable=_groupable(params), from_account_id=from_account_id,
        max_id=page.max_id, min_id=page.min_id, since_id=page.since_id, limit=page.limit,
    )  # fmt: skip
    body = await _grouped_results(request.app, found.groups, paged=True)
    return paginated(request, page, body, found.scanned)


async def get_group(request: web.Request) -> web.Response:
    """``GET /api/v2/notifications/:group_key``: one group (one's own only)."""
    user = require_user(request, "read:notifications")
    group = await request.app[NOTIFICATIONS].group(user.id, _group_key(request), API_KINDS)
    return web.json_response(await _grouped_results(request.app, [group], paged=False))


async def group_accounts(request: web.Request) -> web.Response:
    """``GET /api/v2/notifications/:group_key/accounts``: who is in the group, newest first
    (the newest 80)."""
    user = require_user(request, "read:notifications")
    group = await request.app[NOTIFICATIONS].group(user.id, _group_key(request), API_KINDS)
    people = list({n.from_account.id: n.from_account for n in group.items}.values())
    return web.json_response(await present.accounts(request.app, people))


async def dismiss_group(request: web.Request) -> web.Response:
    """``POST /api/v2/notifications/:group_key/dismiss``: delete the group; ``{}``."""
    user = require_user(request, "write:notifications")
    await request.app[NOTIFICATIONS].dismiss_group(user.id, _group_key(request), API_KINDS)
    return web.json_response({})


async def unread_group_count(request: web.Request) -> web.Response:
    """``GET /api/v2/notifications/unread_count``: unread groups, capped by ``limit``."""
    user = require_user(request, "read:notifications")
    params = await read_params(request)
    cap = params.integer("limit", DEFAULT_UNREAD_CAP, low=1, high=2**31)
    assert cap is not None
    kinds, from_account_id = _filters(params)
    count = await request.app[NOTIFICATIONS].count_unread_groups(
        user.id, kinds, groupable=_groupable(params), from_account_id=from_account_id,
        cap=min(cap, MAX_UNREAD_CAP),
    )  # fmt: skip
    return web.json_response({"count": count})


POLICY_FIELDS = ("for_not_following", "for_not_followers", "for_new_accounts",
                 "for_private_mentions", "for_limited_accounts")  # fmt: skip


def _accepting_policy() -> dict[str, object]:
    """The NotificationPolicy of a node that filters no notifications: accept all."""
    return {
        **dict.fromkeys(POLICY_FIELDS, "accept"),
        "summary": {"pending_requests_count": 0, "pending_notifications_count": 0},
    }


async def get_policy(request: web.Request) -> web.Response:
    """``GET /api/v2/notifications/policy``: every notification is accepted (the node has
    no notification filtering; who may message or follow one is set on the web)."""
    require_user(request, "read:notifications")
    return web.json_response(_accepting_policy())


async def update_policy(request: web.Request) -> web.Response:
    """``PATCH /api/v2/notifications/policy``: only ``accept`` can be chosen (422 else)."""
    require_user(request, "write:notifications")
    params = await read_params(request)
    for name in POLICY_FIELDS:
        value = params.text(name, "accept", max_length=20)
        if value not in ("accept", "filter", "drop"):
            raise InvalidInput(f"{name} must be accept, filter or drop.", field=name)
        if value != "accept":
            raise InvalidInput("This server does not filter notifications.", field=name)
    return web.json_response(_accepting_policy())


async def no_requests(request: web.Request) -> web.Response:
    """``GET /api/v1/notifications/requests``: nothing is ever filtered, so none."""
    require_user(request, "read:notifications")
    return web.json_response([])


async def no_such_request(request: web.Request) -> web.Response:
    """A single notification request (or acting on one): there are none."""
    require_user(request, "read:notifications" if request.method == "GET" else
                 "write:notifications")  # fmt: skip
    raise NotFound(RECORD_NOT_FOUND)


def add_routes(app: web.Application) -> None:
    """Register the notifications endpoints."""
    app.router.add_get("/api/v1/notifications", list_notifications)
    app.router.add_get("/api/v1/notifications/unread_count", unread_count)
    app.router.add_post("/api/v1/notifications/clear", clear)
    app.router.add_get("/api/v1/notifications/requests", no_requests)
    app.router.add_get("/api/v1/notifications/requests/{id}", no_such_request)
    app.router.add_post("/api/v1/notifications/requests/{id}/{action:accept|dismiss}",
                        no_such_request)  # fmt: skip
    app.router.add_get("/api/v2/notifications/policy", get_policy)
    app.router.add_patch("/api/v2/notifications/policy", update_policy)
    app.router.add_get("/api/v1/notifications/{id}", get_notification)
    app.router.add_post("/api/v1/notifications/{id}/dismiss", dismiss)
    app.router.add_get("/api/v2/notifications", list_groups)
    app.router.add_get("/api/v2/notifications/unread_count", unread_group_count)
    app.router.add_get("/api/v2/notifications/{group_key}", get_group)
    app.router.add_get("/api/v2/notifications/{group_key}/accounts", group_accounts)
    app.router.add_post("/api/v2/notifications/{group_key}/dismiss", dismiss_group)
