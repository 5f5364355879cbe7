"""Settings pages: profile editing, password change and account deletion."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from xnode.accounts.models import Account, User
from xnode.accounts.profile import MAX_BIO, MAX_DISPLAY_NAME, MAX_FIELDS, ProfileEdit
from xnode.accounts.sessions import hash_token
from xnode.errors import InvalidInput, Unauthorized, XnodeError
from xnode.ratelimit import Limit
from xnode.web.forms import (
    FormData,
    checkbox,
    file_field,
    read_form,
    require_user,
    text_field,
)
from xnode.web.middleware import clear_session_cookie
from xnode.web.render import RENDERER, redirect
from xnode.web.state import ACCOUNTS, CALLS, DMS, LIMITER, PROFILES, SETTINGS
from xnode.web.visitor import visitor_of

# Wrong current passwords count per account, so a borrowed or stolen session
# cannot be used to guess the password (and then lock its owner out).
PASSWORD_CHECKS_PER_ACCOUNT = Limit(count=10, window_s=900)
TOO_MANY_PASSWORD_CHECKS = "Too many wrong passwords. Wait a few minutes and try again."

# Two digits bound how many rows a tampered form can make us read.
_FIELD_KEY = re.compile(r"^field_(?:name|value)_(\d{1,2})$")
_MAX_PASSWORD = 1024


# --- profile -----------------------------------------------------------------


def _stored_values(account: Account) -> dict[str, Any]:
    """The profile form filled in from what is stored."""
    rows = [(f.name, f.value) for f in account.fields]
    return {
        "display_name": account.display_name,
        "bio": account.bio_source,
        "fields": rows + [("", "")] * (MAX_FIELDS - len(rows)),
        "locked": account.locked,
        "discoverable": account.discoverable,
        "hide_network": account.hide_network,
        "remove_avatar": False,
        "remove_header": False,
    }


def _submitted_values(form: FormData) -> dict[str, Any]:
    """The profile form filled in from a refused submission, so nothing typed is lost."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    rows = [(text(f"field_name_{i}"), text(f"field_value_{i}")) for i in _field_indices(form)]
    rows += [("", "")] * (MAX_FIELDS - len(rows))
    return {
        "display_name": text("display_name"),
        "bio": text("bio"),
        "fields": rows,
        "locked": checkbox(form, "locked"),
        "discoverable": checkbox(form, "discoverable"),
        "hide_network": checkbox(form, "hide_network"),
        "remove_avatar": checkbox(form, "remove_avatar"),
        "remove_header": checkbox(form, "remove_header"),
    }


def _field_indices(form: FormData) -> list[int]:
    """Row numbers of the profile fields present in the form, in order."""
    return sorted({int(m[1]) for key in form if (m := _FIELD_KEY.match(key))})


def _profile_edit(form: FormData) -> ProfileEdit:
    """Read the profile form into an edit for the service.

    Raises:
        InvalidInput: a text field holds a file or is absurdly long.
    """
    fields = [
        (text_field(form, f"field_name_{i}"), text_field(form, f"field_value_{i}"))
        for i in _field_indices(form)
    ]
    return ProfileEdit(
        display_name=text_field(form, "display_name"),
        bio=text_field(form, "bio"),
        fields=fields,
        locked=checkbox(form, "locked"),
        discoverable=checkbox(form, "discoverable"),
        hide_network=checkbox(form, "hide_network"),
        avatar=file_field(form, "avatar"),
        header=file_field(form, "header"),
        remove_avatar=checkbox(form, "remove_avatar"),
        remove_header=checkbox(form, "remove_header"),
    )


def _render_profile_form(
    request: web.Request,
    account: Account,
    values: dict[str, Any],
    *,
    error: XnodeError | None = None,
) -> web.Response:
    context = {
        "account": account,
        "values": values,
        "error": error.message if error else None,
        "error_field": error.field if error else None,
        "max_display_name": MAX_DISPLAY_NAME,
        "max_bio": MAX_BIO,
        "max_upload_mb": request.app[SETTINGS].max_upload_mb,
        "settings_section": "profile",
    }
    return request.app[RENDERER].render(
        request, "settings_profile.html", context, status=error.status if error else 200
    )


async def profile_settings_page(request: web.Request) -> web.Response:
    """The profile form, filled in with the current profile."""
    user = require_user(request)
    return _render_profile_form(request, user.account, _stored_values(user.account))


