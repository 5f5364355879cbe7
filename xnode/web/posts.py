"""Post pages: compose, thread, edit, history, and the buttons under each post."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from xnode.accounts.models import Account, User
from xnode.activitypub.backfill import BACKFILL
from xnode.errors import InvalidInput, XnodeError
from xnode.posts.models import PostView
from xnode.posts.service import (
    MAX_ARTICLE_CHARS,
    MAX_MEDIA,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
    Draft,
    ImageUpload,
    PostService,
)
from xnode.web.forms import (
    FormData,
    checkbox,
    current_user,
    file_field,
    read_form,
    require_user,
    safe_next,
    text_field,
)
from xnode.web.render import RENDERER, redirect
from xnode.web.state import POSTS
from xnode.web.timelines import ComposeForm, compose_context, render_home

# Two digits bound how many fields a tampered form can make us read; the
# service refuses anything beyond MAX_MEDIA, so a fifth image is an error, not ignored.
_IMAGE_KEY = re.compile(r"^image_(\d{1,2})$")
# Generous bounds so the service, not the form reader, words the limit message.
_MAX_SOURCE_FIELD = MAX_ARTICLE_CHARS * 2
_MAX_SMALL_FIELD = 100
_MAX_ID = 2**63 - 1

Action = Callable[[PostService, User, int], Awaitable[None]]

_ACTIONS: dict[str, tuple[Action, str]] = {
    "like": (lambda s, u, i: s.like(u.id, i), "You liked the post."),
    "unlike": (lambda s, u, i: s.like(u.id, i, on=False), "Like removed."),
    "boost": (lambda s, u, i: s.boost(u.account, i), "You boosted the post."),
    "unboost": (lambda s, u, i: s.boost(u.account, i, on=False), "Boost removed."),
    "bookmark": (lambda s, u, i: s.bookmark(u.id, i), "Bookmarked."),
    "unbookmark": (lambda s, u, i: s.bookmark(u.id, i, on=False), "Bookmark removed."),
    "pin": (lambda s, u, i: s.pin(u.id, i), "Pinned to your profile."),
    "unpin": (lambda s, u, i: s.pin(u.id, i, on=False), "Unpinned from your profile."),
    "delete": (lambda s, u, i: s.delete(u.id, i), "Your post was deleted."),
}


def post_path(author: Account, post_id: int) -> str:
    """The canonical page of a post on this node."""
    return f"/@{author.acct}/{post_id}"


def _login_redirect(back: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/login?next={quote(safe_next(back), safe='')}")


def _parse_id(text: str) -> int | None:
    """A post id from text, or None if it cannot be one (SQLite integers are 63-bit)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    value = int(text)
    return value if value <= _MAX_ID else None


def _post_id(request: web.Request) -> int:
    value = _parse_id(request.match_info["id"])
    if value is None:
        raise web.HTTPNotFound(text="No such post.")
    return value


# --- compose -------------------------------------------------------------------


