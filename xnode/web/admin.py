"""Admin pages: users, invites, registration mode (see add_routes).

Moderation buttons (approve, suspend, delete...) answer with a redirect back
to the user list and a flash message, an error flash when the service refuses.
Pages with real form fields (invites, settings) re-render with a 422 instead,
so the admin sees the message next to what they typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from xnode.accounts.models import Invite, User
from xnode.api.auth import OAUTH
from xnode.errors import Conflict, InvalidInput, NotFound, XnodeError
from xnode.settings import REGISTRATION_MODES
from xnode.web.forms import checkbox, read_form, require_admin, text_field
from xnode.web.render import RENDERER, redirect
from xnode.web.state import ACCOUNTS, CLOCK

USERS_PATH = "/admin/users"
INVITES_PATH = "/admin/invites"
SETTINGS_PATH = "/admin/settings"
OAUTH_SETTINGS_PATH = "/admin/settings/oauth"

USER_FILTERS = ("pending", "active")
DAY_S = 24 * 3600
INVITE_EXPIRY_DAYS = (1, 7, 30)

MODE_HELP = {
    "open": "Anyone can create an account and use it at once.",
    "approval": "Anyone can ask for an account; an administrator approves each one.",
    "invite": "Only people with an invite code (see Invites) can sign up.",
    "closed": "Nobody can sign up; administrators create accounts from the command line.",
}

UserAction = Callable[[web.Request, User, User], Awaitable[str]]


def _render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    return request.app[RENDERER].render(request, template, context, status=status)


async def admin_index(request: web.Request) -> web.Response:
    """Send /admin to the user list."""
    require_admin(request)
    raise web.HTTPSeeOther(USERS_PATH)


# --- users -------------------------------------------------------------------


async def users_page(request: web.Request) -> web.Response:
    """Local users, pending sign-ups first, with moderation buttons."""
    admin = require_admin(request)
    state = request.query.get("state", "")
    if state and state not in USER_FILTERS:
        raise InvalidInput(f"Unknown filter; use one of {', '.join(USER_FILTERS)}.")
    users = await request.app[ACCOUNTS].list_users(state or None)
    return _render(
        request,
        "admin_users.html",
        {
            "admin_section": "users",
            "me": admin,
            "state_filter": state,
            "pending": [u for u in users if u.state == "pending"],
            "others": [u for u in users if u.state != "pending"],
        },
    )


def _user_action(action: UserAction) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a moderation action: admin check, target lookup, redirect with a flash."""

    async def handler(request: web.Request) -> web.Response:
        admin = require_admin(request)
        # Outside the try below: an unknown id is a 404, not a flash.
        target = await request.app[ACCOUNTS].require_user(int(request.match_info["id"]))
        try:
            message = await action(request, admin, target)
        except XnodeError as exc:
            raise redirect(request, USERS_PATH, exc.message, "error") from None
        raise redirect(request, USERS_PATH, message, "success")

    handler.__doc__ = action.__doc__
    return handler


async def _approve(request: web.Request, admin: User, target: User) -> str:
    """Approve a pending sign-up."""
    await request.app[ACCOUNTS].approve(target.id)
    return f"Approved @{target.username}; they can log in now."


async def _reject(request: web.Request, admin: User, target: User) -> str:
    """Reject a pending sign-up, freeing the username."""
    await request.app[ACCOUNTS].reject(target.id)
    return f"Rejected the sign-up of @{target.username}."


async def _suspend(request: web.Request, admin: User, target: User) -> str:
    """Suspend a user and end their sessions."""
    if target.id == admin.id:
        raise Conflict("You cannot suspend your own account.")
    await request.app[ACCOUNTS].set_suspended(target.id, True)
    return f"Suspended @{target.username} and logged them out everywhere."


async def _unsuspend(request: web.Request, admin: User, target: User) -> str:
    """Lift a suspension."""
    await request.app[ACCOUNTS].set_suspended(target.id, False)
    return f"@{target.username} is no longer suspended."


async def _delete(request: web.Request, admin: User, target: User) -> str:
    """Delete a user once the confirmation box is ticked."""
    if target.id == admin.id:
        raise Conflict(
            "You cannot delete your own account here; use your account settings instead."
        )
    if not checkbox(await read_form(request), "confirm"):
        raise InvalidInput(
            f"Tick the confirmation box to delete @{target.username}. Nothing was deleted."
        )
    await request.app[ACCOUNTS].delete_user(target.id)
    return f"Deleted @{target.username}."


# --- invites -----------------------------------------------------------------


def invite_status(invite: Invite, now: float) -> str:
    """A short label for an invite's state at time ``now``."""
    if invite.usable_at(now):
        return "live"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and now >= invite.expires_at:
        return "expired"
    return "used up"


