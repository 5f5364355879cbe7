"""Handlers for activities about posts: Create, Update, Delete, Like, EmojiReact.

Announce (boosts and group relays) is in :mod:`xnode.activitypub.announce_handlers`,
Add/Remove of pinned posts in :mod:`xnode.activitypub.featured_handlers`; both use
the shared helpers here.

Part of the dispatch table in :mod:`xnode.activitypub.handlers` (see there for
the rules every handler follows).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from federation.actors import ACTOR_TYPES
from federation.objects import (
    NOTE_TYPES,
    InvalidObject,
    ParsedActivity,
    ParsedNote,
    parse_note,
    str_of,
    type_of,
)
from federation.urls import same_origin
from xnode.accounts.models import Account
from xnode.activitypub.resolver import Refused, ResolveError
from xnode.events import ReactionChanged
from xnode.ids import new_id
from xnode.posts.models import Post
from xnode.store import accounts as account_store
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store
from xnode.text import strip_control_chars

if TYPE_CHECKING:
    from xnode.activitypub.handlers import Context

log = logging.getLogger(__name__)

MAX_REACTION_CHARS = 64
ACTOR_REFRESH_MIN_S = 60.0
"""A stored actor is refetched on a hint (an Add naming another collection, a relayed
Update) only when fetched longer ago than this: more often, any stream of such
activities would make us hammer the actor's server."""


async def _visible_post(ctx: Context, uri: str | None, actor: Account) -> Post | None:
    """A stored post the actor interacts with; None if unknown here.

    Raises:
        Refused: a boost row, deleted, or not visible to the actor.
    """
    post = await post_store.post_by_uri(ctx.db, uri) if uri else None
    if post is None:
        return None
    if post.is_boost or post.is_deleted:
        raise Refused(f"{uri} is not a live post")
    if not await post_store.can_see(ctx.db, actor.id, post.id):
        raise Refused(f"{actor.uri} cannot see {uri}")
    return post


def _parse_own_note(obj: Mapping[str, Any], actor: Account) -> ParsedNote:
    """An embedded post that must be the actor's own, from the actor's server."""
    try:
        note = parse_note(obj, default_author=actor.uri)
    except InvalidObject as exc:
        raise Refused(exc.reason) from exc
    if note.attributed_to != actor.uri or not same_origin(note.id, actor.uri):
        raise Refused(f"{note.id} is not {actor.uri}'s own post")
    return note


def reaction_of(raw: Mapping[str, Any]) -> str | None:
    """The emoji of a Misskey/Akkoma reaction (``_misskey_reaction`` or ``content``)."""
    for key in ("_misskey_reaction", "content"):
        value = str_of(raw.get(key))
        if value and value.strip():
            return strip_control_chars(value).strip()[:MAX_REACTION_CHARS]
    return None


async def concerns_node(ctx: Context, note: ParsedNote, actor: Account) -> bool:
    """Whether a post concerns this node: addressed to us, a reply we show, or followed."""
    if any(ctx.resolver.is_local(uri) for uri in (*note.recipients, *note.mentions)):
        return True
    if note.in_reply_to and (
        ctx.resolver.is_local(note.in_reply_to)
        or await post_store.post_by_uri(ctx.db, note.in_reply_to) is not None
    ):
        return True
    return await rel_store.has_local_follower(ctx.db, actor.id)


