"""Client API: statuses — post, read, edit, delete, and act on them (favourite, boost,
bookmark, pin), as Mastodon's ``/api/v1/statuses`` does.

Every action goes through :class:`~xnode.posts.service.PostService`, the same methods
the web pages use, so the rules (who may see, boost, pin, edit) are the node's one set.
A status the caller may not see is ``404 Record not found``, exactly like one that does
not exist: a followers-only or direct post never shows that it is there. Deleted posts
are gone as far as apps are concerned (404 too; Mastodon has no tombstones in its API).
"""

from __future__ import annotations

from aiohttp import web

from xnode.api import entities, present
from xnode.api.auth import optional_viewer, require_user
from xnode.api.pagination import RECORD_NOT_FOUND, page_request, paginated, path_id
from xnode.api.params import Params, read_params
from xnode.errors import Conflict, Forbidden, InvalidInput, NotFound
from xnode.posts.models import MediaAttachment, PostView
from xnode.posts.service import LANGUAGE_CODE, MAX_MEDIA, Draft, Gone
from xnode.web.state import POSTS

# An Idempotency-Key is the client's own token (apps send a UUID or a hash of the draft).
MAX_IDEMPOTENCY_KEY = 200
# ``GET /api/v1/statuses?id[]=``: Mastodon reads at most this many at once.
MAX_MANY = 40


def record_not_found() -> NotFound:
    """Mastodon's answer for a status that is unknown, deleted or not the caller's to see."""
    return NotFound(RECORD_NOT_FOUND)



async def visible_view(request: web.Request, viewer_id: int | None, post_id: int) -> PostView:
    """The status as the viewer may see it, or 404 (unknown, hidden or deleted alike).

    A boost's own id gives the boost wrapping its original, as in Mastodon (timelines
    hand apps boosts under their own ids).
    """
    views = await request.app[POSTS].views(viewer_id, [post_id])
    if not views:
        raise record_not_found()
    return views[0]


async def actionable_id(request: web.Request, viewer_id: int, post_id: int) -> int:
    """The post an action (favourite, boost, bookmark) applies to: a boost's original,
    as Mastodon does when an app acts on the boost's id; 404 when not visible."""
    return (await visible_view(request, viewer_id, post_id)).post.id


async def _one(request: web.Request, view: PostView) -> web.Response:
    return web.json_response(await present.status(request.app, view))


def _visibility(params: Params) -> str:
    given = params.text("visibility", max_length=20)
    if not given:
        return "public"
    if given not in entities.VISIBILITY_FROM_API:
        raise InvalidInput("Visibility must be public, unlisted, private or direct.",
                           field="visibility")  # fmt: skip
    return entities.VISIBILITY_FROM_API[given]


def _language(params: Params) -> str | None:
    # Mastodon keeps a language it knows and ignores one it does not (it never refuses a
    # post for it); the node stores a well-formed ISO 639 code and ignores anything else.
    given = params.text("language", max_length=20).strip()
    return given if given and LANGUAGE_CODE.fullmatch(given) else None


def _refuse_unsupported(params: Params) -> None:
    # Better a clear refusal than a post published at once, or without its poll.
    if params.has("scheduled_at") and params.raw("scheduled_at") not in (None, ""):
        raise InvalidInput("Scheduled posts are not supported on this server.",
                           field="scheduled_at")  # fmt: skip
    if params.mapping("poll"):
        raise InvalidInput("Polls are not supported on this server.", field="poll")


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses``: publish; an ``Idempotency-Key`` seen in the last day
    answers with the status it created instead of posting again."""
    user = require_user(request, "write:statuses")
    params = await read_params(request)
    key = request.headers.get("Idempotency-Key", "").strip() or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("The Idempotency-Key is too long.")
    _refuse_unsupported(params)
    draft = Draft(
        source=params.text("status"),
        visibility=_visibility(params),
        summary=params.text("spoiler_text", max_length=10_000),
        sensitive=params.boolean("sensitive"),
        in_reply_to_id=params.id("in_reply_to_id"),
        media_ids=tuple(params.ids("media_ids", max_items=MAX_MEDIA)),
        language=_language(params),
    )
    try:
        post = await request.app[POSTS].publish(user.account, draft, idempotency_key=key)
    except (NotFound, Gone):
        # Only the post replied to can be missing.
        raise record_not_found() from None
    return await _one(request, await visible_view(request, user.id, post.id))


async def show(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id`` (anonymous callers see public and unlisted ones)."""
    viewer = optional_viewer(request, "read:statuses")
    view = await visible_view(request, viewer.id if viewer else None, path_id(request))
    return await _one(request, view)