def _loose_text(form: FormData, name: str) -> str:
    """A field's text for re-showing the form (files and absent fields become '')."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _submitted_compose(form: FormData) -> ComposeForm:
    """The compose form as submitted, to show again if the post is refused."""
    reply = _loose_text(form, "in_reply_to_id")
    return ComposeForm(
        source=_loose_text(form, "source"),
        summary=_loose_text(form, "summary"),
        sensitive=checkbox(form, "sensitive"),
        visibility=_loose_text(form, "visibility"),
        source_format=_loose_text(form, "source_format"),
        kind=_loose_text(form, "kind"),
        title=_loose_text(form, "title"),
        in_reply_to_id=_parse_id(reply.strip()),
        alts=[_loose_text(form, f"alt_{i}") for i in range(MAX_MEDIA)],
        next=_loose_text(form, "next"),
    )


def _images(form: FormData) -> list[ImageUpload]:
    """Every chosen image with its alt text, in field order."""
    indices = sorted({int(m[1]) for key in form if (m := _IMAGE_KEY.match(key))})
    uploads = []
    for index in indices:
        data = file_field(form, f"image_{index}")
        if data is not None:
            uploads.append(ImageUpload(data, text_field(form, f"alt_{index}").strip()))
    return uploads


def _draft(form: FormData) -> Draft:
    """Read the compose form into a draft for the service.

    Raises:
        InvalidInput: a field holds a file, is absurdly long, or the reply id is not a number.
    """
    reply = text_field(form, "in_reply_to_id", max_length=_MAX_SMALL_FIELD).strip()
    reply_id = _parse_id(reply)
    if reply and reply_id is None:
        raise InvalidInput("The post replied to is not valid.", field="in_reply_to_id")
    return Draft(
        source=text_field(form, "source", max_length=_MAX_SOURCE_FIELD),
        visibility=text_field(form, "visibility", max_length=_MAX_SMALL_FIELD) or "public",
        summary=text_field(form, "summary", max_length=MAX_SUMMARY_CHARS * 4),
        sensitive=checkbox(form, "sensitive"),
        source_format=text_field(form, "source_format", max_length=_MAX_SMALL_FIELD) or "plain",
        kind=text_field(form, "kind", max_length=_MAX_SMALL_FIELD) or "note",
        title=text_field(form, "title", max_length=MAX_TITLE_CHARS * 4),
        in_reply_to_id=reply_id,
        images=_images(form),
    )


async def compose_submit(request: web.Request) -> web.Response:
    """Publish a post; a refused one comes back with everything typed and the reason."""
    user = current_user(request)
    if user is None:
        raise _login_redirect("/")
    form = await read_form(request)
    values = _submitted_compose(form)
    try:
        post = await request.app[POSTS].publish(user.account, _draft(form))
    except XnodeError as exc:
        refused = ComposeForm.refused(values, exc)
        if values.in_reply_to_id is not None:
            return await _render_thread(
                request, values.in_reply_to_id, compose=refused, status=exc.status
            )
        return await render_home(request, refused, status=exc.status)
    # Back to where the person was: the thread they answered (at their reply), or the
    # page they wrote on (the home timeline shows the post at the top); an unusable
    # `next` and no page to go back to lead to the new post itself.
    wanted = values.next and safe_next(values.next) == values.next
    if wanted:
        target = values.next
    elif post.in_reply_to_id is not None:
        target = f"/posts/{post.in_reply_to_id}#post-{post.id}"
    else:
        back = _back_path(request)
        target = back if back and not back.startswith("/posts") else post_path(
            user.account, post.id
        )
    raise redirect(request, target, "Your post is published.", "success")


# --- reading -------------------------------------------------------------------------


async def _canonical_view(request: web.Request, viewer_id: int | None) -> PostView:
    """The post in the URL, if the viewer may see it and the URL names its author.

    Raises:
        NotFound: no such post, not visible, or another author's name in the URL.
        Gone: the post was deleted.
    """
    view = await request.app[POSTS].view(viewer_id, _post_id(request))
    _check_author(request, view)
    return view


def _check_author(request: web.Request, view: PostView) -> None:
    # Same answer as a missing post: a wrong name must not confirm that the id exists.
    if request.match_info["username"].lower() != view.author.acct.lower():
        raise web.HTTPNotFound(text="No such post.")


def _reply_defaults(view: PostView, user: User) -> ComposeForm:
    """A reply addressed to the author and everyone they mentioned, in the same audience."""
    handles: list[str] = []
    for account in (view.author, *view.mentions):
        if account.id != user.id and account.acct not in handles:
            handles.append(account.acct)
    return ComposeForm(
        source="".join(f"@{h} " for h in handles),
        summary=view.post.summary,
        visibility=view.post.visibility,
        in_reply_to_id=view.post.id,
    )


async def _render_thread(
    request: web.Request,
    post_id: int,
    *,
    compose: ComposeForm | None = None,
    check_author: bool = False,
    status: int = 200,
) -> web.Response:
    user = current_user(request)
    if user is not None:
        # Replies the node has not seen, from the post's own server (bounded; a moment at most).
        with contextlib.suppress(XnodeError):
            shown = await request.app[POSTS].view(user.id, post_id)
            await request.app[BACKFILL].for_thread(shown.post)
    thread = await request.app[POSTS].thread(user.id if user else None, post_id)
    if check_author:
        _check_author(request, thread.post)
    context: dict[str, Any] = {"thread": thread}
    if user is not None:
        context.update(compose_context(request, compose or _reply_defaults(thread.post, user)))
        if user.id == thread.post.author.id:
            # Only the author sees which servers got the post (it reveals followers' servers).
            context["delivery_status"] = await request.app[POSTS].delivery_status(
                thread.post.post.id
            )
    return request.app[RENDERER].render(request, "post.html", context, status=status)


async def thread_page(request: web.Request) -> web.Response:
    """A post with what it answers above and its replies below, and a reply form."""
    return await _render_thread(request, _post_id(request), check_author=True)


async def post_redirect(request: web.Request) -> web.Response:
    """``/posts/{id}`` leads to the post's canonical page (if the visitor may see it)."""
    user = current_user(request)
    view = await request.app[POSTS].view(user.id if user else None, _post_id(request))
    raise web.HTTPFound(post_path(view.author, view.post.id))


async def history_page(request: web.Request) -> web.Response:
    """The current version of a post and the versions it replaced, newest first."""
    user = current_user(request)
    viewer_id = user.id if user else None
    view = await _canonical_view(request, viewer_id)
    edits = await request.app[POSTS].edit_history(viewer_id, view.post.id)
    return request.app[RENDERER].render(
        request, "post_history.html", {"view": view, "edits": list(reversed(edits))}
    )


