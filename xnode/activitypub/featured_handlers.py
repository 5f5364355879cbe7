"""Add/Remove of pinned posts: an actor's own posts added to its featured collection.

Part of the dispatch table in :mod:`xnode.activitypub.handlers` (see there for
the rules every handler follows).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from federation.objects import ParsedActivity
from federation.urls import same_origin
from xnode.accounts.models import Account
from xnode.activitypub.post_handlers import refreshed_actor
from xnode.activitypub.resolver import Refused
from xnode.posts.models import BOOSTABLE
from xnode.store import posts as post_store

if TYPE_CHECKING:
    from xnode.activitypub.handlers import Context

log = logging.getLogger(__name__)

MAX_REMOTE_PINS = 20
"""Pinned posts kept per remote account (Mastodon allows 5; others let admins raise it)."""


async def _check_featured_target(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """The target must be the actor's own featured collection.

    Raises:
        Refused: no target, or any other collection (someone else's, a Lemmy
            community's, Mastodon's featured hashtags...).
    """
    target = activity.target_id
    if target is None:
        raise Refused(f"{activity.type} without a target")
    featured = actor.featured_url
    if target != featured and same_origin(target, actor.uri):
        # The stored profile may predate the collection (or its move).
        refreshed = await refreshed_actor(ctx, actor)
        featured = refreshed.featured_url if refreshed is not None else featured
    if target != featured:
        raise Refused(f"{target} is not {actor.uri}'s featured collection")


async def handle_add(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Add of one's own public post to one's featured collection: a pin (Mastodon)."""
    await _check_featured_target(ctx, activity, actor)
    uri = activity.object_id
    if uri is None:
        raise Refused("Add without an object")
    post = await post_store.post_by_uri(ctx.db, uri)
    if post is None:
        # An actor's posts live on its host: anything else cannot be theirs, so is not fetched.
        if ctx.resolver.is_local(uri) or not same_origin(uri, actor.uri):
            raise Refused(f"{uri} is not a post by {actor.uri}")
        post = await ctx.resolver.note(uri)
        if post is None:
            raise Refused(f"pinned post {uri} is not available")
    if post.account_id != actor.id:
        raise Refused(f"{uri} is not a post by {actor.uri}")
    if post.is_boost or post.is_deleted or post.visibility not in BOOSTABLE:
        raise Refused(f"{uri} is not a public post")
    async with ctx.db.transaction() as conn:
        added = await post_store.set_flag(conn, "pins", 0, actor.id, post.id, ctx.clock.now(),
                                          True)  # fmt: skip
        if added and await post_store.count_pins(conn, actor.id) > MAX_REMOTE_PINS:
            raise Refused(f"{actor.uri} has pinned {MAX_REMOTE_PINS} posts already")


async def handle_remove(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Remove from one's featured collection: unpin (a post we never stored: nothing to do)."""
    await _check_featured_target(ctx, activity, actor)
    uri = activity.object_id
    if uri is None:
        raise Refused("Remove without an object")
    post = await post_store.post_by_uri(ctx.db, uri)
    if post is None:
        log.info("ignoring Remove of unknown post %s", uri)
        return
    if post.account_id != actor.id:
        raise Refused(f"{uri} is not a post by {actor.uri}")
    async with ctx.db.transaction() as conn:
        await post_store.set_flag(conn, "pins", 0, actor.id, post.id, ctx.clock.now(), False)
