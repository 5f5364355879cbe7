"""Small helpers shared by the HTML handlers: form fields, the current user."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from xnode.accounts.models import User
from xnode.errors import InvalidInput
from xnode.web.state import SETTINGS
from xnode.web.visitor import visitor_of

FormData = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def read_form(request: web.Request) -> FormData:
    """The request's form fields (parsed once, by the CSRF check, and cached).

    Raises:
        HTTPBadRequest: the form is not UTF-8 text (a browser never sends that;
            a hand-made request may, and it must not end in a 500).
    """
    try:
        form = await request.post()
    except ValueError:  # UnicodeDecodeError among them
        raise web.HTTPBadRequest(text="The form could not be read: it is not UTF-8 text.") from None
    for value in form.values():
        if isinstance(value, str) and not is_text(value):
            raise web.HTTPBadRequest(text="The form holds text that is not Unicode.")
    return form


def is_text(value: str) -> bool:
    """Whether a string is Unicode text (no lone surrogates, which no database stores)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_field(form: FormData, name: str, *, max_length: int = 10_000) -> str:
    """A text field's value ('' when absent).

    Raises:
        InvalidInput: the value is a file or longer than ``max_length``.
    """
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"The field '{name}' must be text.", field=name)
    if len(value) > max_length:
        raise InvalidInput(
            f"The field '{name}' is too long (at most {max_length} characters).", field=name
        )
    return value


def checkbox(form: FormData, name: str) -> bool:
    """Whether a checkbox was ticked."""
    return form.get(name) not in (None, "", "0", "off", "false")


def file_field(form: FormData, name: str) -> bytes | None:
    """The bytes of an uploaded file, or None if no file was chosen."""
    value = form.get(name)
    if not isinstance(value, web.FileField) or not value.filename:
        return None
    return value.file.read()


def client_ip(request: web.Request) -> str:
    """The client's address, for rate limits.

    Behind a reverse proxy every request comes from the proxy, so the address
    the proxy appended to ``X-Forwarded-For`` (the last entry) is used; the
    entries before it are whatever the client claimed and are not trusted.
    """
    if request.app[SETTINGS].behind_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.remote or ""


def current_user(request: web.Request) -> User | None:
    """The logged-in user, if any."""
    return visitor_of(request).user


def require_user(request: web.Request) -> User:
    """The logged-in user, or a redirect to the login page.

    Raises:
        web.HTTPSeeOther: nobody is logged in.
    """
    user = current_user(request)
    if user is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    return user


def require_admin(request: web.Request) -> User:
    """The logged-in admin.

    Raises:
        web.HTTPSeeOther: nobody is logged in.
        web.HTTPForbidden: the user is not an admin.
    """
    user = require_user(request)
    if not user.is_admin:
        raise web.HTTPForbidden(text="Only administrators may see this page.")
    return user


def safe_next(target: str | None) -> str:
    """A same-site path to go to after login, never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