# --- editing ------------------------------------------------------------------------


async def _editable(request: web.Request) -> tuple[User, PostView]:
    """The user and their post named in the URL.

    Raises:
        web.HTTPForbidden: the post is someone else's.
    """
    user = require_user(request)
    view = await _canonical_view(request, user.id)
    if view.author.id != user.id:
        raise web.HTTPForbidden(text="Only the author can edit this post.")
    return user, view


def _render_edit(
    request: web.Request,
    view: PostView,
    values: dict[str, Any],
    error: XnodeError | None = None,
) -> web.Response:
    context = {
        "view": view,
        "values": values,
        "error": error.message if error else None,
        "error_field": error.field if error else None,
    }
    return request.app[RENDERER].render(
        request, "post_edit.html", context, status=error.status if error else 200
    )


async def edit_page(request: web.Request) -> web.Response:
    """The edit form, filled in with the post as it is."""
    _, view = await _editable(request)
    post = view.post
    values = {
        "source": post.source, "summary": post.summary,
        "sensitive": post.sensitive, "title": post.title,
    }
    return _render_edit(request, view, values)


async def edit_submit(request: web.Request) -> web.Response:
    """Save an edit; the replaced version stays in the post's history."""
    user, view = await _editable(request)
    form = await read_form(request)
    sensitive = checkbox(form, "sensitive")
    values = {
        "source": _loose_text(form, "source"), "summary": _loose_text(form, "summary"),
        "sensitive": sensitive, "title": _loose_text(form, "title"),
    }
    try:
        await request.app[POSTS].edit(
            user.id,
            view.post.id,
            source=text_field(form, "source", max_length=_MAX_SOURCE_FIELD),
            summary=text_field(form, "summary", max_length=MAX_SUMMARY_CHARS * 4),
            sensitive=sensitive,
            title=text_field(form, "title", max_length=MAX_TITLE_CHARS * 4),
        )
    except XnodeError as exc:
        return _render_edit(request, view, values, exc)
    raise redirect(
        request, post_path(view.author, view.post.id), "Your changes are saved.", "success"
    )


# --- buttons under a post --------------------------------------------------------------


def _back_path(request: web.Request) -> str | None:
    """The same-site page the button was pressed on, from the Referer."""
    referer = request.headers.get("Referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc.lower() != request.host.lower():
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    target = safe_next(path)
    # safe_next answers "/" for anything it refuses; only trust a real match.
    return target if target == path else None


def _is_page_of(path: str, post_id: int) -> bool:
    """Whether ``path`` shows this very post (its page, edit form or history)."""
    return re.fullmatch(rf"/(?:posts|@[^/]+)/{post_id}(?:/[a-z]+)?", path.split("?")[0]) is not None


async def action_submit(request: web.Request) -> web.Response:
    """Like, boost, bookmark, pin (or undo them) or delete, then go back to where it was."""
    post_id = _post_id(request)
    back = _back_path(request)
    user = current_user(request)
    if user is None:
        raise _login_redirect(back or f"/posts/{post_id}")
    action, message = _ACTIONS[request.match_info["action"]]
    deleting = request.match_info["action"] == "delete"
    try:
        await action(request.app[POSTS], user, post_id)
    except XnodeError as exc:
        raise redirect(request, back or f"/posts/{post_id}", exc.message, "error") from None
    if deleting:
        # The post's own page now answers 410; go somewhere that still exists.
        target = back if back and not _is_page_of(back, post_id) else "/"
    else:
        target = f"{back}#post-{post_id}" if back else f"/posts/{post_id}"
    raise redirect(request, target, message, "success")


# Remote authors appear as user@host, so the name part allows a domain.
_AUTHOR = r"{username:[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)?}"


def add_routes(app: web.Application) -> None:
    """Register the post pages and actions."""
    app.router.add_post("/posts", compose_submit, name="compose")
    app.router.add_get(r"/posts/{id:\d{1,19}}", post_redirect, name="post_by_id")
    app.router.add_post(
        r"/posts/{id:\d{1,19}}/{action:" + "|".join(_ACTIONS) + "}", action_submit
    )
    app.router.add_get(rf"/@{_AUTHOR}/{{id:\d{{1,19}}}}", thread_page, name="post")
    app.router.add_get(rf"/@{_AUTHOR}/{{id:\d{{1,19}}}}/history", history_page)
    app.router.add_get(rf"/@{_AUTHOR}/{{id:\d{{1,19}}}}/edit", edit_page)
    app.router.add_post(rf"/@{_AUTHOR}/{{id:\d{{1,19}}}}/edit", edit_submit)
