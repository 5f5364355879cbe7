"""Relationship buttons, followers/following lists and follow requests.

Also the helpers the profile, feed and notification pages share: finding a
live local account by username and reading pagination cursors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from federation.http import FetchError
from xnode.accounts.models import Account
from xnode.accounts.relationships import PAGE_SIZE, RelationshipService
from xnode.activitypub.appkeys import RESOLVER
from xnode.errors import XnodeError
from xnode.web.forms import current_user, require_user
from xnode.web.render import RENDERER, redirect
from xnode.web.state import ACCOUNTS, RELATIONSHIPS, SETTINGS

USERNAME = r"{username:[A-Za-z0-9_]{1,30}}"
# A local username or a remote ``user@host`` (as in /@bob@social.example).
ACCT = r"{username:[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)?}"
# A hashtag in a path: no dots, so /tags/NAME.rss is a feed, never the tag "NAME.rss".
TAG = r"{tag:[^/.]{1,200}}"
# SQLite integers are signed 64-bit; larger ids would raise inside the driver.
MAX_ID = 2**63 - 1

Action = Callable[[RelationshipService, int, Account], Awaitable[str]]


# --- shared helpers --------------------------------------------------------------


async def live_local_account(request: web.Request, username: str) -> Account:
    """The active local account ``username``.

    Raises:
        web.HTTPNotFound: no such account, suspended, or not (yet) an active user.
        web.HTTPGone: the account was deleted.
    """
    accounts = request.app[ACCOUNTS]
    missing = f"There is no account @{username} on this node."
    account = await accounts.local_account(username)
    if account is None or account.is_suspended:
        raise web.HTTPNotFound(text=missing)
    if account.is_deleted:
        raise web.HTTPGone(text=f"The account @{account.username} has been deleted.")
    user = await accounts.user(account.id)
    if user is None or user.state != "active":
        raise web.HTTPNotFound(text=missing)
    return account


async def live_account(request: web.Request, acct: str) -> Account:
    """A local account, or a remote one by ``user@host``.

    A remote account not known yet is looked up by WebFinger, for logged-in
    users only: an anonymous visitor must not be able to make us fetch from
    arbitrary servers.

    Raises:
        web.HTTPNotFound: unknown, unreachable, suspended or deleted account.
    """
    username, _, domain = acct.partition("@")
    settings = request.app[SETTINGS]
    if not domain or domain.lower() == settings.domain.lower():
        return await live_local_account(request, username)
    account = await request.app[ACCOUNTS].known_remote_account(username, domain)
    if account is None and current_user(request) is not None:
        try:
            account = await request.app[RESOLVER].actor_by_handle(acct)
        except (XnodeError, FetchError) as exc:
            raise web.HTTPNotFound(text=f"Could not find @{acct}: {exc}") from None
    if account is None or account.is_deleted or account.is_suspended:
        raise web.HTTPNotFound(text=f"There is no known account @{acct}.")
    return account


def id_param(value: str | None, name: str) -> int | None:
    """An id from the URL (None when absent).

    Raises:
        web.HTTPBadRequest: not a whole number in the id range.
    """
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
        raise web.HTTPBadRequest(text=f"'{name}' must be a post or page id (a whole number).")
    return int(value)


def cursor_param(request: web.Request) -> int | None:
    """The ``max_id`` query parameter: where an older page starts."""
    return id_param(request.query.get("max_id"), "max_id")


def profile_path(account: Account) -> str:
    """The local path of an account's profile (``/@user`` or ``/@user@host``)."""
    return f"/@{account.acct}"


# --- relationship buttons on profiles ----------------------------------------------


