"""Direct message pages: inbox, requests, new message, conversation, buttons, live socket.

Handlers parse the form, call :class:`~xnode.dms.service.DirectMessages` and
render; the chat rules (who may be messaged, requests, read markers) live in
the service. Every page works with plain forms and reloads; ``messages.js``
adds the live socket and sends without reloading, using the same routes with
``Accept: application/json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from xnode.accounts.models import User
from xnode.dms.models import ConversationSummary, Message
from xnode.dms.service import LIST_SIZE, DirectMessages
from xnode.errors import NotFound, XnodeError
from xnode.posts.content import html_to_text
from xnode.posts.service import MAX_MEDIA, MAX_NOTE_CHARS, ImageUpload
from xnode.web.forms import FormData, read_form, require_user, text_field
from xnode.web.middleware import wants_json
from xnode.web.render import RENDERER, Renderer, redirect
from xnode.web.social import id_param
from xnode.web.state import CALLS, DMS, LIVE_FEEDS, SETTINGS, UNREAD_MESSAGES
from xnode.web.visitor import visitor_of

log = logging.getLogger(__name__)

QUICK_EMOJI = ("👍", "❤️", "😂", "😮", "😢", "🎉")
PREVIEW_CHARS = 90
# Generous bounds so the service, not the form reader, words the limit message.
_MAX_SOURCE_FIELD = MAX_NOTE_CHARS * 2
_MAX_TO_FIELD = 4_000
_MAX_SMALL_FIELD = 100


@dataclass
class MessageForm:
    """What a message form shows: defaults, or what was typed before a refusal."""

    source: str = ""
    to: str = ""
    reply_to: int | None = None
    alts: list[str] = field(default_factory=lambda: [""] * MAX_MEDIA)
    error: str | None = None
    error_field: str | None = None

    def refused(self, exc: XnodeError) -> MessageForm:
        """The same values with the service's refusal attached."""
        return MessageForm(self.source, self.to, self.reply_to, self.alts, exc.message, exc.field)


# --- form reading ---------------------------------------------------------------------


