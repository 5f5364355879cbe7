"""The node as apps see it: ``/api/v1/instance``, ``/api/v2/instance``, peers, activity,
rules, custom emojis, preferences, and the default avatar and header images."""

from __future__ import annotations

import asyncio
import io

from aiohttp import web

import xnode
from xnode.api import entities, present
from xnode.api.auth import optional_viewer, require_user
from xnode.instance import InstanceService
from xnode.media import ACCEPTED_IMAGE_TYPES, MAX_PIXELS
from xnode.posts.service import MAX_ALT_TEXT, MAX_MEDIA, MAX_NOTE_CHARS
from xnode.web.state import ACCOUNTS, CLOCK, DB, SETTINGS

# Apps parse the version to decide what they may use; compatible servers say which
# Mastodon API level they speak, then themselves (GoToSocial, Akkoma do the same).
MASTODON_API_VERSION = "4.3.0"
VERSION = f"{MASTODON_API_VERSION} (compatible; xnode {xnode.__version__})"
DESCRIPTION = "A federated node for posts, direct messages and calls."


def _instance(request: web.Request) -> InstanceService:
    return InstanceService(request.app[DB], request.app[CLOCK])


def _configuration(request: web.Request) -> dict[str, object]:
    settings = request.app[SETTINGS]
    return {
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 5},
        "statuses": {
            "max_characters": MAX_NOTE_CHARS,
            "max_media_attachments": MAX_MEDIA,
            "characters_reserved_per_url": 23,
        },
        "media_attachments": {
            "supported_mime_types": list(ACCEPTED_IMAGE_TYPES),
            "image_size_limit": settings.max_upload_bytes,
            "image_matrix_limit": MAX_PIXELS,
            "video_size_limit": 0,
            "video_frame_rate_limit": 0,
            "video_matrix_limit": 0,
            "description_limit": MAX_ALT_TEXT,
        },
        "polls": {
            "max_options": 0,
            "max_characters_per_option": 0,
            "min_expiration": 0,
            "max_expiration": 0,
        },
    }


def _streaming_url(request: web.Request) -> str:
    base = request.app[SETTINGS].base_url
    return "wss://" + base.removeprefix("https://") if base.startswith("https://") else (
        "ws://" + base.removeprefix("http://")
    )


async def _contact(request: web.Request) -> dict[str, object] | None:
    """The node's first admin, whom people contact about it."""
    admins = [u for u in await request.app[ACCOUNTS].list_users("active") if u.is_admin]
    if not admins:
        return None
    first = min(admins, key=lambda user: user.created_at)
    return await present.account(request.app, first.account)


async def instance_v1(request: web.Request) -> web.Response:
    """``GET /api/v1/instance`` (V1::Instance)."""
    settings = request.app[SETTINGS]
    usage = await _instance(request).usage()
    mode = await request.app[ACCOUNTS].registration_mode()
    return web.json_response({
        "uri": settings.domain,
        "title": settings.domain,
        "short_description": DESCRIPTION,
        "description": DESCRIPTION,
        "email": "",
        "version": VERSION,
        "urls": {"streaming_api": _streaming_url(request)},
        "stats": {"user_count": usage.users, "status_count": usage.local_posts,
                  "domain_count": usage.domains},
        "thumbnail": None,
        "languages": ["en"],
        "registrations": mode in ("open", "approval"),
        "approval_required": mode == "approval",
        "invites_enabled": mode == "invite",
        "configuration": _configuration(request),
        "contact_account": await _contact(request),
        "rules": [],
    })


