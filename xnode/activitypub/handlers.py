"""What each incoming activity does: one ``handle_<type>`` function per type, in a table.

Handlers run after the signature was checked and the activity queued (see
``inbox``). They receive the activity parsed, and its actor as a stored account.
The rules local actions follow hold for remote ones too: a remote actor may only
like, boost or reply to posts it can see, and only the author may edit, delete or
undo. Anything we will never accept raises :class:`Refused` (not retried); any
other exception means "try again later".
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.jsonld import id_of
from federation.objects import (
    ParsedActivity,
    str_of,
    type_of,
)
from xnode.accounts.models import Account, Follow
from xnode.accounts.relationships import RelationshipService
from xnode.activitypub.announce_handlers import handle_announce
from xnode.activitypub.featured_handlers import handle_add, handle_remove
from xnode.activitypub.post_handlers import (
    handle_create,
    handle_delete,
    handle_emoji_react,
    handle_like,
    handle_update,
    reaction_of,
)
from xnode.activitypub.resolver import Refused, ResolveError, Resolver
from xnode.activitypub.serialize import Serializer
from xnode.clock import Clock
from xnode.errors import NotFound, XnodeError
from xnode.events import (
    EventBus,
    ReactionChanged,
)
from xnode.ids import new_id
from xnode.posts.content import html_to_text
from xnode.posts.models import Post
from xnode.posts.service import PostService
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import likes as like_store
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store
from xnode.store import reports as report_store
from xnode.store.database import Database
from xnode.text import strip_control_chars

log = logging.getLogger(__name__)

MAX_REPORT_CHARS = 5_000
MAX_FLAG_OBJECTS = 50

# ``deliver(activity, sender, recipients, post_id=None)``, from the outgoing side.
Deliver = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Context:
    """The services handlers work with."""

    db: Database
    settings: Settings
    clock: Clock
    events: EventBus
    resolver: Resolver
    posts: PostService
    relationships: RelationshipService
    serializer: Serializer
    deliver: Deliver


Handler = Callable[[Context, ParsedActivity, Account], Awaitable[None]]

__all__ = ["HANDLERS", "Context", "Deliver", "Handler", "Refused"]


# --- shared lookups -------------------------------------------------------------------


async def _local_account(ctx: Context, uri: str | None) -> Account:
    """The active local account an activity is about.

    Raises:
        Refused: not one of ours, or not active.
    """
    account = await ctx.resolver.known_account(uri) if uri and ctx.resolver.is_local(uri) else None
    if account is None or not account.is_local or account.is_deleted or account.is_suspended:
        raise Refused(f"{uri} is not an account on this node")
    user = await account_store.get_user(ctx.db, account.id)
    if user is None or user.state != "active":
        raise Refused(f"{uri} is not an active account")
    return account


# --- follows ----------------------------------------------------------------------------


async def handle_follow(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Follow: accept at once, or record a request when the account is locked.

    The same service path as a follow here (:meth:`RelationshipService.add_follow`); the
    Accept is sent here, through ``deliver``, and the change is not federated, because
    the outbox answers a kept 'accepted' FollowChanged for a remote follower with an
    Accept of its own (that is how a locked account's approval goes out).
    """
    target = await _local_account(ctx, activity.object_id)
    if await rel_store.has_edge(ctx.db, "blocks", target.id, actor.id):
        reject = ctx.serializer.accept_or_reject("Reject", target, new_id(), activity.id, actor)
        await ctx.deliver(reject, target, [actor])
        return
    try:
        # The Undo may name only the Follow's id: the newest one is kept.
        follow = await ctx.relationships.add_follow(
            actor.id, target.id, uri=activity.id, federate=False
        )
    except XnodeError as exc:  # the actor blocks the target, or the follow went meanwhile
        raise Refused(exc.message) from exc
    if follow.state == "accepted":
        # Also re-sent for a repeated Follow: the other side may have lost our Accept.
        accept = ctx.serializer.accept_or_reject("Accept", target, follow.id, activity.id, actor)
        await ctx.deliver(accept, target, [actor])


_OUR_FOLLOW = re.compile(r"/follows/(\d{1,19})$")


