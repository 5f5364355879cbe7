"""Client API: media — images uploaded before the status that carries them.

``POST /api/v2/media`` (and the older ``/api/v1/media``) stores an image as an unattached
attachment of the uploader's; ``POST /api/v1/statuses`` then names it in ``media_ids``.
The node processes images at once (decode, strip metadata, re-encode, thumbnail: well
under a second for a photo), so the answer is always ``200`` with the finished
attachment and its ``url``; Mastodon's ``202 Accepted`` for media still processing
(video) never happens here, nor ``206`` on ``GET``.

Only the uploader sees or changes an attachment through these endpoints; anyone else
gets ``404``, as for an id that does not exist. Unlike Mastodon, an attachment already
on a published status can still have its description and focus changed here (the
change reaches readers as an edit of the status).
"""

from __future__ import annotations

from aiohttp import web

from xnode.api import entities, present
from xnode.api.auth import require_user
from xnode.api.pagination import RECORD_NOT_FOUND, path_id
from xnode.api.params import read_params
from xnode.api.statuses import focus_of, parse_focus
from xnode.errors import InvalidInput, NotFound
from xnode.posts.models import MediaAttachment
from xnode.posts.service import MAX_ALT_TEXT, ImageUpload
from xnode.web.state import POSTS


async def _answer(request: web.Request, media: MediaAttachment) -> web.Response:
    ctx = await present.context_for(request.app)
    return web.json_response(entities.media_attachment(media, ctx))


async def upload(request: web.Request) -> web.Response:
    """``POST /api/v2/media`` and ``/api/v1/media``: ``file`` (an image), ``description``
    (alt text), ``focus`` (``"x,y"``, each -1..1). ``thumbnail`` is for video and audio,
    which the node does not take, so it is ignored."""
    user = require_user(request, "write:media")
    params = await read_params(request)
    data = params.file("file")
    if data is None:
        raise InvalidInput("Attach an image as the multipart field \"file\".", field="file")
    # Four times the limit read, so the service can say how long it may be.
    description = params.text("description", max_length=MAX_ALT_TEXT * 4)
    focus_text = params.text("focus", max_length=50)
    focus = parse_focus(focus_text) if focus_text else None
    media = await request.app[POSTS].upload_media(
        user.id, ImageUpload(data, description), focus
    )
    return await _answer(request, media)


async def _own(request: web.Request, user_id: int) -> MediaAttachment:
    try:
        return await request.app[POSTS].own_media(user_id, path_id(request))
    except NotFound:
        raise NotFound(RECORD_NOT_FOUND) from None


async def show(request: web.Request) -> web.Response:
    """``GET /api/v1/media/:id``: one's own attachment (always processed already)."""
    user = require_user(request, "write:media")
    return await _answer(request, await _own(request, user.id))


async def update(request: web.Request) -> web.Response:
    """``PUT /api/v1/media/:id``: change ``description`` and/or ``focus`` (what is left
    out stays; an empty focus puts it back in the centre)."""
    user = require_user(request, "write:media")
    media = await _own(request, user.id)
    params = await read_params(request)
    description = media.description
    if params.has("description"):
        description = params.text("description", max_length=MAX_ALT_TEXT * 4)
    focus = focus_of(media)
    if params.has("focus"):
        focus_text = params.text("focus", max_length=50)
        focus = parse_focus(focus_text) if focus_text else None
    updated = await request.app[POSTS].describe_media(
        user.id, media.id, description=description, focus=focus
    )
    return await _answer(request, updated)


def add_routes(app: web.Application) -> None:
    """Register the media endpoints."""
    app.router.add_post("/api/v2/media", upload)
    app.router.add_post("/api/v1/media", upload)
    app.router.add_get("/api/v1/media/{id}", show)
    app.router.add_put("/api/v1/media/{id}", update)