def _loose_text(form: FormData, name: str) -> str:
    """A field's text for re-showing the form (files and absent fields become '')."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _submitted(form: FormData) -> MessageForm:
    """The form as submitted, to show again if the message is refused."""
    return MessageForm(
        source=_loose_text(form, "source"),
        to=_loose_text(form, "to"),
        reply_to=_id_or_none(_loose_text(form, "reply_to").strip()),
        alts=[_loose_text(form, f"alt{i}") for i in range(MAX_MEDIA)],
    )


def _id_or_none(text: str) -> int | None:
    try:
        return id_param(text, "id")
    except web.HTTPBadRequest:
        return None


def _images(form: FormData) -> list[ImageUpload]:
    """The chosen images with their alt texts (``alt0``..), in field order.

    Browsers send every file input, chosen or not; an empty one arrives as a
    part without a file name, so positions still line up with the alt fields.
    The service refuses more than ``MAX_MEDIA`` (and non-images), so extra
    files become an error rather than being ignored.
    """
    uploads = []
    for index, value in enumerate(form.getall("images", [])):
        if isinstance(value, web.FileField) and value.filename:
            alt = text_field(form, f"alt{index}", max_length=_MAX_SOURCE_FIELD).strip()
            uploads.append(ImageUpload(value.file.read(), alt))
    return uploads


def _source(form: FormData) -> str:
    return text_field(form, "source", max_length=_MAX_SOURCE_FIELD)


def _reply_to(form: FormData) -> int | None:
    """The message replied to (None when absent).

    Raises:
        NotFound: not an id (the same answer as a message from elsewhere).
    """
    raw = text_field(form, "reply_to", max_length=_MAX_SMALL_FIELD).strip()
    value = _id_or_none(raw)
    if raw and value is None:
        raise NotFound("No such message in this conversation.")
    return value


def _path_id(request: web.Request, name: str = "id") -> int:
    value = _id_or_none(request.match_info[name])
    if value is None:
        raise web.HTTPNotFound(text="No such conversation.")
    return value


# --- rendering ------------------------------------------------------------------------


def render_bubble(
    renderer: Renderer,
    message: Message,
    viewer_id: int,
    csrf_token: str,
    *,
    part: str = "message",
) -> str:
    """One message (or only its reaction bar, ``part="reactions"``) as HTML for a viewer."""
    return renderer.render_string(
        "_message.html",
        {
            "m": message,
            "viewer_id": viewer_id,
            "csrf_token": csrf_token,
            "quick_emoji": QUICK_EMOJI,
            "part": part,
        },
    )


def _preview(summary: ConversationSummary) -> str:
    """A short plain-text excerpt of the last message, for the conversation list."""
    last = summary.last_message
    if last is None:
        return ""
    if last.post.is_deleted:
        return "Message deleted"
    text = " ".join(html_to_text(last.post.content_html).split())
    if not text and last.media:
        text = "Image" if len(last.media) == 1 else f"{len(last.media)} images"
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1].rstrip() + "…"
    return text


def _form_context(request: web.Request, compose: MessageForm) -> dict[str, Any]:
    return {
        "compose": compose,
        "max_chars": MAX_NOTE_CHARS,
        "max_media": MAX_MEDIA,
        "max_upload_mb": request.app[SETTINGS].max_upload_mb,
    }


# --- lists ----------------------------------------------------------------------------


def _before_param(request: web.Request) -> float | None:
    raw = request.query.get("before", "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="'before' must be a time.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise web.HTTPBadRequest(text="'before' must be a time.")
    return value


async def _list_page(request: web.Request, state: str) -> web.Response:
    user = require_user(request)
    dms = request.app[DMS]
    before = _before_param(request)
    items = await dms.conversations(user.id, state, before=before)
    requests = await dms.conversations(user.id, "request") if state == "accepted" else items
    context = {
        "state": state,
        "is_requests": state == "request",
        "items": [(item, _preview(item)) for item in items],
        "request_count": len(requests),
        "paged": before is not None,
        "next_before": items[-1].last_activity_at if len(items) >= LIST_SIZE else None,
    }
    return request.app[RENDERER].render(request, "messages.html", context)


async def inbox_page(request: web.Request) -> web.Response:
    """Accepted conversations, most recently active first."""
    return await _list_page(request, "accepted")


async def requests_page(request: web.Request) -> web.Response:
    """Conversations started by people the user does not follow, waiting for a decision."""
    return await _list_page(request, "request")


async def decide_submit(request: web.Request) -> web.Response:
    """Accept a request (into the inbox) or decline it (hidden until a new request)."""
    user = require_user(request)
    conversation_id = _path_id(request)
    decision = request.match_info["decision"]
    state = "accepted" if decision == "accept" else "declined"
    await request.app[DMS].set_state(user.id, conversation_id, state)
    if state == "accepted":
        raise redirect(
            request, f"/messages/{conversation_id}", "Request accepted.", "success"
        )
    raise redirect(request, "/messages/requests", "Request declined.", "success")


# --- new message ----------------------------------------------------------------------


def _render_new(request: web.Request, compose: MessageForm, status: int = 200) -> web.Response:
    return request.app[RENDERER].render(
        request, "message_new.html", _form_context(request, compose), status=status
    )


async def new_page(request: web.Request) -> web.Response:
    """The new-message form, addressed to ``?to=`` when given (from a profile's button)."""
    require_user(request)
    to = request.query.get("to", "")[:_MAX_TO_FIELD]
    return _render_new(request, MessageForm(to=to))


async def new_submit(request: web.Request) -> web.Response:
    """Message people by handle; a refused message comes back with everything typed."""
    user = require_user(request)
    form = await read_form(request)
    values = _submitted(form)
    try:
        post = await request.app[DMS].start(
            user.account,
            text_field(form, "to", max_length=_MAX_TO_FIELD),
            _source(form),
            _images(form),
        )
    except XnodeError as exc:
        if wants_json(request):
            raise
        return _render_new(request, values.refused(exc), exc.status)
    if wants_json(request):
        return await _sent_json(request, user, post.id)
    raise web.HTTPSeeOther(f"/messages/{post.conversation_id}#m{post.id}")


# --- conversation ---------------------------------------------------------------------


async def _render_conversation(
    request: web.Request,
    user: User,
    conversation_id: int,
    compose: MessageForm | None = None,
    status: int = 200,
) -> web.Response:
    dms = request.app[DMS]
    before = id_param(request.query.get("before"), "before")
    page = await dms.page(user.id, conversation_id, before_id=before)
    if before is None and status == 200:
        # Seeing the newest messages reads them; the badge follows on this very page.
        await dms.mark_read(user.id, conversation_id)
        request[UNREAD_MESSAGES] = (await dms.unread_summary(user.id))[0]
    if compose is None:
        compose = MessageForm(reply_to=id_param(request.query.get("reply_to"), "reply_to"))
    replying = None
    if compose.reply_to is not None:
        replying = await dms.message(user.id, compose.reply_to)
        if replying is None or replying.view.post.conversation_id != conversation_id:
            replying, compose.reply_to = None, None
    token = visitor_of(request).csrf_token
    renderer = request.app[RENDERER]
    # A one-to-one conversation shows its calls among the messages, where they happened.
    items: list[tuple[float, str, Any]] = [
        (m.view.post.created_at, "message", render_bubble(renderer, m, user.id, token))
        for m in page.messages
    ]
    if len(page.participants) == 1:
        since = page.messages[0].view.post.created_at if page.older_than else None
        until = page.messages[-1].view.post.created_at if before is not None else None
        items += [
            (record.at, "call", record)
            for record in await request.app[CALLS].history(
                user.id, page.participants[0].id, since=since, until=until
            )
        ]
        items.sort(key=lambda item: item[0])
    context = {
        "page": page,
        "items": items,
        "callable": (
            page.participants[0] if len(page.participants) == 1
            and (page.participants[0].is_local or page.participants[0].supports_calls)
            and page.state == "accepted" else None
        ),
        "replying": replying,
        "paged": before is not None,
        **_form_context(request, compose),
    }
    return renderer.render(request, "conversation.html", context, status=status)


async def conversation_page(request: web.Request) -> web.Response:
    """A conversation: history oldest to newest, then the reply box; viewing reads it."""
    user = require_user(request)
    return await _render_conversation(request, user, _path_id(request))


async def _sent_json(request: web.Request, user: User, message_id: int) -> web.Response:
    message = await request.app[DMS].message(user.id, message_id)
    html = (
        render_bubble(request.app[RENDERER], message, user.id, visitor_of(request).csrf_token)
        if message is not None
        else ""
    )
    conversation = message.view.post.conversation_id if message is not None else None
    return web.json_response({"id": message_id, "conversation": conversation, "html": html})


async def send_submit(request: web.Request) -> web.Response:
    """Write in a conversation, then show it (or answer JSON to the page's script)."""
    user = require_user(request)
    conversation_id = _path_id(request)
    form = await read_form(request)
    values = _submitted(form)
    try:
        post = await request.app[DMS].send(
            user.account, conversation_id, _source(form), _images(form), _reply_to(form)
        )
    except XnodeError as exc:
        if wants_json(request):
            raise
        # A non-member gets the same 404 as for a conversation that does not exist.
        return await _render_conversation(
            request, user, conversation_id, values.refused(exc), exc.status
        )
    if wants_json(request):
        return await _sent_json(request, user, post.id)
    raise web.HTTPSeeOther(f"/messages/{conversation_id}#m{post.id}")


async def _message_in(request: web.Request, user: User) -> tuple[int, Message]:
    """The conversation and message named in the URL, as the user sees them.

    Raises:
        web.HTTPNotFound: no such message in that conversation for this user.
    """
    conversation_id = _path_id(request)
    message = await request.app[DMS].message(user.id, _path_id(request, "mid"))
    if message is None or message.view.post.conversation_id != conversation_id:
        raise web.HTTPNotFound(text="No such message.")
    return conversation_id, message


async def delete_submit(request: web.Request) -> web.Response:
    """Delete one's own message for everyone; a tombstone stays in its place."""
    user = require_user(request)
    conversation_id, message = await _message_in(request, user)
    await request.app[DMS].delete(user.id, message.id)
    if wants_json(request):
        return await _sent_json(request, user, message.id)
    raise redirect(
        request, f"/messages/{conversation_id}#m{message.id}", "Message deleted.", "success"
    )


async def react_submit(request: web.Request) -> web.Response:
    """Add an emoji reaction to a message, or remove one's own (``undo=1``)."""
    user = require_user(request)
    conversation_id, message = await _message_in(request, user)
    form = await read_form(request)
    emoji = text_field(form, "emoji", max_length=_MAX_SMALL_FIELD)
    undo = text_field(form, "undo", max_length=_MAX_SMALL_FIELD) in ("1", "true", "on")
    dms = request.app[DMS]
    await dms.react(user.account, message.id, emoji, on=not undo)
    if wants_json(request):
        updated = await dms.message(user.id, message.id)
        html = (
            render_bubble(
                request.app[RENDERER], updated, user.id, visitor_of(request).csrf_token,
                part="reactions",
            )
            if updated is not None
            else ""
        )
        return web.json_response({"id": message.id, "conversation": conversation_id, "html": html})
    raise web.HTTPSeeOther(f"/messages/{conversation_id}#m{message.id}")


async def read_submit(request: web.Request) -> web.Response:
    """Move the read marker (to ``up_to``, else the newest message)."""
    user = require_user(request)
    conversation_id = _path_id(request)
    form = await read_form(request)
    up_to = _id_or_none(text_field(form, "up_to", max_length=_MAX_SMALL_FIELD).strip())
    await request.app[DMS].mark_read(user.id, conversation_id, up_to)
    if wants_json(request):
        return web.Response(status=204)
    raise web.HTTPSeeOther(f"/messages/{conversation_id}")


# --- settings -------------------------------------------------------------------------


async def policy_submit(request: web.Request) -> web.Response:
    """Save who may start a conversation with the user."""
    user = require_user(request)
    form = await read_form(request)
    try:
        policy = text_field(form, "dm_policy", max_length=_MAX_SMALL_FIELD)
        await request.app[DMS].set_policy(user.id, policy)
    except XnodeError as exc:
        raise redirect(request, "/settings/account", exc.message, "error") from None
    raise redirect(request, "/settings/account", "Your message settings are saved.", "success")


# --- live feeds ----------------------------------------------------------------------


def _hub_renderers(app: web.Application) -> None:
    """Let the live hub render messages: the same partial as the page, per viewer.

    Pushed HTML carries no CSRF token (the hub does not know the tab's
    session); the page's script fills it in from the page's own forms.
    """
    dms: DirectMessages = app[DMS]
    renderer = app[RENDERER]

    async def render(viewer_id: int, message_id: int, part: str) -> str | None:
        message = await dms.message(viewer_id, message_id)
        if message is None:
            return None
        return render_bubble(renderer, message, viewer_id, "", part=part)

    async def render_message(viewer_id: int, message_id: int) -> str | None:
        return await render(viewer_id, message_id, "message")

    async def render_reactions(viewer_id: int, message_id: int) -> str | None:
        return await render(viewer_id, message_id, "reactions")

    app[LIVE_FEEDS].render_message = render_message
    app[LIVE_FEEDS].render_reactions = render_reactions


def add_routes(app: web.Application) -> None:
    """Register the message pages and the live socket (services must be in ``app``)."""
    _hub_renderers(app)
    ident = r"{id:\d{1,19}}"
    mid = r"{mid:\d{1,19}}"
    app.router.add_get("/messages", inbox_page, name="messages")
    app.router.add_get("/messages/requests", requests_page, name="message_requests")
    app.router.add_get("/messages/new", new_page, name="message_new")
    app.router.add_post("/messages/new", new_submit)
    app.router.add_get(f"/messages/{ident}", conversation_page, name="conversation")
    app.router.add_post(f"/messages/{ident}", send_submit)
    app.router.add_post(f"/messages/{ident}/{{decision:accept|decline}}", decide_submit)
    app.router.add_post(f"/messages/{ident}/read", read_submit)
    app.router.add_post(f"/messages/{ident}/messages/{mid}/delete", delete_submit)
    app.router.add_post(f"/messages/{ident}/messages/{mid}/react", react_submit)
    app.router.add_post("/settings/messages", policy_submit)