async def instance_v2(request: web.Request) -> web.Response:
    """``GET /api/v2/instance`` (Instance): many apps need this one to start."""
    settings = request.app[SETTINGS]
    usage = await _instance(request).usage()
    mode = await request.app[ACCOUNTS].registration_mode()
    configuration = _configuration(request)
    configuration["urls"] = {"streaming": _streaming_url(request)}
    configuration["translation"] = {"enabled": False}
    return web.json_response({
        "domain": settings.domain,
        "title": settings.domain,
        "version": VERSION,
        # The node's own site (it serves its pages; the AGPL source travels with the package).
        "source_url": settings.base_url,
        # Mastodon 4.3's API version; apps read it instead of parsing ``version``.
        "api_versions": {"mastodon": 2},
        "description": DESCRIPTION,
        "usage": {"users": {"active_month": usage.active_month}},
        "thumbnail": {"url": settings.base_url + "/static/icon.svg"},
        "icon": [],
        "languages": ["en"],
        "configuration": configuration,
        "registrations": {
            "enabled": mode in ("open", "approval"),
            "approval_required": mode == "approval",
            "message": None,
            "url": None,
        },
        "contact": {"email": "", "account": await _contact(request)},
        "rules": [],
    })  # fmt: skip


async def peers(request: web.Request) -> web.Response:
    """``GET /api/v1/instance/peers``: servers this node knows people on."""
    return web.json_response(await _instance(request).peers())


async def activity(request: web.Request) -> web.Response:
    """``GET /api/v1/instance/activity``: twelve weeks, newest first, counts as strings."""
    weeks = await _instance(request).weekly_activity()
    return web.json_response([
        {"week": str(int(w.starts_at)), "statuses": str(w.statuses), "logins": str(w.logins),
         "registrations": str(w.registrations)}
        for w in weeks
    ])  # fmt: skip


async def rules(request: web.Request) -> web.Response:
    """``GET /api/v1/instance/rules``: the node has no rules list yet."""
    return web.json_response([])


async def empty_list(request: web.Request) -> web.Response:
    """Lists of features the node does not have (custom emojis, announcements, lists,
    filters, trends, suggestions, scheduled posts): empty, so apps that ask for them at
    start-up carry on instead of showing an error."""
    optional_viewer(request, "read")
    return web.json_response([])


async def preferences(request: web.Request) -> web.Response:
    """``GET /api/v1/preferences``."""
    require_user(request, "read:accounts")
    return web.json_response({
        "posting:default:visibility": "public",
        "posting:default:sensitive": False,
        "posting:default:language": None,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    })  # fmt: skip


_DEFAULT_IMAGES: dict[str, bytes] = {}


def _plain_png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    from PIL import Image  # lazily: Pillow costs memory a node without API use never pays

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def default_image(request: web.Request) -> web.Response:
    """The avatar and header of accounts without one (apps need a URL that loads)."""
    kind = "avatar" if request.path.startswith("/avatars/") else "header"
    if kind not in _DEFAULT_IMAGES:
        size, colour = ((400, 400), (154, 160, 166)) if kind == "avatar" else (
            (1500, 500), (96, 104, 112))
        _DEFAULT_IMAGES[kind] = await asyncio.to_thread(_plain_png, size, colour)
    return web.Response(
        body=_DEFAULT_IMAGES[kind], content_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def add_routes(app: web.Application) -> None:
    """Register the instance endpoints."""
    app.router.add_get("/api/v1/instance", instance_v1)
    app.router.add_get("/api/v2/instance", instance_v2)
    app.router.add_get("/api/v1/instance/peers", peers)
    app.router.add_get("/api/v1/instance/activity", activity)
    app.router.add_get("/api/v1/instance/rules", rules)
    app.router.add_get("/api/v1/custom_emojis", empty_list)
    for path in ("/api/v1/announcements", "/api/v1/lists", "/api/v1/filters",
                 "/api/v2/filters", "/api/v1/trends/tags", "/api/v1/trends/statuses",
                 "/api/v1/trends/links", "/api/v2/suggestions", "/api/v1/scheduled_statuses"):
        app.router.add_get(path, empty_list)
    app.router.add_get("/api/v1/preferences", preferences)
    app.router.add_get(entities.DEFAULT_AVATAR_PATH, default_image)
    app.router.add_get(entities.DEFAULT_HEADER_PATH, default_image)
