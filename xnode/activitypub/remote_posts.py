"""Storing remote posts: visibility from addressing, mentions, tags, media links, replies.

Used through :class:`xnode.activitypub.resolver.Resolver` (``store_note``,
``update_note``, ``note``). The content is sanitised here, once, on the way in.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from federation.jsonld import PUBLIC_ADDRESSES
from federation.objects import ParsedNote
from xnode.accounts.models import Account
from xnode.activitypub.resolver import MAX_REPLY_FETCH_DEPTH, ResolveError
from xnode.dms.placement import MAX_PARTICIPANTS, place_message
from xnode.errors import XnodeError
from xnode.events import EventBus, NotificationCreated, PostEdited, PostPublished
from xnode.ids import new_id
from xnode.posts.content import html_to_text, normalize_tag
from xnode.posts.models import Post
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store.database import Connection, IntegrityError
from xnode.text import sanitize_html, strip_control_chars

if TYPE_CHECKING:
    from xnode.activitypub.resolver import Resolver

log = logging.getLogger(__name__)

MAX_REMOTE_MEDIA = 8
MAX_MENTION_LOOKUPS = 50
MAX_SUMMARY_CHARS = 1_000
MAX_ALT_TEXT = 1_500
_TAG = re.compile(r"\w{1,100}")
# Lemmy, WordPress and BookWyrm publish titled posts; they read best as articles.
_ARTICLE_TYPES = frozenset({"Article", "Page"})


def visibility_of(note: ParsedNote, author: Account) -> str:
    """Mastodon's visibility for a post, read back from its addressing.

    Public in ``to`` → public; Public in ``cc`` (or ``audience``) → unlisted; the
    author's followers collection → followers; anything else → direct.
    ChatMessage (Pleroma, Lemmy) is always a direct message.
    """
    if note.type == "ChatMessage":
        return "direct"
    if any(address in PUBLIC_ADDRESSES for address in note.to):
        return "public"
    if any(address in PUBLIC_ADDRESSES for address in (*note.cc, *note.audience)):
        return "unlisted"
    # Some servers address ``<actor>/followers`` without publishing ``followers``.
    followers = {author.followers_url, f"{author.uri}/followers"} - {None}
    if followers & set(note.recipients):
        return "followers"
    return "direct"


def _timestamp(moment: datetime | None, now: float) -> float:
    """A sender's timestamp, never in the future (clocks and liars both exist)."""
    return min(moment.timestamp(), now) if moment is not None else now


def _content_html(note: ParsedNote, kind: str) -> str:
    """Sanitised HTML for the post body, with what we cannot show natively spelled out."""
    body = note.content
    if not body.strip() and note.name and kind == "note":
        body = f"<p>{html.escape(note.name)}</p>"  # PeerTube videos, Mobilizon events
    if note.poll is not None:
        # Polls are read-only here: list the options (and votes, when published).
        items = "".join(
            f"<li>{html.escape(o.name)}"
            + (f" ({o.votes})" if o.votes is not None else "")
            + "</li>"
            for o in note.poll.options
        )
        body += f"<ul>{items}</ul>"
    if note.quote_url and note.quote_url not in body:
        quoted = html.escape(note.quote_url)
        body += f'<p>RE: <a href="{quoted}">{quoted}</a></p>'
    return sanitize_html(body)


def _summary(note: ParsedNote) -> str:
    text = html_to_text(note.summary) if note.summary else ""
    return strip_control_chars(text).strip()[:MAX_SUMMARY_CHARS]


def _media_rows(
    note: ParsedNote, author: Account, post_id: int, now: float
) -> list[dict[str, Any]]:
    return [
        {
            "id": new_id(),
            "account_id": author.id,
            "post_id": post_id,
            "remote_url": attachment.url,
            "content_type": (attachment.media_type or "application/octet-stream")[:100],
            "width": attachment.width,
            "height": attachment.height,
            "description": strip_control_chars(attachment.name or "")[:MAX_ALT_TEXT],
            "position": position,
            "created_at": now,
        }
        for position, attachment in enumerate(note.attachments[:MAX_REMOTE_MEDIA])
    ]


def _tags(note: ParsedNote) -> list[str]:
    tags = (normalize_tag(name) for name in note.hashtags)
    return [tag for tag in dict.fromkeys(tags) if _TAG.fullmatch(tag)]