async def _follow(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    state = await rels.follow(viewer_id, account.id)
    if state == "accepted":
        return f"You now follow @{account.acct}."
    if account.locked:
        return f"Follow request sent. @{account.acct} reviews requests before accepting."
    # Unlocked but remote: following starts when their server's Accept comes back,
    # which is usually a moment; nobody has to review anything.
    return f"Your follow is on its way to @{account.acct}; their server confirms it in a moment."


async def _unfollow(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    before = await rels.relationship(viewer_id, account.id)
    await rels.unfollow(viewer_id, account.id)
    if before.requested:
        return f"Your follow request to @{account.acct} was withdrawn."
    return f"You no longer follow @{account.acct}."


async def _block(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    await rels.block(viewer_id, account.id)
    return f"You blocked @{account.acct}. Neither of you follows or sees the other now."


async def _unblock(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    await rels.unblock(viewer_id, account.id)
    return f"You unblocked @{account.acct}."


async def _mute(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    await rels.set_mute(viewer_id, account.id, True)
    return f"You muted @{account.acct}: their posts and notifications stay out of sight."


async def _unmute(rels: RelationshipService, viewer_id: int, account: Account) -> str:
    await rels.set_mute(viewer_id, account.id, False)
    return f"You unmuted @{account.acct}."


ACTIONS: dict[str, Action] = {
    "follow": _follow,
    "unfollow": _unfollow,
    "block": _block,
    "unblock": _unblock,
    "mute": _mute,
    "unmute": _unmute,
}


async def relationship_action(request: web.Request) -> web.Response:
    """Follow, unfollow, block, unblock, mute or unmute, then go back to the profile."""
    user = require_user(request)
    account = await live_account(request, request.match_info["username"])
    action = ACTIONS[request.match_info["action"]]
    try:
        message = await action(request.app[RELATIONSHIPS], user.id, account)
    except XnodeError as exc:
        raise redirect(request, profile_path(account), exc.message, "error") from None
    raise redirect(request, profile_path(account), message, "success")


# --- followers and following ---------------------------------------------------------


async def _network_page(request: web.Request, kind: str) -> web.Response:
    account = await live_local_account(request, request.match_info["username"])
    user = current_user(request)
    if account.hide_network and (user is None or user.id != account.id):
        raise web.HTTPForbidden(
            text=f"@{account.username} keeps who they follow and who follows them hidden."
        )
    max_id = cursor_param(request)
    rels = request.app[RELATIONSHIPS]
    if kind == "followers":
        rows = await rels.followers(account.id, max_id)
    else:
        rows = await rels.following(account.id, max_id)
    context = {
        "account": account,
        "kind": kind,
        "accounts": [found for _, found in rows],
        "next_max_id": rows[-1][0] if len(rows) == PAGE_SIZE else None,
        "paged": max_id is not None,
    }
    return request.app[RENDERER].render(request, "account_list.html", context)


async def followers_page(request: web.Request) -> web.Response:
    """Who follows an account, newest first."""
    return await _network_page(request, "followers")


async def following_page(request: web.Request) -> web.Response:
    """Whom an account follows, newest first."""
    return await _network_page(request, "following")


# --- follow requests ---------------------------------------------------------------


async def follow_requests_page(request: web.Request) -> web.Response:
    """Pending follow requests to the logged-in user, with Approve and Reject."""
    user = require_user(request)
    max_id = cursor_param(request)
    rows = await request.app[RELATIONSHIPS].followers(user.id, max_id, state="pending")
    context = {
        "requests": [found for _, found in rows],
        "count": await request.app[RELATIONSHIPS].pending_request_count(user.id),
        "next_max_id": rows[-1][0] if len(rows) == PAGE_SIZE else None,
        "paged": max_id is not None,
    }
    return request.app[RENDERER].render(request, "follow_requests.html", context)


async def follow_request_decision(request: web.Request) -> web.Response:
    """Approve or reject one follow request."""
    user = require_user(request)
    follower_id = id_param(request.match_info["account_id"], "account_id")
    if follower_id is None:
        raise web.HTTPNotFound(text="There is no such follow request.")
    rels = request.app[RELATIONSHIPS]
    approve = request.match_info["decision"] == "approve"
    try:
        if approve:
            await rels.accept_request(user.id, follower_id)
        else:
            await rels.reject_request(user.id, follower_id)
    except XnodeError as exc:
        raise redirect(request, "/follow-requests", exc.message, "error") from None
    message = "Request approved: they follow you now." if approve else "Request rejected."
    raise redirect(request, "/follow-requests", message, "success")


def add_routes(app: web.Application) -> None:
    """Register relationship actions, network lists and follow requests."""
    actions = "|".join(ACTIONS)
    app.router.add_post(f"/@{ACCT}/{{action:{actions}}}", relationship_action)
    app.router.add_get(f"/@{USERNAME}/followers", followers_page, name="followers")
    app.router.add_get(f"/@{USERNAME}/following", following_page, name="following")
    app.router.add_get("/follow-requests", follow_requests_page, name="follow_requests")
    app.router.add_post(
        r"/follow-requests/{account_id:\d{1,19}}/{decision:approve|reject}",
        follow_request_decision,
    )