async def _invites_page(
    request: web.Request,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    now = request.app[CLOCK].now()
    invites = await request.app[ACCOUNTS].list_invites()
    return _render(
        request,
        "admin_invites.html",
        {
            "admin_section": "invites",
            "invites": [(invite, invite_status(invite, now)) for invite in invites],
            "expiry_days": INVITE_EXPIRY_DAYS,
            "error": error,
            "form": form or {"expires_days": "7", "max_uses": ""},
        },
        status=status,
    )


async def invites_page(request: web.Request) -> web.Response:
    """Invite codes with their status, and a form to make one."""
    require_admin(request)
    return await _invites_page(request)


def _parse_invite_form(expires: str, max_uses: str) -> tuple[float | None, int | None]:
    """Validate the invite form into (expires_in_s, max_uses); blank means unlimited."""
    expires_in_s: float | None = None
    if expires:
        if expires not in {str(days) for days in INVITE_EXPIRY_DAYS}:
            raise InvalidInput("Choose an expiry from the list.", field="expires_days")
        expires_in_s = int(expires) * DAY_S
    uses: int | None = None
    if max_uses:
        try:
            uses = int(max_uses)
        except ValueError:
            raise InvalidInput(
                "Maximum uses must be a whole number, or blank for unlimited.",
                field="max_uses",
            ) from None
    return expires_in_s, uses


async def invite_create(request: web.Request) -> web.Response:
    """Create an invite code."""
    admin = require_admin(request)
    form = await read_form(request)
    values = {
        "expires_days": text_field(form, "expires_days", max_length=10).strip(),
        "max_uses": text_field(form, "max_uses", max_length=20).strip(),
    }
    try:
        expires_in_s, max_uses = _parse_invite_form(values["expires_days"], values["max_uses"])
        invite = await request.app[ACCOUNTS].create_invite(
            admin.id, expires_in_s=expires_in_s, max_uses=max_uses
        )
    except XnodeError as exc:
        return await _invites_page(request, error=exc.message, form=values, status=exc.status)
    raise redirect(request, INVITES_PATH, f"Created invite {invite.code}.", "success")


async def invite_revoke(request: web.Request) -> web.Response:
    """Revoke an invite code."""
    require_admin(request)
    code = request.match_info["code"]
    accounts = request.app[ACCOUNTS]
    invite = next((i for i in await accounts.list_invites() if i.code == code), None)
    if invite is None:
        raise NotFound("No invite with that code.")
    if invite.revoked_at is not None:
        raise redirect(request, INVITES_PATH, f"Invite {code} was already revoked.", "error")
    await accounts.revoke_invite(code)
    raise redirect(request, INVITES_PATH, f"Revoked invite {code}.", "success")


# --- node settings -----------------------------------------------------------


async def _settings_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    mode = await request.app[ACCOUNTS].registration_mode()
    return _render(
        request,
        "admin_settings.html",
        {
            "admin_section": "settings",
            "mode": mode,
            "modes": [(name, MODE_HELP[name]) for name in REGISTRATION_MODES],
            "password_grant": await request.app[OAUTH].password_grant_allowed(),
            "error": error,
        },
        status=status,
    )


async def settings_page(request: web.Request) -> web.Response:
    """The registration mode form."""
    require_admin(request)
    return await _settings_page(request)


async def settings_submit(request: web.Request) -> web.Response:
    """Change the registration mode."""
    require_admin(request)
    form = await read_form(request)
    mode = text_field(form, "registration", max_length=20).strip()
    try:
        await request.app[ACCOUNTS].set_registration_mode(mode)
    except XnodeError as exc:
        return await _settings_page(request, error=exc.message, status=exc.status)
    raise redirect(request, SETTINGS_PATH, f"Registration is now: {mode}.", "success")


async def oauth_settings_submit(request: web.Request) -> web.Response:
    """Allow or forbid apps to sign people in with their password (the OAuth password
    grant), off by default as in Mastodon 4.4: an app that sees the password can do
    anything with the account, where the consent page lets people choose what to allow."""
    require_admin(request)
    allowed = checkbox(await read_form(request), "password_grant")
    await request.app[OAUTH].set_password_grant(allowed)
    message = (
        "Apps may now sign people in with their password."
        if allowed
        else "Apps can no longer sign people in with their password."
    )
    raise redirect(request, SETTINGS_PATH, message, "success")


def add_routes(app: web.Application) -> None:
    """Register the admin routes."""
    app.router.add_get("/admin", admin_index, name="admin")
    app.router.add_get(USERS_PATH, users_page, name="admin-users")
    user_actions: dict[str, UserAction] = {
        "approve": _approve,
        "reject": _reject,
        "suspend": _suspend,
        "unsuspend": _unsuspend,
        "delete": _delete,
    }
    for name, action in user_actions.items():
        # At most 18 digits so the id always fits SQLite's 64-bit integers.
        app.router.add_post(rf"{USERS_PATH}/{{id:\d{{1,18}}}}/{name}", _user_action(action))
    app.router.add_get(INVITES_PATH, invites_page, name="admin-invites")
    app.router.add_post(INVITES_PATH, invite_create)
    app.router.add_post(rf"{INVITES_PATH}/{{code:[A-Za-z0-9_-]{{1,100}}}}/revoke", invite_revoke)
    app.router.add_get(SETTINGS_PATH, settings_page, name="admin-settings")
    app.router.add_post(SETTINGS_PATH, settings_submit)
    app.router.add_post(OAUTH_SETTINGS_PATH, oauth_settings_submit)
