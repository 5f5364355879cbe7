"""Client API: timeline markers (``/api/v1/markers``), see :mod:`xnode.markers`.

Scopes as Mastodon has them: ``read:statuses`` to read, ``write:statuses`` to set.
Setting ``notifications`` also marks the notifications up to it read.
"""

from __future__ import annotations

from aiohttp import web

from xnode.api import entities
from xnode.api.auth import require_user
from xnode.api.params import Params, read_params
from xnode.errors import InvalidInput
from xnode.markers import TIMELINES, Marker, MarkerService
from xnode.web.state import CLOCK, DB, NOTIFICATIONS


def _markers(request: web.Request) -> MarkerService:
    return MarkerService(request.app[DB], request.app[CLOCK], request.app[NOTIFICATIONS])


def marker_entity(marker: Marker) -> dict[str, object]:
    """A Marker entity."""
    return {
        "last_read_id": str(marker.last_read_id),
        "version": marker.version,
        "updated_at": entities.timestamp(marker.updated_at),
    }


async def get_markers(request: web.Request) -> web.Response:
    """``GET /api/v1/markers?timeline[]=home&timeline[]=notifications``: the markers that
    exist among those asked for, by timeline (none asked: ``{}``)."""
    user = require_user(request, "read:statuses")
    params = await read_params(request)
    found = await _markers(request).get(user.id, params.strings("timeline", max_items=10))
    return web.json_response({name: marker_entity(m) for name, m in found.items()})


async def set_markers(request: web.Request) -> web.Response:
    """``POST /api/v1/markers`` with ``home[last_read_id]``/``notifications[last_read_id]``
    (form or JSON): the markers moved, by timeline."""
    user = require_user(request, "write:statuses")
    params = await read_params(request)
    positions: dict[str, int] = {}
    for timeline in TIMELINES:
        given = params.mapping(timeline)
        if given is None:
            continue
        last_read_id = Params(given, {}).id("last_read_id")
        if last_read_id is None:
            raise InvalidInput(f"{timeline}[last_read_id] must be an id.", field=timeline)
        positions[timeline] = last_read_id
    found = await _markers(request).set(user.id, positions) if positions else {}
    return web.json_response({name: marker_entity(m) for name, m in found.items()})


def add_routes(app: web.Application) -> None:
    """Register the markers endpoints."""
    app.router.add_get("/api/v1/markers", get_markers)
    app.router.add_post("/api/v1/markers", set_markers)