class NoteWriter:
    """Writes remote posts, their mentions, tags, media and notifications."""

    def __init__(self, resolver: Resolver, events: EventBus | None = None) -> None:
        self.resolver = resolver
        self.db = resolver.db
        self.clock = resolver.clock
        self.events = events
        # Conversations we give an id to (opened by a remote message with no context).
        self.contexts_url = f"{resolver.settings.base_url}/contexts"

    async def mentioned(self, note: ParsedNote, *, fetch_unknown: bool = False) -> list[Account]:
        """Accounts the post mentions: Mention tags we know, and local addressees.

        Local accounts addressed in ``to``/``cc`` count as mentioned even without a
        tag (Pleroma ChatMessages and Lemmy private messages carry none); that is
        what lets them see a direct post.
        """
        candidates = list(note.mentions[:MAX_MENTION_LOOKUPS])
        candidates += [uri for uri in (*note.to, *note.cc) if self.resolver.is_local(uri)]
        # Every participant of a group DM must be known, or replies would leave
        # the unknown ones out of the conversation: fetch them (bounded).
        fetch = fetch_unknown and len(candidates) <= MAX_PARTICIPANTS
        found: dict[int, Account] = {}
        for uri in dict.fromkeys(candidates):
            account = await self.resolver.known_account(uri)
            if account is None and fetch and not self.resolver.is_local(uri):
                try:
                    account = await self.resolver.actor(uri)
                except XnodeError as exc:
                    log.info("DM participant %s not resolved: %s", uri, exc)
            if account is not None and not account.is_deleted:
                found[account.id] = account
        return list(found.values())

    async def _parent(self, note: ParsedNote, author: Account, depth: int) -> Post | None:
        """The post replied to, fetched (bounded) when unknown, if the author may see it."""
        if note.in_reply_to is None:
            return None
        parent = await post_store.post_by_uri(self.db, note.in_reply_to)
        if parent is None and depth < MAX_REPLY_FETCH_DEPTH:
            parent = await self.resolver.note(note.in_reply_to, depth=depth + 1)
        if parent is None or parent.is_boost:
            return None
        # Replying to a post one cannot see must not attach to (or reveal) it.
        if not await post_store.can_see(self.db, author.id, parent.id):
            log.info("%s replies to post %d it cannot see", author.uri, parent.id)
            return None
        return parent

    async def store(
        self, note: ParsedNote, author: Account, *, depth: int = 0, notify: bool = True
    ) -> Post:
        """Store a remote post; a post already stored under its id is returned as is.

        ``notify=False`` for posts read from an outbox or a collection rather than
        delivered: they are old news, and nobody is notified of them now.

        Raises:
            ResolveError: the post is not attributed to ``author``, or its id is taken
                by another account.
        """
        post_id, post = await self._store(note, author, depth=depth, notify=notify)
        if post is None:
            post = await post_store.get_post(self.db, post_id)
            assert post is not None
        return post

    async def store_id(self, note: ParsedNote, author: Account) -> int:
        """:meth:`store` for a delivered post, giving only its id.

        The inbox's Create has no use for the stored post: reading it back after the
        insert was a round trip per activity for nothing.

        Raises:
            ResolveError: as :meth:`store`.
        """
        post_id, _ = await self._store(note, author, depth=0, notify=True)
        return post_id

    async def _store(
        self, note: ParsedNote, author: Account, *, depth: int, notify: bool
    ) -> tuple[int, Post | None]:
        """:meth:`store`'s work: the post's id, and the post when it was read anyway
        (already stored), else None."""
        if note.attributed_to != author.uri:
            raise ResolveError(f"{note.id} is not by {author.uri}")
        existing = await post_store.post_by_uri(self.db, note.id)
        if existing is not None:
            if existing.account_id != author.id:
                raise ResolveError(f"{note.id} already belongs to another account")
            return existing.id, existing
        parent = await self._parent(note, author, depth)
        kind = "article" if note.type in _ARTICLE_TYPES and note.name else (
            "question" if note.type == "Question" else "note"
        )
        visibility = visibility_of(note, author)
        mentioned = await self.mentioned(note, fetch_unknown=visibility == "direct")
        now = self.clock.now()
        content_html = _content_html(note, kind)
        summary = _summary(note)
        title = strip_control_chars(note.name or "")[:200] if kind == "article" else ""
        post_id = new_id()
        try:
            notified = await self._insert(
                note, author, post_id=post_id, kind=kind, title=title, content_html=content_html,
                summary=summary, visibility=visibility, parent=parent, mentioned=mentioned,
                now=now, notify=notify,
            )
        except IntegrityError:
            # Stored meanwhile by another path (a reply's parent fetched twice).
            existing = await post_store.post_by_uri(self.db, note.id)
            if existing is None or existing.account_id != author.id:
                raise
            return existing.id, existing
        await self._announce(notified, PostPublished(post_id, author.id))
        return post_id, None

    async def _insert(
        self, note: ParsedNote, author: Account, *, post_id: int, kind: str, title: str,
        content_html: str, summary: str, visibility: str, parent: Post | None,
        mentioned: list[Account], now: float, notify: bool = True,
    ) -> list[int]:
        """Write the post and everything hanging off it in one transaction."""
        context = (parent.context if parent is not None else None) or note.context or (
            note.conversation
        )
        async with self.db.transaction() as conn:
            await post_store.insert_post(
                conn, id=post_id, account_id=author.id, uri=note.id, url=note.url or note.id,
                kind=kind, title=title, source="", source_format="html",
                content_html=content_html, summary=summary,
                sensitive=int(note.sensitive or bool(summary)), visibility=visibility,
                language=(note.language or None) and note.language[:35],
                in_reply_to_id=parent.id if parent else None, in_reply_to_uri=note.in_reply_to,
                reblog_of_id=None, context=context, local=0,
                created_at=_timestamp(note.published, now),
            )  # fmt: skip
            await self._write_parts(
                conn, post_id, note, author, [m.id for m in mentioned], now, new=True
            )
            refused: tuple[int, ...] = ()
            if visibility == "direct":
                placement = await place_message(
                    conn, post_id=post_id, author=author, recipients=mentioned, now=now,
                    parent_id=parent.id if parent else None, context=context,
                    contexts_url=self.contexts_url,
                )
                refused = placement.refused
            replied: list[tuple[int, str]] = []
            if parent is not None:
                await post_store.add_to_counter(conn, parent.id, "replies_count", 1)
                replied.append((parent.account_id, "reply"))
            notify_list: list[tuple[int, str]] = []
            if notify:
                notify_list = [*replied, *((m.id, "mention") for m in mentioned if m.is_local)]
            notify_list = [
                (recipient, kind) for recipient, kind in notify_list if recipient not in refused
            ]
            notified = await self._notify(conn, notify_list, author.id, post_id, now)
            if visibility != "direct":
                # Last: see PostService.publish.
                text = "\n".join(t for t in (title, summary, html_to_text(content_html)) if t)
                await post_store.index_text(conn, post_id, text, new=True)
            return notified

    @staticmethod
    async def _write_parts(
        conn: Connection, post_id: int, note: ParsedNote, author: Account,
        mentioned: list[int], now: float, *, new: bool = False,
    ) -> None:
        await post_store.set_mentions(conn, post_id, mentioned, new=new)
        await post_store.set_tags(conn, post_id, _tags(note), new=new)
        media = _media_rows(note, author, post_id, now)
        await post_store.replace_remote_media(conn, post_id, media, new=new)

    async def _notify(
        self, conn: Connection, targets: list[tuple[int, str]], from_id: int,
        post_id: int, now: float,
    ) -> list[int]:
        done: list[int] = []
        for recipient, kind in targets:
            if recipient not in done and await notification_store.insert_notification(
                conn, new_id(), recipient_id=recipient, kind=kind, from_id=from_id,
                post_id=post_id, now=now,
            ):
                done.append(recipient)
        return done

    async def _announce(self, recipients: list[int], event: object | None) -> None:
        """Publish what changed (the outbox ignores remote authors; live updates do not)."""
        if self.events is None:
            return
        if event is not None:
            await self.events.publish(event)
        for recipient in recipients:
            await self.events.publish(NotificationCreated(recipient))

    async def update(self, note: ParsedNote, author: Account) -> Post | None:
        """Apply an Update to a stored post by ``author``; None when we never stored it.

        The previous version goes to the edit history. Visibility never changes on
        edit (Mastodon ignores that too); mentions only grow, so an edit cannot
        take a message away from someone it was already shown to.
        """
        post = await post_store.post_by_uri(self.db, note.id)
        if post is None or post.account_id != author.id or post.is_deleted or post.is_boost:
            return None
        mentioned = await self.mentioned(note)
        now = self.clock.now()
        content_html = _content_html(note, post.kind)
        summary = _summary(note)
        title = strip_control_chars(note.name or "")[:200] if post.kind == "article" else ""
        unchanged = (content_html, summary, title, note.sensitive or bool(summary)) == (
            post.content_html, post.summary, post.title, post.sensitive
        )
        async with self.db.transaction() as conn:
            if not unchanged:
                await post_store.save_edit(conn, new_id(), post)
                await post_store.update_content(
                    conn, post.id, title=title, source="", source_format="html",
                    content_html=content_html, summary=summary,
                    sensitive=note.sensitive or bool(summary),
                    edited_at=_timestamp(note.updated, now),
                )  # fmt: skip
            keep = (await post_store.mentions_of(self.db, [post.id])).get(post.id, [])
            every = [*keep, *(m.id for m in mentioned)]
            await self._write_parts(conn, post.id, note, author, every, now)
            if post.visibility != "direct":
                text = "\n".join(t for t in (title, summary, html_to_text(content_html)) if t)
                await post_store.index_text(conn, post.id, text)
            new = [m for m in mentioned if m.is_local and m.id not in keep]
            notified = await self._notify(conn, [(m.id, "mention") for m in new], author.id,
                                          post.id, now)  # fmt: skip
        await self._announce(notified, None if unchanged else PostEdited(post.id, author.id))
        return await post_store.get_post(self.db, post.id)