async def show_many(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses?id[]=…``: several statuses; unknown or hidden ones are
    left out (Mastodon does the same)."""
    viewer = optional_viewer(request, "read:statuses")
    params = await read_params(request)
    ids = params.ids("id", max_items=MAX_MANY)
    views = await request.app[POSTS].views(viewer.id if viewer else None, ids)
    return web.json_response(await present.statuses(request.app, views))


async def delete(request: web.Request) -> web.Response:
    """``DELETE /api/v1/statuses/:id``: the deleted status, with ``text`` (its source) so
    apps can offer to "delete and redraft"; its images can be attached again
    (``delete_media=true`` removes them at once)."""
    user = require_user(request, "write:statuses")
    view = await visible_view(request, user.id, path_id(request))
    if view.boost is not None and view.boost.account_id == user.id:
        # Deleting one's own boost by its id undoes the boost (as in Mastodon).
        body = await present.status(request.app, view)
        await request.app[POSTS].boost(user.account, view.post.id, False)
        return web.json_response(body)
    if view.boost is not None or view.post.account_id != user.id:
        # Someone else's status: Mastodon looks it up among the caller's own, so 404.
        raise record_not_found()
    params = await read_params(request)
    body = await present.status(request.app, view)
    try:
        # Apps redraft with the deleted status's media ids, so its images stay the
        # caller's uploads unless ``delete_media`` asks otherwise (Mastodon's default).
        await request.app[POSTS].delete(
            user.id, view.post.id, keep_media=not params.boolean("delete_media")
        )
    except (NotFound, Gone, Forbidden):
        raise record_not_found() from None
    body["text"] = view.post.source
    return web.json_response(body)


async def context(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id/context``: the visible ancestors (root first) and
    descendants (thread order); deleted posts are left out."""
    viewer = optional_viewer(request, "read:statuses")
    viewer_id = viewer.id if viewer else None
    try:
        thread = await request.app[POSTS].thread(viewer_id, path_id(request))
    except (NotFound, Gone):
        raise record_not_found() from None
    ancestors = [v for v in thread.ancestors if not v.post.is_deleted]
    descendants = [v for v, _ in thread.descendants if not v.post.is_deleted]
    shown = await present.statuses(request.app, [*ancestors, *descendants])
    return web.json_response({
        "ancestors": shown[:len(ancestors)], "descendants": shown[len(ancestors):],
    })  # fmt: skip


async def _act(request: web.Request, scope: str, action: str, on: bool) -> web.Response:
    """Favourite, bookmark (or undo) and answer with the status as it now is."""
    user = require_user(request, scope)
    post_id = await actionable_id(request, user.id, path_id(request))
    posts = request.app[POSTS]
    try:
        if action == "like":
            await posts.like(user.id, post_id, on)
        else:
            await posts.bookmark(user.id, post_id, on)
    except (NotFound, Gone):
        raise record_not_found() from None
    return await _one(request, await visible_view(request, user.id, post_id))


async def favourite(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/favourite``."""
    return await _act(request, "write:favourites", "like", True)


async def unfavourite(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/unfavourite``."""
    return await _act(request, "write:favourites", "like", False)


async def bookmark(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/bookmark``."""
    return await _act(request, "write:bookmarks", "bookmark", True)


async def unbookmark(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/unbookmark``."""
    return await _act(request, "write:bookmarks", "bookmark", False)


async def reblog(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/reblog``: the boost, a status of the caller's whose
    ``reblog`` is the original. (Mastodon's ``visibility`` parameter is not used: a boost
    here always carries its original's audience, public or unlisted.)"""
    user = require_user(request, "write:statuses")
    post_id = await actionable_id(request, user.id, path_id(request))
    posts = request.app[POSTS]
    try:
        await posts.boost(user.account, post_id, True)
        view = await posts.boost_view(user.id, post_id)
    except (NotFound, Gone):
        raise record_not_found() from None
    return await _one(request, view)


async def unreblog(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/unreblog``: the original status, no longer boosted."""
    user = require_user(request, "write:statuses")
    post_id = await actionable_id(request, user.id, path_id(request))
    try:
        await request.app[POSTS].boost(user.account, post_id, False)
    except (NotFound, Gone):
        raise record_not_found() from None
    return await _one(request, await visible_view(request, user.id, post_id))


async def _pin(request: web.Request, on: bool) -> web.Response:
    user = require_user(request, "write:accounts")
    post_id = path_id(request)
    await visible_view(request, user.id, post_id)
    try:
        await request.app[POSTS].pin(user.id, post_id, on)
    except (NotFound, Gone):
        raise record_not_found() from None
    except (Forbidden, Conflict) as exc:
        # Mastodon answers a pin it refuses (not yours, not public, too many) with 422.
        raise InvalidInput(exc.message) from None
    return await _one(request, await visible_view(request, user.id, post_id))


async def pin(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/pin``: one's own public or unlisted status only."""
    return await _pin(request, True)


async def unpin(request: web.Request) -> web.Response:
    """``POST /api/v1/statuses/:id/unpin``."""
    return await _pin(request, False)


async def update(request: web.Request) -> web.Response:
    """``PUT /api/v1/statuses/:id``: edit one's own status. Fields left out keep their
    value (as in Mastodon); ``media_ids``, when sent, is the whole new set of images, and
    ``media_attributes[]`` changes their alt text and focus. ``language`` is accepted and
    ignored (the node keeps the language a post was written in)."""
    user = require_user(request, "write:statuses")
    post_id = path_id(request)
    params = await read_params(request)
    view = await visible_view(request, user.id, post_id)
    if view.boost is not None or view.post.account_id != user.id:
        raise Forbidden("This action is not allowed")
    if params.mapping("poll"):
        raise InvalidInput("Polls are not supported on this server.", field="poll")
    post = view.post
    media_ids = (
        params.ids("media_ids", max_items=MAX_MEDIA) if params.has("media_ids") else None
    )
    posts = request.app[POSTS]
    attributes = _media_attributes(params)
    # Checked before anything changes: only the caller's own images can be described.
    described = {media_id: await _own_media(request, user.id, media_id)
                 for media_id in attributes}  # fmt: skip
    try:
        await posts.edit(
            user.id, post.id,
            source=params.text("status") if params.has("status") else post.source,
            summary=(params.text("spoiler_text", max_length=10_000)
                     if params.has("spoiler_text") else post.summary),
            sensitive=params.boolean("sensitive", post.sensitive),
            media_ids=media_ids,
        )  # fmt: skip
    except (NotFound, Gone):
        raise record_not_found() from None
    for media_id, (description, focus) in attributes.items():
        current = described[media_id]
        await posts.describe_media(
            user.id, media_id,
            description=current.description if description is None else description,
            focus=focus if focus is not None else focus_of(current),
        )  # fmt: skip
    return await _one(request, await visible_view(request, user.id, post.id))


async def _own_media(request: web.Request, account_id: int, media_id: int) -> MediaAttachment:
    try:
        return await request.app[POSTS].own_media(account_id, media_id)
    except NotFound:
        raise InvalidInput(f"Media {media_id} is not one of yours.",
                           field="media_attributes") from None  # fmt: skip


def focus_of(media: MediaAttachment) -> tuple[float, float] | None:
    """An attachment's focal point as a pair, or None (the centre)."""
    if media.focus_x is None or media.focus_y is None:
        return None
    return media.focus_x, media.focus_y


def _media_attributes(params: Params) -> dict[int, tuple[str | None, tuple[float, float] | None]]:
    """``media_attributes[]``: ``[{id, description, focus}]`` as JSON, or form fields
    ``media_attributes[][id]=…`` (read as an indexed mapping)."""
    raw = params.raw("media_attributes")
    items: list[object]
    if raw is None:
        nested = params.mapping("media_attributes")
        items = list(nested.values()) if nested else []
    elif isinstance(raw, list):
        items = raw
    else:
        raise InvalidInput("media_attributes must be a list.", field="media_attributes")
    found: dict[int, tuple[str | None, tuple[float, float] | None]] = {}
    for item in items[:MAX_MEDIA * 2]:
        if not isinstance(item, dict):
            raise InvalidInput("media_attributes must be a list of objects.",
                               field="media_attributes")  # fmt: skip
        attrs = Params(item, {})
        media_id = attrs.id("id")
        if media_id is None:
            raise InvalidInput("media_attributes need an id.", field="media_attributes")
        focus_text = attrs.text("focus", max_length=50)
        found[media_id] = (attrs.optional_text("description", max_length=10_000),
                           parse_focus(focus_text) if focus_text else None)  # fmt: skip
    return found


def parse_focus(text: str) -> tuple[float, float]:
    """A focal point ``"x,y"`` with both in -1..1.

    Raises:
        InvalidInput: anything else.
    """
    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts) if len(parts) == 2 else (float("nan"),) * 2
    except ValueError:
        x = y = float("nan")
    if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
        raise InvalidInput("focus must be two numbers from -1 to 1, as \"x,y\".", field="focus")
    return x, y


async def history(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id/history``: every version, oldest first, the current
    one last (an unedited status has just that one). The node keeps no images per
    version, so every version shows the images the status has now."""
    viewer = optional_viewer(request, "read:statuses")
    viewer_id = viewer.id if viewer else None
    view = await visible_view(request, viewer_id, path_id(request))
    if view.boost is not None:
        raise record_not_found()
    edits = await request.app[POSTS].edit_history(viewer_id, view.post.id)
    ctx = await present.context_for(request.app, accounts=[view.author])
    media = list(view.media)
    body = [entities.status_edit(e, view.author, media, ctx) for e in edits]
    body.append(entities.status_edit(view.post, view.author, media, ctx))
    return web.json_response(body)


async def source(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id/source``: what was typed, for the edit form."""
    user = require_user(request, "read:statuses")
    view = await visible_view(request, user.id, path_id(request))
    if view.boost is not None:
        raise record_not_found()
    return web.json_response(entities.status_source(view.post))


async def _who(request: web.Request, kind: str) -> web.Response:
    viewer = optional_viewer(request, "read:accounts")
    viewer_id = viewer.id if viewer else None
    page = page_request(request)
    posts = request.app[POSTS]
    try:
        if kind == "liked":
            found = await posts.liked_by(viewer_id, path_id(request), page.cursor)
        else:
            found = await posts.boosted_by(viewer_id, path_id(request), page.cursor)
    except (NotFound, Gone):
        raise record_not_found() from None
    body = await present.accounts(request.app, [account for _, account in found])
    return paginated(request, page, body, [cursor for cursor, _ in found])


async def favourited_by(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id/favourited_by``: accounts, newest favourite first,
    paged by the favourites' ids (as in Mastodon's Link headers)."""
    return await _who(request, "liked")


async def reblogged_by(request: web.Request) -> web.Response:
    """``GET /api/v1/statuses/:id/reblogged_by``: accounts, newest boost first."""
    return await _who(request, "boosted")


def add_routes(app: web.Application) -> None:
    """Register the statuses endpoints."""
    base = "/api/v1/statuses"
    app.router.add_post(base, create)
    app.router.add_get(base, show_many)
    app.router.add_get(base + "/{id}", show)
    app.router.add_put(base + "/{id}", update)
    app.router.add_delete(base + "/{id}", delete)
    app.router.add_get(base + "/{id}/context", context)
    app.router.add_get(base + "/{id}/history", history)
    app.router.add_get(base + "/{id}/source", source)
    app.router.add_get(base + "/{id}/favourited_by", favourited_by)
    app.router.add_get(base + "/{id}/reblogged_by", reblogged_by)
    for action, handler in (
        ("favourite", favourite), ("unfavourite", unfavourite), ("reblog", reblog),
        ("unreblog", unreblog), ("bookmark", bookmark), ("unbookmark", unbookmark),
        ("pin", pin), ("unpin", unpin),
    ):  # fmt: skip
        app.router.add_post(f"{base}/{{id}}/{action}", handler)