async def _our_follow(ctx: Context, activity: ParsedActivity, actor: Account) -> Follow:
    """The follow of ours an Accept/Reject answers (by id, or by embedded actor/object)."""
    row = None
    object_id = activity.object_id
    if object_id:
        row = await rel_store.follow_by_uri(ctx.db, object_id)
        match = _OUR_FOLLOW.search(object_id) if ctx.resolver.is_local(object_id) else None
        if row is None and match:
            row = await rel_store.follow_by_id(ctx.db, int(match[1]))
    inner = activity.embedded_object
    if row is None and inner is not None and type_of(inner) == "Follow":
        follower_uri = id_of(inner.get("actor"))
        follower = await ctx.resolver.known_account(follower_uri) if follower_uri else None
        if follower is not None and id_of(inner.get("object")) == actor.uri:
            row = await rel_store.follow_between(ctx.db, follower.id, actor.id)
    # Only the account followed may answer, and only follows by our own accounts.
    if row is None or row.target_account_id != actor.id:
        raise Refused("not an answer to a Follow we sent")
    follower = await account_store.get_account(ctx.db, row.account_id)
    if follower is None or not follower.is_local:
        raise Refused("not an answer to a Follow we sent")
    return row


async def handle_accept(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Accept{Follow}: our follow request went through (as if the account approved it
    here: :meth:`RelationshipService.accept_request`)."""
    row = await _our_follow(ctx, activity, actor)
    with contextlib.suppress(NotFound):  # accepted already (a repeated Accept)
        await ctx.relationships.accept_request(actor.id, row.account_id, federate=False)


async def handle_reject(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Reject{Follow}: refused, or a follower removed (Mastodon sends Reject for both):
    :meth:`RelationshipService.remove_follower`, as for a follower removed here."""
    row = await _our_follow(ctx, activity, actor)
    await ctx.relationships.remove_follower(actor.id, row.account_id, federate=False)


# --- undo -------------------------------------------------------------------------------


async def _undo_follow(ctx: Context, actor: Account, inner_id: str | None,
                       inner: Mapping[str, Any] | None) -> bool:  # fmt: skip
    row = await rel_store.follow_by_uri(ctx.db, inner_id) if inner_id else None
    if row is None and inner is not None:
        target = await ctx.resolver.known_account(id_of(inner.get("object")) or "")
        if target is not None:
            row = await rel_store.follow_between(ctx.db, actor.id, target.id)
    if row is None or row.account_id != actor.id:
        return False
    await ctx.relationships.unfollow(actor.id, row.target_account_id, federate=False)
    return True


async def _undo_like(ctx: Context, actor: Account, inner_id: str | None,
                     inner: Mapping[str, Any] | None) -> bool:  # fmt: skip
    post = None
    if inner is not None:
        post = await post_store.post_by_uri(ctx.db, id_of(inner.get("object")) or "")
    liked = await like_store.liked_post(
        ctx.db, actor.id, uri=inner_id, post_id=post.id if post else None
    )
    unliked = liked is not None and await ctx.posts.remove_like(actor.id, liked, federate=False)
    # A Like with content was stored as a reaction.
    async with ctx.db.transaction() as conn:
        removed = await post_store.delete_reaction(
            conn, actor.id, uri=inner_id, post_id=post.id if post else None,
            emoji=reaction_of(inner) if inner is not None else None,
        )
    return unliked or removed > 0


async def _undo_announce(ctx: Context, actor: Account, inner_id: str | None,
                         inner: Mapping[str, Any] | None) -> bool:  # fmt: skip
    boost = await post_store.post_by_uri(ctx.db, inner_id) if inner_id else None
    if boost is None and inner is not None:
        original = await post_store.post_by_uri(ctx.db, id_of(inner.get("object")) or "")
        if original is not None:
            boost = await post_store.boost_by(ctx.db, actor.id, original.id)
    if boost is None or not boost.is_boost or boost.account_id != actor.id:
        return False
    await ctx.posts.remove_remote(boost)
    return True


async def _undo_block(ctx: Context, actor: Account, inner_id: str | None,
                      inner: Mapping[str, Any] | None) -> bool:  # fmt: skip
    target = None
    if inner is not None:
        target = await ctx.resolver.known_account(id_of(inner.get("object")) or "")
    if target is None and inner_id is None:
        return False
    return await ctx.relationships.unblock(
        actor.id, target.id if target else None, uri=inner_id, federate=False
    )


async def _undo_reaction(ctx: Context, actor: Account, inner_id: str | None,
                         inner: Mapping[str, Any] | None) -> bool:  # fmt: skip
    post = None
    if inner is not None:
        post = await post_store.post_by_uri(ctx.db, id_of(inner.get("object")) or "")
    async with ctx.db.transaction() as conn:
        removed = await post_store.delete_reaction(
            conn, actor.id, uri=inner_id, post_id=post.id if post else None,
            emoji=reaction_of(inner) if inner is not None else None,
        )
    if removed and post is not None:
        emoji = (reaction_of(inner) if inner is not None else None) or ""
        await ctx.events.publish(ReactionChanged(actor.id, post.id, emoji, undone=True))
    return removed > 0


_UNDOERS = {
    "Follow": _undo_follow,
    "Like": _undo_like,
    "Announce": _undo_announce,
    "Block": _undo_block,
    "EmojiReact": _undo_reaction,
}


async def handle_undo(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Undo of a Follow, Like, Announce, Block or EmojiReact (embedded, or by id only)."""
    inner = activity.embedded_object
    inner_id = activity.object_id
    if inner is None:
        # Only an id (Mastodon's Undo{Like} by IRI): it can only name the actor's own rows.
        for undo in _UNDOERS.values():
            if await undo(ctx, actor, inner_id, None):
                return
        log.info("Undo of unknown %s by %s", inner_id, actor.uri)
        return
    inner_actor = id_of(inner.get("actor"))
    if inner_actor is not None and inner_actor != actor.uri:
        raise Refused("Undo of someone else's activity")
    kind = type_of(inner)
    undoer = _UNDOERS.get(kind or "")
    if undoer is None:
        log.info("ignoring Undo of %s from %s", kind, actor.uri)
        return
    await undoer(ctx, actor, inner_id, inner)


# --- accounts ---------------------------------------------------------------------------


async def handle_block(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Block of a local account: as a block here (follows end both ways); the blocked
    user is not told."""
    target = await _local_account(ctx, activity.object_id)
    await ctx.relationships.block(actor.id, target.id, uri=activity.id, federate=False)


async def handle_move(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Move: local followers follow the new account instead, if it names the old one."""
    if activity.object_id != actor.uri or activity.target_id is None:
        raise Refused("Move of another account, or without a target")
    try:
        new = await ctx.resolver.actor(activity.target_id, refresh=True)
    except ResolveError as exc:
        raise Refused(f"Move target unavailable: {exc.message}") from exc
    if new.id == actor.id or actor.uri not in new.also_known_as:
        raise Refused(f"{new.uri} does not list {actor.uri} in alsoKnownAs")
    async with ctx.db.transaction() as conn:
        await account_store.set_moved_to(conn, actor.id, new.id)
    for _, follower in await rel_store.local_followers(ctx.db, actor.id):
        await _move_follower(ctx, follower, actor, new)


async def _move_follower(ctx: Context, follower: Account, old: Account, new: Account) -> None:
    """Unfollow ``old`` and follow ``new`` for one local follower.

    Through the relationship service, as if the follower clicked: its events are
    what the outbox turns into Undo{Follow} and Follow for the two servers.
    """
    await ctx.relationships.unfollow(follower.id, old.id)
    try:
        await ctx.relationships.follow(follower.id, new.id)
    except XnodeError as exc:  # blocked either way, or moving onto oneself
        log.info("moving %s to %s: %s", follower.acct, new.acct, exc.message)


async def handle_flag(ctx: Context, activity: ParsedActivity, actor: Account) -> None:
    """Flag: a report about a local account (and some of its posts) for our admins."""
    target: Account | None = None
    posts: list[Post] = []
    for uri in activity.object_ids[:MAX_FLAG_OBJECTS]:
        if not ctx.resolver.is_local(uri):
            continue
        account = await ctx.resolver.known_account(uri)
        if account is not None:
            target = target or account
            continue
        post = await post_store.post_by_uri(ctx.db, uri)
        if post is not None and post.local:
            posts.append(post)
    if target is None and posts:
        target = await account_store.get_account(ctx.db, posts[0].account_id)
    if target is None:
        raise Refused("Flag names nobody on this node")
    content = str_of(activity.raw.get("content")) or ""
    comment = strip_control_chars(html_to_text(content), keep_newlines=True)[:MAX_REPORT_CHARS]
    async with ctx.db.transaction() as conn:
        await report_store.insert_report(
            conn, new_id(), reporter_id=actor.id, target_id=target.id,
            post_ids=[p.id for p in posts if p.account_id == target.id], comment=comment,
            activity_uri=activity.id, now=ctx.clock.now(),
        )


HANDLERS: dict[str, Handler] = {
    "Follow": handle_follow,
    "Accept": handle_accept,
    "Reject": handle_reject,
    "Undo": handle_undo,
    "Create": handle_create,
    "Update": handle_update,
    "Delete": handle_delete,
    "Like": handle_like,
    "EmojiReact": handle_emoji_react,
    "Announce": handle_announce,
    "Add": handle_add,
    "Remove": handle_remove,
    "Block": handle_block,
    "Move": handle_move,
    "Flag": handle_flag,
}
