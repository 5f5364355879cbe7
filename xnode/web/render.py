"""HTML rendering with jinja2 (autoescaped) and one-shot flash messages."""

from __future__ import annotations

import importlib.util
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from xnode.posts.models import PostView
from xnode.web.security import sign_value, unsign_value
from xnode.web.visitor import visitor_of

FLASH_COOKIE = "xnode_flash"


def templates_dir() -> Path:
    """Where the templates are: inside the installed package, else the checkout."""
    spec = importlib.util.find_spec("xnode.templates")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "templates"


def _format_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")


def local_profile_links(view: PostView) -> Markup:
    """A post's HTML with links to mentioned remote people pointed at their local view.

    The stored HTML keeps each person's own URL (other servers read it, and it
    federates as is); readers here should land on ``/@user@host``, where they
    can follow, mute or message, rather than on a server where they are logged
    out. Mastodon and Pleroma link mentions by profile URL or by actor id.
    """
    html = view.post.content_html
    for account in view.mentions:
        if account.is_local:
            continue
        for target in {account.url, account.uri} - {None}:
            html = html.replace(f'href="{escape(target)}"', f'href="/@{escape(account.acct)}"')
    return Markup(html)  # sanitised (nh3) when it was stored


def icon(name: str) -> Markup:
    """An icon from the sprite (assets/build_icons.mjs): decorative, so every use keeps a
    text label beside it or for screen readers. A function, not a template macro: pages
    show dozens (every post's buttons), and a macro import per post card cost more than
    the rest of the card."""
    return Markup(
        '<svg class="icon" aria-hidden="true" focusable="false">'
        f'<use href="/static/icons.svg#{escape(name)}"></use></svg>'
    )


def _iso_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


class PostCards:
    """Post cards rendered once and reused while nothing they show has changed.

    A card is most of a page's rendering time, and the same posts appear on page
    after page, for one reader and for many. Its HTML depends only on the
    ``PostView`` (frozen dataclasses throughout, compared whole, so any change to
    the post, its author, counts, media or the viewer's likes makes a new entry),
    on whether an article shows in full, and on two facts about the viewer:
    signed in, and the post's author. The template sees only those (`signed_in`,
    `viewer_is_author`), so it cannot depend on anything else about the viewer.
    The viewer's CSRF token goes in after rendering, in place of a random
    per-process marker that no post can contain.
    """

    def __init__(self, env: jinja2.Environment, *, bound: int = 600) -> None:
        self.env = env
        self.bound = bound
        self._marker = f"csrf-{secrets.token_hex(16)}"
        # Oldest first out, not least recently used: refreshing an entry's place on
        # every hit compared the whole view a second time (a third of a hit's cost).
        self._cards: dict[tuple[Any, ...], str] = {}

    def __call__(self, context: Any, view: PostView, full_article: bool = False) -> Markup:
        """The card of ``view`` for the page whose template context is ``context``."""
        user = context.get("user")
        signed_in = user is not None
        viewer_is_author = signed_in and user.id == view.author.id
        key = (view, bool(full_article), signed_in, viewer_is_author)
        cache_key: tuple[Any, ...] | None = key
        try:
            html = self._cards.get(key)
        except TypeError:  # a view holding something unhashable: render it each time
            cache_key, html = None, None
        if html is None:
            html = self.env.get_template("_post_card.html").render(
                view=view, full_article=bool(full_article), signed_in=signed_in,
                viewer_is_author=viewer_is_author, csrf_token=self._marker,
            )  # fmt: skip
            if cache_key is not None:
                self._cards[cache_key] = html
                if len(self._cards) > self.bound:
                    del self._cards[next(iter(self._cards))]
        return Markup(html.replace(self._marker, str(escape(context.get("csrf_token") or ""))))


class Renderer:
    """Renders templates into responses, adding the page-wide context."""

    def __init__(
        self, secret_key: bytes, *, secure_cookies: bool, template_root: Path | None = None
    ) -> None:
        root = template_root or templates_dir()
        self.static_dir = root / "static"
        self.secret_key = secret_key
        self.secure_cookies = secure_cookies
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            autoescape=True,
            # Templates change only with the code: checking every file's mtime at each
            # get_template (and each include, per post) was a tenth of a page's time.
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["datetime"] = _format_time
        self.env.filters["isotime"] = _iso_time
        self.env.filters["post_html"] = local_profile_links
        self.env.globals["icon"] = icon
        self.post_cards = PostCards(self.env)
        self.env.globals["post_card"] = jinja2.pass_context(self.post_cards)

    def add_globals(self, **values: Any) -> None:
        """Values every template sees (node name, version)."""
        self.env.globals.update(values)

    def render_string(self, template: str, context: dict[str, Any]) -> str:
        """Render a template to a string."""
        return self.env.get_template(template).render(context)

    def render(
        self,
        request: web.Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
    ) -> web.Response:
        """Render ``template`` for ``request``, consuming pending flash messages."""
        visitor = visitor_of(request)
        flashes = visitor.flashes
        page = {
            "request": request,
            "user": visitor.user,
            "csrf_token": visitor.csrf_token,
            "flashes": flashes,
            "unread_notifications": visitor.unread_notifications,
            **(context or {}),
        }
        response = web.Response(
            text=self.render_string(template, page), status=status, content_type="text/html"
        )
        if flashes:
            response.del_cookie(FLASH_COOKIE, path="/")
        return response

    def read_flashes(self, request: web.Request) -> list[list[str]]:
        """Flash messages carried in the request's signed cookie."""
        payload = unsign_value(self.secret_key, "flash", request.cookies.get(FLASH_COOKIE))
        if not isinstance(payload, list):
            return []
        return [
            [str(item[0]), str(item[1])]
            for item in payload
            if isinstance(item, list) and len(item) == 2
        ][:5]


RENDERER = web.AppKey("renderer", Renderer)


def redirect(
    request: web.Request, location: str, message: str | None = None, level: str = "info"
) -> web.HTTPSeeOther:
    """A 303 redirect, optionally carrying a flash message to the next page."""
    response = web.HTTPSeeOther(location)
    if message:
        renderer = request.app[RENDERER]
        value = sign_value(renderer.secret_key, "flash", [[level, message]])
        response.set_cookie(
            FLASH_COOKIE,
            value,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=renderer.secure_cookies,
            max_age=60,
        )
    return response
