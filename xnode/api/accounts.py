"""Client API: accounts, relationships, follow requests, blocks and mutes.

``/api/v1/accounts/…`` as Mastodon documents it: one's own account (verify and update
credentials), other accounts by id or handle, their statuses, followers and following,
and the relationship actions (follow, unfollow, remove from followers, block, mute),
plus the lists that go with them (follow requests, blocks, mutes). What the node has no
notion of (featured tags, endorsements, per-user domain blocks) answers an empty list.

An account that is unknown, suspended, deleted or not yet approved, and an id that is
not one of ours, are all ``404 {"error": "Record not found"}``, as on Mastodon.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from xnode.accounts.models import Account, User
from xnode.accounts.profile import ProfilePatch
from xnode.accounts.relationships import Relationship, RelationshipService
from xnode.activitypub.backfill import BACKFILL
from xnode.api import entities, present
from xnode.api.auth import optional_viewer, require_token, require_user
from xnode.api.pagination import RECORD_NOT_FOUND, page_request, paginated, path_id
from xnode.api.params import Params, read_params
from xnode.errors import InvalidInput, NotFound
from xnode.oauth import scopes as scope_rules
from xnode.posts.content import normalize_tag
from xnode.web.state import PROFILES, RELATIONSHIPS, SETTINGS, TIMELINES

MAX_MUTE_SECONDS = 10 * 365 * 24 * 3600  # a decade; 0 (the default) mutes for good
MAX_IDS = 100  # ids in one id[] query (relationships, familiar followers, accounts)


# --- shared helpers ------------------------------------------------------------------



async def _live_account(request: web.Request, account_id: int) -> Account:
    try:
        return await request.app[RELATIONSHIPS].live_account(account_id)
    except NotFound:
        raise NotFound(RECORD_NOT_FOUND) from None


async def _path_account(request: web.Request) -> Account:
    return await _live_account(request, path_id(request))


async def _refreshed(request: web.Request, account: Account, viewer: User | None) -> Account:
    """A remote account as its server describes it now (counts, recent posts), as the
    profile page does: for signed-in callers only, bounded to a moment."""
    backfill = request.app.get(BACKFILL)
    if account.is_local or viewer is None or backfill is None:
        return account
    await backfill.for_profile(account)
    return await _live_account(request, account.id)


def relationship_entity(account_id: int, rel: Relationship) -> dict[str, object]:
    """A Relationship entity.

    The node has no per-follow settings: every follow shows the account's boosts
    (``showing_reblogs``), none notifies of new posts (``notifying``) or filters by
    language (``languages`` null, as Mastodon sends without a filter). A mute always
    hides notifications too. There are no personal notes, endorsements or per-user
    domain blocks, so those are empty and false.
    """
    return {
        "id": str(account_id),
        "following": rel.following,
        "showing_reblogs": rel.following or rel.requested,
        "notifying": False,
        "languages": None,
        "followed_by": rel.followed_by,
        "blocking": rel.blocking,
        "blocked_by": rel.blocked_by,
        "muting": rel.muting,
        "muting_notifications": rel.muting,
        "requested": rel.requested,
        "requested_by": rel.has_pending_request_from,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


async def _relationship_response(request: web.Request, user: User, account_id: int) -> web.Response:
    rel = await request.app[RELATIONSHIPS].relationship(user.id, account_id)
    return web.json_response(relationship_entity(account_id, rel))


def _unique(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(ids))


# --- one's own account ---------------------------------------------------------------


def _credentials_user(request: web.Request) -> User:
    """The caller: ``profile`` (Mastodon 4.3's sign-in-only scope) or ``read:accounts``."""
    caller = require_token(request)
    if scope_rules.grants(caller.token.scopes, "profile"):
        return require_user(request, "profile")
    return require_user(request, "read:accounts")


async def _credential_entity(request: web.Request, account: Account) -> dict[str, object]:
    app = request.app
    ctx = await present.context_for(app, accounts=[account])
    requests = await app[RELATIONSHIPS].pending_request_count(account.id)
    return entities.credential_account(account, ctx, follow_requests=requests)


async def verify_credentials(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/verify_credentials``: the caller's CredentialAccount."""
    # The token's person, read (and found active, so live) by the API middleware.
    user = _credentials_user(request)
    return web.json_response(await _credential_entity(request, user.account))


def _fields(params: Params) -> list[tuple[str, str]] | None:
    """``fields_attributes`` as (name, value) pairs in the order sent: a hash keyed by
    index (forms: ``fields_attributes[0][name]``), or a JSON list of objects; None when
    absent (the fields stay as they are)."""
    raw = params.raw("fields_attributes")
    if isinstance(raw, list):
        items = raw
    else:
        nested = params.mapping("fields_attributes")
        if nested is None:
            return None
        items = list(nested.values())
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput("Each of fields_attributes must have a name and a value.",
                               field="fields_attributes")  # fmt: skip
        field = Params(item, {})
        pairs.append((field.text("name", max_length=10_000),
                      field.text("value", max_length=10_000)))  # fmt: skip
    return pairs


def _check_source(params: Params) -> None:
    """``source[privacy]``, ``source[sensitive]``, ``source[language]``: the node keeps
    no such defaults per person, so only what it does anyway is accepted (public, not
    sensitive, no language); anything else is refused rather than silently dropped."""
    source = params.mapping("source")
    if source is None:
        return
    values = Params(source, {})
    privacy = values.text("privacy", "public", max_length=20)
    if privacy != "public":
        raise InvalidInput("A default post privacy other than public is not supported here;"
                           " choose the visibility of each post.", field="source[privacy]")
    if values.boolean("sensitive", False):
        raise InvalidInput("Marking every post sensitive by default is not supported here.",
                           field="source[sensitive]")  # fmt: skip
    if values.text("language", "", max_length=20):
        raise InvalidInput("A default post language is not supported here.",
                           field="source[language]")  # fmt: skip


def _optional_boolean(params: Params, name: str) -> bool | None:
    return params.boolean(name) if params.has(name) else None


async def update_credentials(request: web.Request) -> web.Response:
    """``PATCH /api/v1/accounts/update_credentials``: change what was sent, keep the rest.

    ``hide_collections`` is the node's "hide my network"; ``bot`` marks the account as
    automated. ``indexable`` and ``attribution_domains`` (settings the node does not
    have) are ignored like any parameter Mastodon does not know.
    """
    user = require_user(request, "write:accounts")
    params = await read_params(request)
    _check_source(params)
    patch = ProfilePatch(
        display_name=params.optional_text("display_name", max_length=10_000),
        bio=params.optional_text("note", max_length=100_000),
        fields=_fields(params),
        locked=_optional_boolean(params, "locked"),
        discoverable=_optional_boolean(params, "discoverable"),
        hide_network=_optional_boolean(params, "hide_collections"),
        bot=_optional_boolean(params, "bot"),
        avatar=params.file("avatar"),
        header=params.file("header"),
    )
    account = await request.app[PROFILES].patch_profile(user.id, patch)
    return web.json_response(await _credential_entity(request, account))


# --- other accounts ------------------------------------------------------------------


async def get_account(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id``."""
    viewer = optional_viewer(request, "read:accounts")
    account = await _refreshed(request, await _path_account(request), viewer)
    return web.json_response(await present.account(request.app, account))


async def get_accounts(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts?id[]=``: the live accounts among those ids, in that order."""
    optional_viewer(request, "read:accounts")
    params = await read_params(request)
    found = []
    for account_id in _unique(params.ids("id", max_items=MAX_IDS)):
        with contextlib.suppress(NotFound):
            found.append(await request.app[RELATIONSHIPS].live_account(account_id))
    return web.json_response(await present.accounts(request.app, found))


async def lookup(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/lookup?acct=``: a local username or a known ``user@host``
    (no WebFinger: search with ``resolve`` fetches unknown accounts)."""
    optional_viewer(request, "read:accounts")
    params = await read_params(request)
    acct = params.text("acct", max_length=400).strip().removeprefix("@")
    username, _, domain = acct.partition("@")
    if not username:
        raise InvalidInput("acct is required.", field="acct")
    own = request.app[SETTINGS].domain.lower()
    remote = domain.lower() if domain and domain.lower() != own else None
    try:
        account = await request.app[RELATIONSHIPS].live_account_by_handle(username, remote)
    except NotFound:
        raise NotFound(RECORD_NOT_FOUND) from None
    return web.json_response(await present.account(request.app, account))


async def account_statuses(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id/statuses``: what the profile page shows this caller
    (the same query and visibility rule), never direct posts, with Mastodon's filters."""
    viewer = optional_viewer(request, "read:statuses")
    account = await _path_account(request)
    params = await read_params(request)
    page = page_request(request, default=20, maximum=40)
    viewer_id = viewer.id if viewer is not None else None
    timelines = request.app[TIMELINES]
    if params.boolean("pinned"):
        # A handful at most (pins are capped), so one page without links.
        views = [
            v for v in await timelines.pinned(viewer_id, account.id)
            if (page.max_id is None or v.post.id < page.max_id)
            and (page.min_id is None or v.post.id > page.min_id)
            and (page.since_id is None or v.post.id > page.since_id)
        ]
        return web.json_response(await present.statuses(request.app, views[: page.limit]))
    tagged = params.optional_text("tagged", max_length=200)
    tag = normalize_tag(tagged) if tagged is not None else None
    if tagged is not None and not tag:
        return web.json_response([])  # "#" alone is no hashtag: nothing carries it
    if page.max_id is None and page.min_id is None:
        await _refreshed(request, account, viewer)
    found = await timelines.profile(
        viewer_id, account.id, page.cursor,
        exclude_replies=params.boolean("exclude_replies"),
        exclude_reblogs=params.boolean("exclude_reblogs"),
        only_media=params.boolean("only_media"),
        exclude_sensitive=params.boolean("exclude_sensitive"),
        tagged=tag,
    )  # fmt: skip
    body = await present.statuses(request.app, found.items)
    return paginated(request, page, body, found.positions)


async def _network(request: web.Request, kind: str) -> web.Response:
    viewer = optional_viewer(request, "read:accounts")
    account = await _path_account(request)
    page = page_request(request, default=40, maximum=80)
    if account.hide_network and (viewer is None or viewer.id != account.id):
        # Mastodon answers an empty list for a hidden network, not an error.
        return web.json_response([])
    rels = request.app[RELATIONSHIPS]
    listing = rels.followers if kind == "followers" else rels.following
    rows = await listing(account.id, page.max_id, limit=page.limit, min_id=page.min_id,
                         since_id=page.since_id)  # fmt: skip
    body = await present.accounts(request.app, [found for _, found in rows])
    return paginated(request, page, body, [follow_id for follow_id, _ in rows])


async def followers(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id/followers``: newest follow first, paged by Link."""
    return await _network(request, "followers")


async def following(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id/following``: newest follow first, paged by Link."""
    return await _network(request, "following")


async def account_featured_tags(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id/featured_tags``: the node has no featured tags."""
    optional_viewer(request, "read:accounts")
    await _path_account(request)
    return web.json_response([])


async def account_lists(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/:id/lists``: the node has no lists, so none holds anyone."""
    require_user(request, "read:lists")
    await _path_account(request)
    return web.json_response([])


# --- relationships -------------------------------------------------------------------


async def follow(request: web.Request) -> web.Response:
    """``POST /api/v1/accounts/:id/follow``: follow, or ask to (a locked or remote
    account: ``requested`` until accepted).

    ``reblogs``, ``notify`` and ``languages[]`` are read (bad values are refused) but the
    node has no per-follow settings: boosts always show, new posts never notify, every
    language comes. The Relationship answered says so (``showing_reblogs``,
    ``notifying``, ``languages``).
    """
    user = require_user(request, "write:follows")
    account = await _path_account(request)
    params = await read_params(request)
    params.boolean("reblogs", True)
    params.boolean("notify", False)
    params.strings("languages", max_items=100, max_length=20)
    await request.app[RELATIONSHIPS].follow(user.id, account.id)
    return await _relationship_response(request, user, account.id)


def _relationship_action(
    scope: str, act: Callable[[RelationshipService, int, int], Awaitable[object]]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A ``POST /api/v1/accounts/:id/<action>`` handler that takes no parameters: ``act``
    with the caller's and the account's ids, then the Relationship as it now is."""

    async def handler(request: web.Request) -> web.Response:
        user = require_user(request, scope)
        account = await _path_account(request)
        await act(request.app[RELATIONSHIPS], user.id, account.id)
        return await _relationship_response(request, user, account.id)

    return handler


# ``unfollow``: stop following, or withdraw a request; ``block``: follows both ways end.
unfollow = _relationship_action("write:follows", RelationshipService.unfollow)
remove_from_followers = _relationship_action("write:follows", RelationshipService.remove_follower)
block = _relationship_action("write:blocks", RelationshipService.block)
unblock = _relationship_action("write:blocks", RelationshipService.unblock)
unmute = _relationship_action(
    "write:mutes", lambda rels, user_id, account_id: rels.set_mute(user_id, account_id, False)
)


async def mute(request: web.Request) -> web.Response:
    """``POST /api/v1/accounts/:id/mute``: ``duration`` in seconds (0: until unmuted).

    ``notifications=false`` (mute posts but not notifications) is not something the node
    can do: a mute here always hides both, and the Relationship answered says so
    (``muting_notifications``).
    """
    user = require_user(request, "write:mutes")
    account = await _path_account(request)
    params = await read_params(request)
    params.boolean("notifications", True)
    duration = params.integer("duration", 0, low=0, high=MAX_MUTE_SECONDS) or 0
    await request.app[RELATIONSHIPS].set_mute(user.id, account.id, True,
                                              duration=duration or None)  # fmt: skip
    return await _relationship_response(request, user, account.id)


async def relationships(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/relationships?id[]=``: one Relationship per live account
    among the ids, in their order (unknown ones are left out, as on Mastodon; suspended
    ones too, whatever ``with_suspended`` says: the node shows them to nobody)."""
    user = require_user(request, "read:follows")
    params = await read_params(request)
    params.boolean("with_suspended")
    rels = request.app[RELATIONSHIPS]
    found = []
    for account_id in _unique(params.ids("id", max_items=MAX_IDS)):
        try:
            await rels.live_account(account_id)
        except NotFound:
            continue
        found.append(relationship_entity(account_id, await rels.relationship(user.id, account_id)))
    return web.json_response(found)


async def familiar_followers(request: web.Request) -> web.Response:
    """``GET /api/v1/accounts/familiar_followers?id[]=``: for each account, the people the
    caller follows who follow it (none for an account that hides its network)."""
    user = require_user(request, "read:follows")
    params = await read_params(request)
    rels = request.app[RELATIONSHIPS]
    groups: list[tuple[int, list[Account]]] = []
    for account_id in _unique(params.ids("id", max_items=MAX_IDS)):
        try:
            await rels.live_account(account_id)
        except NotFound:
            continue
        groups.append((account_id, await rels.familiar_followers(user.id, account_id)))
    everyone = list({a.id: a for _, found in groups for a in found}.values())
    ctx = await present.context_for(request.app, accounts=everyone)
    return web.json_response([
        {"id": str(account_id), "accounts": [entities.account(a, ctx) for a in found]}
        for account_id, found in groups
    ])  # fmt: skip


# --- follow requests, blocks, mutes --------------------------------------------------


async def follow_requests(request: web.Request) -> web.Response:
    """``GET /api/v1/follow_requests``: who asks to follow the caller, newest first."""
    user = require_user(request, "read:follows")
    page = page_request(request, default=40, maximum=80)
    rows = await request.app[RELATIONSHIPS].followers(
        user.id, page.max_id, state="pending", limit=page.limit, min_id=page.min_id,
        since_id=page.since_id,
    )  # fmt: skip
    body = await present.accounts(request.app, [found for _, found in rows])
    return paginated(request, page, body, [follow_id for follow_id, _ in rows])


async def _decide_request(request: web.Request, approve: bool) -> web.Response:
    user = require_user(request, "write:follows")
    follower_id = path_id(request)
    rels = request.app[RELATIONSHIPS]
    try:
        if approve:
            await rels.accept_request(user.id, follower_id)
        else:
            await rels.reject_request(user.id, follower_id)
    except NotFound:
        raise NotFound(RECORD_NOT_FOUND) from None
    return await _relationship_response(request, user, follower_id)


async def authorize_request(request: web.Request) -> web.Response:
    """``POST /api/v1/follow_requests/:id/authorize``: the Relationship to the follower."""
    return await _decide_request(request, approve=True)


async def reject_request(request: web.Request) -> web.Response:
    """``POST /api/v1/follow_requests/:id/reject``: the Relationship to the refused one."""
    return await _decide_request(request, approve=False)


async def blocks(request: web.Request) -> web.Response:
    """``GET /api/v1/blocks``: the accounts the caller blocks, newest block first."""
    user = require_user(request, "read:blocks")
    page = page_request(request, default=40, maximum=80)
    rows = await request.app[RELATIONSHIPS].blocked(
        user.id, limit=page.limit, max_id=page.max_id, min_id=page.min_id,
        since_id=page.since_id,
    )  # fmt: skip
    body = await present.accounts(request.app, [found for _, found in rows])
    return paginated(request, page, body, [block_id for block_id, _ in rows])


async def mutes(request: web.Request) -> web.Response:
    """``GET /api/v1/mutes``: the accounts the caller mutes now, each with
    ``mute_expires_at`` (null for a mute without end)."""
    user = require_user(request, "read:mutes")
    page = page_request(request, default=40, maximum=80)
    rows = await request.app[RELATIONSHIPS].muted(
        user.id, limit=page.limit, max_id=page.max_id, min_id=page.min_id,
        since_id=page.since_id,
    )  # fmt: skip
    body = await present.accounts(request.app, [found for _, found, _ in rows])
    for item, (_, _, expires_at) in zip(body, rows, strict=True):
        item["mute_expires_at"] = entities.timestamp(expires_at) if expires_at else None
    return paginated(request, page, body, [mute_id for mute_id, _, _ in rows])


async def domain_blocks(request: web.Request) -> web.Response:
    """``GET /api/v1/domain_blocks``: people cannot block whole servers here (only the
    node's admins can, for everyone), so a person's list is empty."""
    require_user(request, "read:blocks")
    return web.json_response([])


async def own_featured_tags(request: web.Request) -> web.Response:
    """``GET /api/v1/featured_tags``: the node has no featured tags."""
    require_user(request, "read:accounts")
    return web.json_response([])


async def endorsements(request: web.Request) -> web.Response:
    """``GET /api/v1/endorsements``: the node has no endorsed (featured) accounts."""
    require_user(request, "read:accounts")
    return web.json_response([])


def add_routes(app: web.Application) -> None:
    """Register the accounts endpoints."""
    router = app.router
    # Fixed paths first: they would otherwise read as an account id.
    router.add_get("/api/v1/accounts/verify_credentials", verify_credentials)
    router.add_patch("/api/v1/accounts/update_credentials", update_credentials)
    router.add_get("/api/v1/accounts/relationships", relationships)
    router.add_get("/api/v1/accounts/familiar_followers", familiar_followers)
    router.add_get("/api/v1/accounts/lookup", lookup)
    router.add_get("/api/v1/accounts", get_accounts)
    router.add_get("/api/v1/accounts/{id}", get_account)
    router.add_get("/api/v1/accounts/{id}/statuses", account_statuses)
    router.add_get("/api/v1/accounts/{id}/followers", followers)
    router.add_get("/api/v1/accounts/{id}/following", following)
    router.add_get("/api/v1/accounts/{id}/featured_tags", account_featured_tags)
    router.add_get("/api/v1/accounts/{id}/lists", account_lists)
    for action, handler in (("follow", follow), ("unfollow", unfollow),
                            ("remove_from_followers", remove_from_followers),
                            ("block", block), ("unblock", unblock), ("mute", mute),
                            ("unmute", unmute)):  # fmt: skip
        router.add_post(f"/api/v1/accounts/{{id}}/{action}", handler)
    router.add_get("/api/v1/follow_requests", follow_requests)
    router.add_post("/api/v1/follow_requests/{id}/authorize", authorize_request)
    router.add_post("/api/v1/follow_requests/{id}/reject", reject_request)
    router.add_get("/api/v1/blocks", blocks)
    router.add_get("/api/v1/mutes", mutes)
    router.add_get("/api/v1/domain_blocks", domain_blocks)
    router.add_get("/api/v1/featured_tags", own_featured_tags)
    router.add_get("/api/v1/endorsements", endorsements)
