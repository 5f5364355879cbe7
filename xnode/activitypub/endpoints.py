"""The GET side of federation: discovery documents, actors, collections and objects.

WebFinger, host-meta and NodeInfo let other servers find us; ``/users/{name}``
and ``/actor`` are the actor documents (also served from ``/@name`` to clients
asking for ActivityPub JSON); outbox, followers, following and featured are
paged collections; ``/users/{name}/statuses/{id}`` serves a post to whoever may
see it. Followers-only and direct posts need a signed GET from an addressee,
exactly as on Mastodon: unsigned gets 401, signed by anyone else 404.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

import xnode
from federation import calls, nodeinfo, webfinger
from federation.objects import origin_of
from federation.signatures import signature_key_id
from xnode.accounts.models import Account
from xnode.activitypub.serialize import AS_CONTEXT, CONTEXT, PublicKeys, Serializer
from xnode.activitypub.urls import Urls
from xnode.activitypub.verify import is_signed, verify_incoming
from xnode.instance import InstanceService
from xnode.posts.models import BOOSTABLE, PostView
from xnode.store import accounts as account_store
from xnode.store import domain_blocks
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store
from xnode.timelines import Cursor
from xnode.web.social import USERNAME, id_param
from xnode.web.state import ACCOUNTS, CLOCK, DB, POSTS, SETTINGS, TIMELINES

ACTIVITY_JSON = "application/activity+json"
NODEINFO_CONTENT_TYPE = 'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
COLLECTION_PAGE_SIZE = 20

from xnode.activitypub.appkeys import KEYRING, RESOLVER, SERIALIZER, URLS  # noqa: E402

_PROFILE_PATH = re.compile(r"^/@([A-Za-z0-9_]{1,30})(?:/(\d{1,19}))?/?$")


class _Respond(Exception):
    """Answer with this response now (a 410 Tombstone must keep its JSON body)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answers(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Respond as answer:
            return answer.response

    wrapped.__doc__ = handler.__doc__
    return wrapped


def activity_json(doc: Any, *, status: int = 200) -> web.Response:
    """An ``application/activity+json`` response."""
    response = web.Response(
        text=json.dumps(doc, ensure_ascii=False), status=status, content_type=ACTIVITY_JSON
    )
    response.headers["Vary"] = "Accept"
    return response


def wants_activitypub(request: web.Request) -> bool:
    """Whether the Accept header asks for ActivityStreams JSON.

    ``application/activity+json`` and ``application/ld+json`` (with the AS profile,
    or without it, as Mastodon also accepts) count; ``q=0`` refuses a type.
    """
    for item in request.headers.get("Accept", "").split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() not in (ACTIVITY_JSON, "application/ld+json"):
            continue
        if not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            return True
    return False


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "") and not wants_activitypub(request)


# --- discovery ----------------------------------------------------------------------


def _our_hosts(request: web.Request) -> set[str]:
    settings = request.app[SETTINGS]
    return {settings.domain.lower(), origin_of(settings.base_url) or ""}