async def profile_settings_submit(request: web.Request) -> web.Response:
    """Save the profile form (all of it, or nothing if any part is refused)."""
    user = require_user(request)
    form = await read_form(request)
    try:
        await request.app[PROFILES].edit_profile(user.id, _profile_edit(form))
    except XnodeError as exc:
        return _render_profile_form(request, user.account, _submitted_values(form), error=exc)
    raise redirect(request, "/settings/profile", "Your profile has been saved.", "success")


# --- account: password and deletion ----------------------------------------------


async def _render_account(
    request: web.Request,
    user: User,
    *,
    password_error: XnodeError | None = None,
    delete_error: XnodeError | None = None,
) -> web.Response:
    error = password_error or delete_error
    password_field = password_error.field if password_error else None
    context = {
        "must_change": user.must_change_password,
        "password_error": password_error.message if password_error else None,
        # The password policy names its field "password"; here it is the new one.
        "password_error_field": "new_password" if password_field == "password" else password_field,
        "delete_error": delete_error.message if delete_error else None,
        "delete_error_field": delete_error.field if delete_error else None,
        "settings_section": "account",
        "dm_policy": await request.app[DMS].policy(user.id),
        "call_policy": await request.app[CALLS].policy(user.id),
    }
    return request.app[RENDERER].render(
        request, "settings_account.html", context, status=error.status if error else 200
    )


async def _check_password_attempts(request: web.Request, user: User) -> str:
    """The rate-limit key for this user's password checks, refusing when over the limit.

    Raises:
        RateLimited: too many wrong passwords lately.
    """
    key = f"password-check:{user.id}"
    await request.app[LIMITER].check(key, PASSWORD_CHECKS_PER_ACCOUNT, TOO_MANY_PASSWORD_CHECKS)
    return key


async def account_settings_page(request: web.Request) -> web.Response:
    """The password form and the account deletion form."""
    return await _render_account(request, require_user(request))


async def password_submit(request: web.Request) -> web.Response:
    """Change the password, keeping this session and ending every other one."""
    user = require_user(request)
    form = await read_form(request)
    limit_key = await _check_password_attempts(request, user)
    try:
        current = text_field(form, "current_password", max_length=_MAX_PASSWORD)
        new = text_field(form, "new_password", max_length=_MAX_PASSWORD)
        if new != text_field(form, "new_password_confirm", max_length=_MAX_PASSWORD):
            raise InvalidInput("The two new passwords do not match.", field="new_password_confirm")
        await request.app[ACCOUNTS].change_password(
            user.id, current, new, keep_session_hash=hash_token(visitor_of(request).session_token)
        )
    except XnodeError as exc:
        if isinstance(exc, Unauthorized):
            await request.app[LIMITER].hit(limit_key, PASSWORD_CHECKS_PER_ACCOUNT)
        return await _render_account(request, user, password_error=exc)
    await request.app[LIMITER].reset(limit_key)
    if user.must_change_password:
        raise redirect(request, "/", "Your new password is set. Welcome!", "success")
    raise redirect(
        request,
        "/settings/account",
        "Your password has been changed. Your other sessions have been logged out.",
        "success",
    )


async def delete_submit(request: web.Request) -> web.Response:
    """Delete one's own account after confirming the password, and log out."""
    user = require_user(request)
    form = await read_form(request)
    limit_key = await _check_password_attempts(request, user)
    try:
        password = text_field(form, "password", max_length=_MAX_PASSWORD)
        await request.app[ACCOUNTS].delete_own_account(user.id, password)
    except XnodeError as exc:
        if isinstance(exc, Unauthorized):
            await request.app[LIMITER].hit(limit_key, PASSWORD_CHECKS_PER_ACCOUNT)
        return await _render_account(request, user, delete_error=exc)
    response = redirect(request, "/", "Your account has been deleted. Goodbye.")
    clear_session_cookie(response)
    raise response


def add_routes(app: web.Application) -> None:
    """Register the settings routes."""
    app.router.add_get("/settings/profile", profile_settings_page, name="settings_profile")
    app.router.add_post("/settings/profile", profile_settings_submit)
    app.router.add_get("/settings/account", account_settings_page, name="settings_account")
    app.router.add_post("/settings/account/password", password_submit)
    app.router.add_post("/settings/account/delete", delete_submit)