async def handle_create(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Create of a Note, Article, Page, Question (read-only) or ChatMessage (a DM)."""
    obj = activity.embedded_object
    if obj is None:
        # By reference only: fetch it from its server (which vouches for it).
        post = await ctx.resolver.note(activity.object_id) if activity.object_id else None
        if post is not None and post.account_id != actor.id:
            raise Refused("Create of someone else's post")
        return
    if type_of(obj) not in NOTE_TYPES:
        raise Refused(f"Create of a {type_of(obj)} is not supported")
    note = _parse_own_note(obj, actor)
    if note.name and not note.content and note.in_reply_to and not note.attachments:
        log.info("ignoring poll vote %s", note.id)  # Mastodon votes: a Note with a name only
        return
    if not await concerns_node(ctx, note, actor):
        log.info("ignoring %s: nobody here follows or is addressed", note.id)
        return
    try:
        await ctx.resolver.notes.store_id(note, actor)
    except ResolveError as exc:
        raise Refused(exc.message) from exc


async def handle_update(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Update of a post (an edit) or of the actor itself (profile change)."""
    obj = activity.embedded_object
    kind = type_of(obj)
    if obj is None or kind in ACTOR_TYPES:
        if actor.uri is None or activity.object_id != actor.uri:
            raise Refused("Update of another actor")
        try:
            # The activity is signed by the actor: its embedded document is as good
            # as a fetch. Refetch when it is only a reference or does not parse.
            if obj is None:
                raise ResolveError("no embedded actor")
            await ctx.resolver.store_actor(obj, expected_id=actor.uri)
        except ResolveError:
            await ctx.resolver.actor(actor.uri, refresh=True)
        return
    if kind not in NOTE_TYPES:
        log.info("ignoring Update of a %s from %s", kind, actor.uri)
        return
    note = _parse_own_note(obj, actor)
    if await ctx.resolver.update_note(note, actor) is None:
        log.info("ignoring Update of unknown post %s", note.id)


async def handle_delete(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Delete of a post (tombstone) or of the actor itself (everything they left)."""
    target = activity.object_id
    if target is None:
        raise Refused("Delete without an object")
    if target == actor.uri:
        # The same cleanup as a deletion here (AccountService.delete_user).
        async with ctx.db.transaction() as conn:
            await account_store.delete_account(conn, actor.id, ctx.clock.now())
        return
    post = await post_store.post_by_uri(ctx.db, target)
    if post is None:
        return
    if post.account_id != actor.id:
        raise Refused("Delete of someone else's post")
    # The same path as a local delete: counters, reactions, notifications, boosts.
    await ctx.posts.remove_remote(post)


async def handle_like(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Like: a favourite, or with ``content``/``_misskey_reaction`` an emoji reaction."""
    post = await _visible_post(ctx, activity.object_id, actor)
    if post is None:
        return
    emoji = reaction_of(activity.raw)
    if emoji is not None:
        await _react(ctx, activity, actor, post, emoji)
        return
    # The same path as a like here: the counter and the notification with the like.
    await ctx.posts.add_like(actor.id, post, uri=activity.id, federate=False)


async def _react(ctx: Context, activity: ParsedActivity, actor: Account, post: Post,
                 emoji: str) -> None:  # fmt: skip
    async with ctx.db.transaction() as conn:
        created = await post_store.insert_reaction(
            conn, new_id(), actor.id, post.id, emoji, activity.id, ctx.clock.now()
        )
    if created:
        await ctx.events.publish(ReactionChanged(actor.id, post.id, emoji))


async def handle_emoji_react(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """EmojiReact (Pleroma/Akkoma): a reaction row."""
    emoji = reaction_of(activity.raw)
    if emoji is None:
        raise Refused("EmojiReact without an emoji")
    post = await _visible_post(ctx, activity.object_id, actor)
    if post is not None:
        await _react(ctx, activity, actor, post, emoji)


async def refreshed_actor(ctx: Context, account: Account) -> Account | None:
    """A remote account refetched from its server; None when it is local, was fetched
    moments ago (see ``ACTOR_REFRESH_MIN_S``) or cannot be fetched."""
    if account.is_local or (
        account.fetched_at is not None
        and ctx.clock.now() - account.fetched_at < ACTOR_REFRESH_MIN_S
    ):
        return None
    assert account.uri is not None  # remote accounts always have one
    try:
        return await ctx.resolver.actor(account.uri, refresh=True)
    except ResolveError as exc:
        log.info("could not refresh %s: %s", account.uri, exc.message)
        return None