async def webfinger_endpoint(request: web.Request) -> web.Response:
    """``/.well-known/webfinger?resource=acct:user@domain`` (or an actor URL)."""
    resource = request.query.get("resource", "").strip()
    if not resource:
        raise web.HTTPBadRequest(text="The 'resource' parameter is required.")
    settings, urls = request.app[SETTINGS], request.app[URLS]
    domain = settings.domain.lower()
    instance_name = webfinger.split_host_port(domain)[0]  # a port cannot be in a username
    if resource.startswith(("http://", "https://")):
        if not request.app[RESOLVER].is_local(resource):
            raise web.HTTPNotFound(text="Not an account on this node.")
        if resource.rstrip("/") == urls.instance_actor:
            username = None
        else:
            match = re.match(r"^/(?:users/|@)([A-Za-z0-9_]{1,64})/?$", resource[len(urls.base) :])
            if match is None:
                raise web.HTTPNotFound(text="Not an account on this node.")
            username = match[1]
    else:
        try:
            handle = webfinger.parse_handle(resource)
        except webfinger.InvalidHandle:
            raise web.HTTPBadRequest(text="Malformed resource.") from None
        if handle.host not in _our_hosts(request):
            raise web.HTTPNotFound(text="Not an account on this node.")
        # Mastodon's instance actor answers to acct:domain@domain.
        username = None if handle.username.lower() == instance_name else handle.username
    if username is None:
        jrd = webfinger.build_jrd(
            handle=webfinger.Handle(instance_name, domain), actor_url=urls.instance_actor,
            profile_url=f"{urls.base}/",
        )
    else:
        try:
            account = await _live_account(request, username)
        except _Respond:
            raise web.HTTPGone(text="This account has been deleted.") from None
        jrd = webfinger.build_jrd(
            handle=webfinger.Handle(account.username, domain),
            actor_url=urls.actor(account.username),
            profile_url=urls.profile_page(account.username),
        )
    return web.json_response(
        jrd, content_type=webfinger.JRD_CONTENT_TYPE,
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def host_meta(request: web.Request) -> web.Response:
    """``/.well-known/host-meta``: where WebFinger lives (for OStatus-era clients)."""
    return web.Response(
        text=webfinger.build_host_meta(request.app[URLS].base),
        content_type=webfinger.XRD_CONTENT_TYPE,
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def nodeinfo_links(request: web.Request) -> web.Response:
    """``/.well-known/nodeinfo``: the link to our NodeInfo 2.1 document."""
    return web.json_response(
        nodeinfo.build_well_known(request.app[URLS].base),
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def nodeinfo_document(request: web.Request) -> web.Response:
    """``/nodeinfo/2.1``: software, protocols and usage counts from the database."""
    figures = await InstanceService(request.app[DB], request.app[CLOCK]).usage()
    usage = nodeinfo.Usage(
        users_total=figures.users,
        users_active_month=figures.active_month,
        users_active_halfyear=figures.active_halfyear,
        # Replies included, as Mastodon counts them (peers show this as "posts").
        local_posts=figures.local_posts,
    )
    mode = await request.app[ACCOUNTS].registration_mode()
    doc = nodeinfo.build_nodeinfo(
        software_name="xnode", software_version=xnode.__version__,
        open_registrations=mode == "open", usage=usage,
        metadata={"nodeName": request.app[SETTINGS].domain, **calls.nodeinfo_metadata()},
    )
    return web.Response(
        text=json.dumps(doc), headers={"Content-Type": NODEINFO_CONTENT_TYPE,
                                       "Access-Control-Allow-Origin": "*"},
    )  # fmt: skip


# --- actors -------------------------------------------------------------------------


async def _live_account(request: web.Request, username: str) -> Account:
    """An active local account; 404 when unknown or suspended, 410 Tombstone when deleted."""
    db = request.app[DB]
    account = await account_store.get_local_account(db, username)
    if account is None or account.is_suspended:
        raise web.HTTPNotFound(text="No such account.")
    if account.is_deleted:
        uri = request.app[URLS].actor(account.username)
        raise _Respond(activity_json(request.app[SERIALIZER].tombstone(uri), status=410))
    user = await account_store.get_user(db, account.id)
    if user is None or user.state != "active":
        raise web.HTTPNotFound(text="No such account.")
    return account


async def _actor_response(request: web.Request, username: str) -> web.StreamResponse:
    account = await _live_account(request, username)
    keys = await request.app[KEYRING].for_account(account)
    public = PublicKeys(
        rsa_pem=keys.rsa.public_key.to_pem(),
        ed25519_multibase=keys.ed25519.public_key.to_multibase() if keys.ed25519 else None,
    )
    return activity_json(request.app[SERIALIZER].actor(account, public))


@_answers
async def actor_endpoint(request: web.Request) -> web.StreamResponse:
    """``/users/{username}``: the Person (browsers are sent to the profile page)."""
    username = request.match_info["username"]
    if _wants_html(request):
        await _live_account(request, username)
        raise web.HTTPFound(request.app[URLS].profile_page(username))
    return await _actor_response(request, username)


async def instance_actor(request: web.Request) -> web.Response:
    """``/actor``: the node's Application actor, whose key signs our fetches."""
    keys = await request.app[KEYRING].instance()
    return activity_json(request.app[SERIALIZER].instance_actor(keys.rsa.public_key.to_pem()))


async def _signed_viewer(request: web.Request, *, required: bool) -> Account | None:
    """The verified signer of a GET, None when unsigned (401 when a signature is required)."""
    if not is_signed(request):
        if required:
            raise web.HTTPUnauthorized(text="This node requires signed requests.")
        return None
    if await domain_blocks.url_is_suspended(request.app[DB], signature_key_id(request.headers)):
        raise web.HTTPForbidden(text="Your server is blocked here.")
    app = request.app
    signed = await verify_incoming(request, None, app[RESOLVER], app[SETTINGS], app[CLOCK])
    return signed.actor


async def _fetcher(request: web.Request) -> Account | None:
    """The signer of a GET for collections and objects (authorized fetch: required)."""
    return await _signed_viewer(request, required=request.app[SETTINGS].authorized_fetch)


# --- collections --------------------------------------------------------------------


def _page_url(base: str, max_id: int | None) -> str:
    return f"{base}?page=true" + (f"&max_id={max_id}" if max_id is not None else "")


def _strip_context(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "@context"}


def _activity_of(serializer: Serializer, urls: Urls, view: PostView) -> dict[str, Any]:
    """Create for a post, Announce for a boost (as items of an outbox page)."""
    if view.boost is not None and view.booster is not None:
        original = view.post.uri or urls.post(view.author.username, view.post.id)
        return serializer.announce(view.booster, view.boost, original, view.author)
    return serializer.create(view)


@_answers
async def outbox(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/outbox``: public and unlisted posts and boosts, newest first."""
    account = await _live_account(request, request.match_info["username"])
    await _fetcher(request)
    app = request.app
    urls, serializer = app[URLS], app[SERIALIZER]
    collection = urls.outbox(account.username)
    if "page" not in request.query:
        total = await app[POSTS].outbox_size(account.id)
        first = _page_url(collection, None)
        return activity_json(serializer.ordered_collection(collection, total, first))
    max_id = id_param(request.query.get("max_id"), "max_id")
    page = await app[TIMELINES].profile(
        None, account.id, Cursor(max_id=max_id, limit=COLLECTION_PAGE_SIZE)
    )
    items = [_strip_context(_activity_of(serializer, urls, view)) for view in page.items]
    next_page = _page_url(collection, page.next_max_id) if page.next_max_id else None
    doc = serializer.collection_page(_page_url(collection, max_id), collection, items, next_page)
    return activity_json(doc)


async def _graph(request: web.Request, *, column: str) -> web.StreamResponse:
    """Followers (column='target') or following (column='follower'), paged by follow id."""
    account = await _live_account(request, request.match_info["username"])
    await _fetcher(request)
    app = request.app
    urls, serializer, db = app[URLS], app[SERIALIZER], app[DB]
    collection = urls.followers(account.username) if column == "target" else (
        urls.following(account.username)
    )
    total = await rel_store.count_related(db, column=column, account_id=account.id)
    if account.hide_network:
        # Only the count, as Mastodon does when a user hides their network.
        return activity_json(serializer.ordered_collection(collection, total))
    if "page" not in request.query:
        return activity_json(
            serializer.ordered_collection(collection, total, _page_url(collection, None))
        )
    max_id = id_param(request.query.get("max_id"), "max_id")
    rows = await rel_store.list_related(
        db, column=column, account_id=account.id, state="accepted",
        limit=COLLECTION_PAGE_SIZE, max_id=max_id,
    )
    items = [serializer.actor_id(other) for _, other in rows]
    more = len(rows) == COLLECTION_PAGE_SIZE
    next_page = _page_url(collection, rows[-1][0]) if more else None
    return activity_json(
        serializer.collection_page(_page_url(collection, max_id), collection, items, next_page)
    )


@_answers
async def followers(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/followers``."""
    return await _graph(request, column="target")


@_answers
async def following(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/following``."""
    return await _graph(request, column="follower")


@_answers
async def featured(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/collections/featured``: pinned posts, embedded as Mastodon does."""
    account = await _live_account(request, request.match_info["username"])
    await _fetcher(request)
    app = request.app
    pinned = await app[TIMELINES].pinned(None, account.id)
    items = [app[SERIALIZER].note(view) for view in pinned]
    collection = app[URLS].featured(account.username)
    return activity_json(app[SERIALIZER].ordered_collection(collection, len(items), items=items))


async def empty_outbox(request: web.Request) -> web.Response:
    """``/actor/outbox``: the instance actor publishes nothing."""
    collection = f"{request.app[URLS].instance_actor}/outbox"
    return activity_json(Serializer.ordered_collection(collection, 0, items=[]))


# --- posts --------------------------------------------------------------------------


async def _status_response(
    request: web.Request, username: str, post_id: int, *, activity: bool
) -> web.StreamResponse:
    app = request.app
    account = await _live_account(request, username)
    post = await post_store.get_post(app[DB], post_id)
    if post is None or post.account_id != account.id or (post.is_boost and not activity):
        raise web.HTTPNotFound(text="No such post.")
    serializer, urls = app[SERIALIZER], app[URLS]
    if post.is_deleted:
        uri = post.uri or urls.post(account.username, post.id)
        raise _Respond(activity_json(serializer.tombstone(uri, post.deleted_at), status=410))
    viewer = await _fetcher(request)
    if viewer is None and post.visibility not in BOOSTABLE:
        raise web.HTTPUnauthorized(text="Sign the request to see this post.")
    views = await app[POSTS].hydrate(viewer.id if viewer else None, [post])
    if not views:
        raise web.HTTPNotFound(text="No such post.")
    view = views[0]
    if post.is_boost:
        return activity_json(_activity_of(serializer, urls, view))
    if activity:
        return activity_json(serializer.create(view))
    return activity_json({"@context": CONTEXT, **serializer.note(view)})


@_answers
async def status(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/statuses/{id}``: the Note (or Article)."""
    post_id = id_param(request.match_info["id"], "id")
    assert post_id is not None
    return await _status_response(request, request.match_info["username"], post_id, activity=False)


@_answers
async def status_activity(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/statuses/{id}/activity``: its Create (or a boost's Announce)."""
    post_id = id_param(request.match_info["id"], "id")
    assert post_id is not None
    return await _status_response(request, request.match_info["username"], post_id, activity=True)


MAX_LISTED_REPLIES = 40


@_answers
async def status_replies(request: web.Request) -> web.StreamResponse:
    """``/users/{username}/statuses/{id}/replies``: the ids of a public or unlisted post's
    public and unlisted replies, newest first, in one embedded page (as Mastodon serves it)."""
    post_id = id_param(request.match_info["id"], "id")
    assert post_id is not None
    account = await _live_account(request, request.match_info["username"])
    app = request.app
    post = await post_store.get_post(app[DB], post_id)
    if (
        post is None or post.account_id != account.id or post.is_boost or post.is_deleted
        or post.visibility not in BOOSTABLE or post.uri is None
    ):
        raise web.HTTPNotFound(text="No such post.")
    await _fetcher(request)
    replies = await post_store.public_reply_uris(app[DB], post.id, MAX_LISTED_REPLIES)
    collection = f"{post.uri}/replies"
    page = {"id": f"{collection}?page=true", "type": "CollectionPage", "partOf": collection,
            "items": replies}  # fmt: skip
    return activity_json({
        "@context": AS_CONTEXT, "id": collection, "type": "Collection",
        "totalItems": post.replies_count, "first": page,
    })  # fmt: skip


# --- content negotiation on the HTML URLs ---------------------------------------------


def vary_on_accept(headers: CIMultiDict[str]) -> None:
    """Add ``Accept`` to a response's ``Vary``, keeping (and merging) what is there."""
    names = [
        name.strip() for value in headers.getall("Vary", []) for name in value.split(",")
    ]
    names = [name for name in names if name]
    if "*" in names or any(name.lower() == "accept" for name in names):
        return
    headers["Vary"] = ", ".join([*names, "Accept"])


@web.middleware
async def negotiation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve ``/@name`` and ``/@name/{id}`` as ActivityPub JSON to clients asking for it.

    Mastodon publishes these as ``url``; remote servers and search boxes fetch
    them with an ActivityPub Accept header and expect the actor or the object.
    Browsers (any other Accept) get the HTML pages as before.

    Every answer from a URL that negotiates (these two and ``/users/{name}``,
    which sends browsers to the profile page) says ``Vary: Accept``: without it a
    shared cache could hand the HTML page to a peer, or the JSON to a browser.
    """
    if request.method not in ("GET", "HEAD"):
        return await handler(request)
    match = _PROFILE_PATH.match(request.path) if request.path.startswith("/@") else None
    if match is None and request.match_info.route.name != "actor":
        return await handler(request)
    try:
        response = await _negotiate(request, handler, match)
    except web.HTTPException as exc:
        # A raised redirect goes out as it is, so it keeps the header; error statuses
        # are rebuilt as pages by the error middleware, which drops it.
        vary_on_accept(exc.headers)
        raise
    if not response.prepared:
        vary_on_accept(response.headers)
    return response


async def _negotiate(
    request: web.Request, handler: Handler, match: re.Match[str] | None
) -> web.StreamResponse:
    if match is not None and wants_activitypub(request):
        try:
            if match[2] is None:
                return await _actor_response(request, match[1])
            return await _status_response(request, match[1], int(match[2]), activity=False)
        except _Respond as answer:
            return answer.response
    return await handler(request)


async def calls_context(request: web.Request) -> web.Response:
    """``/ns/calls/v1``: the calls vocabulary as a JSON-LD context document (a copy of the one
    bundled for ``https://w3id.org/xnode/calls/v1``), for people and processors to read."""
    return web.json_response(
        calls.context_document(), content_type="application/ld+json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=86400"},
    )  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the federation GET endpoints and the ``/@`` content negotiation.

    Expects ``URLS``, ``KEYRING``, ``SERIALIZER`` and ``RESOLVER`` in the app.
    """
    router = app.router
    router.add_get("/.well-known/webfinger", webfinger_endpoint, name="webfinger")
    router.add_get("/.well-known/host-meta", host_meta)
    router.add_get("/.well-known/nodeinfo", nodeinfo_links)
    router.add_get("/nodeinfo/2.1", nodeinfo_document, name="nodeinfo")
    router.add_get("/ns/calls/v1", calls_context)
    router.add_get("/actor", instance_actor, name="instance_actor")
    router.add_get("/actor/outbox", empty_outbox)
    router.add_get(f"/users/{USERNAME}", actor_endpoint, name="actor")
    router.add_get(f"/users/{USERNAME}/outbox", outbox)
    router.add_get(f"/users/{USERNAME}/followers", followers)
    router.add_get(f"/users/{USERNAME}/following", following)
    router.add_get(f"/users/{USERNAME}/collections/featured", featured)
    router.add_get(rf"/users/{USERNAME}/statuses/{{id:\d{{1,19}}}}", status)
    router.add_get(rf"/users/{USERNAME}/statuses/{{id:\d{{1,19}}}}/activity", status_activity)
    router.add_get(rf"/users/{USERNAME}/statuses/{{id:\d{{1,19}}}}/replies", status_replies)
    app.middlewares.append(negotiation_middleware)
