"""Announce: boosts of posts, and activities relayed by groups (Lemmy communities and others).

Part of the dispatch table in :mod:`xnode.activitypub.handlers` (see there for
the rules every handler follows).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from federation.actors import ACTOR_TYPES
from federation.http import BadStatus
from federation.jsonld import PUBLIC_ADDRESSES, id_of
from federation.objects import (
    NOTE_TYPES,
    InvalidObject,
    ParsedActivity,
    parse_note,
    type_of,
)
from federation.urls import same_origin
from xnode.accounts.models import Account
from xnode.activitypub.post_handlers import concerns_node, refreshed_actor
from xnode.activitypub.resolver import BlockedDomain, Refused, ResolveError
from xnode.ids import new_id
from xnode.posts.models import BOOSTABLE, Post
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store

if TYPE_CHECKING:
    from xnode.activitypub.handlers import Context

log = logging.getLogger(__name__)


def _boost_visibility(activity: ParsedActivity) -> str:
    if any(a in PUBLIC_ADDRESSES for a in activity.to):
        return "public"
    if any(a in PUBLIC_ADDRESSES for a in (*activity.cc, *activity.audience)):
        return "unlisted"
    return "followers"


async def _boosted_post(ctx: Context, activity: ParsedActivity, uri: str) -> Post | None:
    """The boosted post: stored, embedded by its own server, or fetched from its origin."""
    original = await post_store.post_by_uri(ctx.db, uri)
    obj = activity.embedded_object
    if original is None and obj is not None and activity.embedded_object_trusted:
        note = parse_note(obj, default_author=activity.actor)
        author = await ctx.resolver.actor(note.attributed_to)
        original = await ctx.resolver.store_note(note, author)
    if original is None:
        # Mastodon embeds other servers' posts in boosts: never believe those copies.
        original = await ctx.resolver.note(uri)
    return original


def _is_activity(obj: Mapping[str, Any]) -> bool:
    """Whether an announced object is an activity (Lemmy's Create, Like...) rather than a post."""
    kind = type_of(obj)
    return kind not in NOTE_TYPES and kind not in ACTOR_TYPES and obj.get("actor") is not None


async def handle_announce(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Announce: a boost of a post the actor can see, or a group relaying an activity.

    Lemmy communities (and Mbin, Friendica and WordPress groups) forward their members'
    activities wrapped in an Announce; see :func:`_relayed_activity`.
    """
    obj = activity.embedded_object
    if obj is not None and _is_activity(obj):
        await _relayed_activity(ctx, activity, actor, obj)
        return
    if obj is not None and type_of(obj) not in NOTE_TYPES:
        raise Refused(f"Announce of a {type_of(obj)} is not supported")
    uri = activity.object_id
    if uri is None:
        raise Refused("Announce without an object")
    if not ctx.resolver.is_local(uri) and not await rel_store.has_local_follower(
        ctx.db, actor.id
    ):
        log.info("ignoring boost by %s: nobody here follows them", actor.uri)
        return
    try:
        original = await _boosted_post(ctx, activity, uri)
    except (InvalidObject, ResolveError) as exc:
        raise Refused(f"boosted post unusable: {exc}") from exc
    if original is None and obj is None and actor.actor_type == "Group":
        # Some groups announce their members' activities by id only. Only then is the
        # id fetched a second time: boosts of posts by id are the common case.
        relayed = await _fetch_activity(ctx, uri)
        if relayed is not None:
            await _relayed_activity(ctx, activity, actor, relayed)
            return
    if original is None or original.is_boost or original.is_deleted:
        raise Refused(f"boosted post {uri} is not available")
    if not await _may_boost(ctx, actor, original):
        raise Refused(f"{actor.uri} may not boost {uri}")
    await _record_boost(ctx, activity, actor, original)


async def _may_boost(ctx: Context, actor: Account, post: Post) -> bool:
    return post.visibility in BOOSTABLE and await post_store.can_see(ctx.db, actor.id, post.id)


async def _record_boost(ctx: Context, activity: ParsedActivity, actor: Account,
                        original: Post) -> None:  # fmt: skip
    """Store the Announce as a boost row (idempotent: one per actor and post)."""
    now = ctx.clock.now()
    published = activity.published.timestamp() if activity.published else now
    # The same path as a boost here: the counter and the notification with the row.
    await ctx.posts.add_boost(
        actor.id, original, boost_id=new_id(), uri=activity.id, url=activity.id,
        visibility=_boost_visibility(activity), created_at=min(published, now),
        federate=False,
    )  # fmt: skip


# --- activities relayed by groups ----------------------------------------------------------


async def _fetch_activity(ctx: Context, uri: str) -> Mapping[str, Any] | None:
    """The activity at ``uri`` (a group's Announce by id), or None if it is not one."""
    if ctx.resolver.is_local(uri):
        return None
    try:
        doc = await ctx.resolver.fetch(uri)
    except ResolveError as exc:
        log.info("could not load announced %s: %s", uri, exc.message)
        return None
    return doc if isinstance(doc, Mapping) and _is_activity(doc) else None


async def _relayed_activity(ctx: Context, announce: ParsedActivity, group: Account,
                            inner: Mapping[str, Any]) -> None:  # fmt: skip
    """An activity a group forwards: its effect, with every object fetched from its origin.

    The group did not write what it relays and its copy is not signed by the author,
    so nothing embedded is believed: the inner activity is only read for its type and
    its object's id, and the object is looked up on its own server. Types without a
    handler here (votes, moderation, nested Announces...) are ignored.
    """
    kind = type_of(inner)
    relay = _RELAYED.get(kind or "")
    if relay is None:
        log.info("ignoring %s relayed by %s", kind, group.uri)
        return
    object_uri = id_of(inner.get("object"))
    if object_uri is None:
        log.info("ignoring %s relayed by %s: no object", kind, group.uri)
        return
    await relay(ctx, announce, group, inner, object_uri)


async def _relay_concerns_us(ctx: Context, group: Account, inner: Mapping[str, Any]) -> bool:
    """Whether a relayed post is worth fetching: the group is followed here, or the
    post (going by the relayed copy, which only decides whether to look) involves us."""
    if await rel_store.has_local_follower(ctx.db, group.id):
        return True
    obj = inner.get("object")
    if not isinstance(obj, Mapping):
        return False
    try:
        hint = parse_note(obj, default_author=id_of(inner.get("actor")))
    except InvalidObject:
        return False
    author = await ctx.resolver.known_account(hint.attributed_to)
    return await concerns_node(ctx, hint, author or group)


async def _relayed_create(ctx: Context, announce: ParsedActivity, group: Account,
                          inner: Mapping[str, Any], uri: str) -> None:  # fmt: skip
    """Create: the post, fetched from its server and stored as its author's."""
    post = await post_store.post_by_uri(ctx.db, uri)
    if post is None:
        if ctx.resolver.is_local(uri):
            raise Refused(f"relayed Create of {uri}, which is not a post here")
        if not await _relay_concerns_us(ctx, group, inner):
            log.info("ignoring %s relayed by %s: nobody here follows", uri, group.uri)
            return
        post = await ctx.resolver.note(uri)
        if post is None:
            raise Refused(f"relayed post {uri} is not available from its server")
    if post.is_boost or post.is_deleted:
        raise Refused(f"relayed post {uri} is not a live post")
    # The group's followers see its new threads as boosts by the group (as on Mastodon);
    # comments only join their thread, or every vote-worthy reply would flood timelines.
    if (
        post.in_reply_to_id is None
        and post.in_reply_to_uri is None
        and await rel_store.has_local_follower(ctx.db, group.id)
        and await _may_boost(ctx, group, post)
    ):
        await _record_boost(ctx, announce, group, post)


async def _relayed_update(ctx: Context, announce: ParsedActivity, group: Account,
                          inner: Mapping[str, Any], uri: str) -> None:  # fmt: skip
    """Update of a stored post (refetched and applied) or of an actor (refetched)."""
    if ctx.resolver.is_local(uri):
        log.info("ignoring relayed Update of our own %s", uri)
        return
    account = await ctx.resolver.known_account(uri)
    if account is not None or type_of(inner.get("object")) in ACTOR_TYPES:
        # A profile (often the community itself): what its server serves now.
        if account is None or await refreshed_actor(ctx, account) is None:
            log.info("ignoring relayed Update of actor %s", uri)
        return
    post = await post_store.post_by_uri(ctx.db, uri)
    if post is None or post.is_boost or post.is_deleted:
        log.info("ignoring relayed Update of unknown post %s", uri)
        return
    try:
        note = parse_note(await ctx.resolver.fetch(uri))
    except (InvalidObject, ResolveError) as exc:
        raise Refused(f"relayed Update of {uri}: {exc}") from exc
    if note.id != uri or not same_origin(note.attributed_to, uri):
        raise Refused(f"{uri} answered with another object")
    author = await ctx.resolver.known_account(note.attributed_to)
    if author is None or author.id != post.account_id:
        raise Refused(f"{uri} changed authors")
    await ctx.resolver.update_note(note, author)


async def _gone_at_origin(ctx: Context, uri: str) -> bool:
    """Whether the object's own server says it was deleted (404, 410 or a Tombstone).

    Raises:
        ResolveError: no answer either way (network trouble): worth retrying.
    """
    try:
        doc = await ctx.resolver.fetch(uri)
    except BlockedDomain:
        return False
    except ResolveError as exc:
        # The resolver keeps the HTTP failure as the cause; a status is an answer.
        cause = exc.__cause__
        if isinstance(cause, BadStatus):
            return cause.status in (404, 410)
        raise
    return type_of(doc) == "Tombstone"


async def _relayed_delete(ctx: Context, announce: ParsedActivity, group: Account,
                          inner: Mapping[str, Any], uri: str) -> None:  # fmt: skip
    """Delete of a stored remote post, once its own server confirms it is gone.

    Lemmy sends its members' deletions (and moderators' removals) only through the
    community, so these are how such posts leave here.
    """
    post = await post_store.post_by_uri(ctx.db, uri)
    if post is None or post.local or post.is_boost or post.is_deleted:
        log.info("ignoring relayed Delete of %s: not a stored remote post", uri)
        return
    if not await _gone_at_origin(ctx, uri):
        raise Refused(f"relayed Delete of {uri}, which its server still serves")
    await ctx.posts.remove_remote(post)


_RELAYED = {
    "Create": _relayed_create,
    "Update": _relayed_update,
    "Delete": _relayed_delete,
}
