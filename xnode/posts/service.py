"""Writing and reading posts: publish, edit, delete, like, boost, bookmark, pin.

Every read goes through :meth:`PostService.hydrate`, which applies the
visibility rule (:mod:`xnode.posts.visibility`) to each post it returns; list
queries filter in SQL first so pages stay full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.dms.placement import place_message
from xnode.errors import Conflict, Forbidden, InvalidInput, NotFound, XnodeError
from xnode.events import (
    EventBus,
    Liked,
    NotificationCreated,
    PinChanged,
    PostDeleted,
    PostEdited,
    PostPublished,
)
from xnode.ids import new_id
from xnode.media import POST_IMAGE, THUMBNAIL, MediaStore, process_image
from xnode.posts import content
from xnode.posts.models import (
    BOOSTABLE,
    VISIBILITIES,
    MediaAttachment,
    Post,
    PostEdit,
    PostView,
    ViewerState,
)
from xnode.posts.visibility import Audience, can_view
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import deliveries as delivery_store
from xnode.store import hydration as hydration_store
from xnode.store import idempotency as idempotency_store
from xnode.store import likes as like_store
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store
from xnode.store.database import Connection, Database

if TYPE_CHECKING:
    from xnode.timelines import Cursor

MAX_NOTE_CHARS = 5_000
MAX_ARTICLE_CHARS = 100_000
MAX_TITLE_CHARS = 200
MAX_SUMMARY_CHARS = 500
MAX_MEDIA = 4
MAX_ALT_TEXT = 1_500
MAX_PINS = 5
# How long a client API ``Idempotency-Key`` keeps answering with the status it created.
IDEMPOTENCY_WINDOW_S = 24 * 3600
_KEY_WAIT_ROUNDS, _KEY_WAIT_S = 100, 0.02
# How long an image uploaded ahead of its post waits to be attached.
UPLOAD_TTL_S = 24 * 3600

HandleResolver = Callable[[content.Handle], Awaitable[Account | None]]
# ISO 639-1/-3 codes, optionally with a region or script (``en``, ``pt-BR``, ``zh-Hant``).
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")


class _KeyTaken(Exception):
    """Another request with the same Idempotency-Key won the race (rolls back this one)."""


def _check_focus(focus: tuple[float, float] | None) -> None:
    """A focal point must lie in the image: -1..1 both ways."""
    if focus is not None and not all(-1.0 <= value <= 1.0 for value in focus):
        raise InvalidInput("The focus must be two numbers from -1 to 1.", field="focus")


class Gone(XnodeError):
    """The post was deleted (HTTP 410)."""

    status = 410


@dataclass(frozen=True)
class ImageUpload:
    """An image to attach, with its alt text."""

    data: bytes
    description: str = ""


@dataclass(frozen=True)
class Draft:
    """What the compose form (or an article form) submits."""

    source: str
    visibility: str = "public"
    summary: str = ""
    sensitive: bool = False
    source_format: str = "plain"
    kind: str = "note"
    title: str = ""
    in_reply_to_id: int | None = None
    images: Sequence[ImageUpload] = field(default_factory=tuple)
    # Direct messages: addressees beyond those mentioned in the text, and the
    # conversation the message is written in (see :mod:`xnode.dms`).
    recipients: Sequence[Account] = field(default_factory=tuple)
    conversation_id: int | None = None
    context: str | None = None
    # Images the author uploaded beforehand (the client API's ``media_ids``): their own
    # unattached ``media_attachments`` rows, attached in the post's transaction, after
    # ``images`` in this order.
    media_ids: Sequence[int] = field(default_factory=tuple)
    # The post's language as the client states it (ISO 639), if it does.
    language: str | None = None


@dataclass(frozen=True)
class Thread:
    """A post with the posts it answers (root first) and the replies below it."""

    ancestors: list[PostView]
    post: PostView
    descendants: list[tuple[PostView, int]]


class PostService:
    """The rules for posts and interactions with them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        events: EventBus,
        media: MediaStore,
        resolve_handle: HandleResolver | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.events = events
        self.media = media
        self.resolve_handle = resolve_handle or self._known_account

    # --- URLs ----------------------------------------------------------------

    def profile_url(self, account: Account) -> str:
        """The public page of an account."""
        if account.is_local:
            return f"{self.settings.base_url}/@{account.username}"
        return account.url or account.uri or ""

    def tag_url(self, tag: str) -> str:
        """The page of a hashtag."""
        return f"{self.settings.base_url}/tags/{tag}"

    # --- publishing ----------------------------------------------------------

    async def _known_account(self, handle: content.Handle) -> Account | None:
        domain = handle.domain
        if domain is None or domain == self.settings.domain.lower():
            return await account_store.get_local_account(self.db, handle.username)
        return await account_store.get_remote_account_by_handle(self.db, handle.username, domain)

    async def _resolve_mentions(self, handles: Sequence[content.Handle]) -> dict[str, Account]:
        found: dict[str, Account] = {}
        for handle in handles:
            account = await self.resolve_handle(handle)
            if account is not None and not account.is_deleted and not account.is_suspended:
                found[handle.key] = account
        return found

    def _check_draft(self, draft: Draft, *, has_media: bool = False) -> None:
        if draft.visibility not in VISIBILITIES:
            raise InvalidInput("Choose who can see the post.", field="visibility")
        if draft.kind not in ("note", "article"):
            raise InvalidInput("Unknown kind of post.", field="kind")
        if draft.source_format not in ("plain", "markdown"):
            raise InvalidInput("Unknown text format.", field="source_format")
        limit = MAX_ARTICLE_CHARS if draft.kind == "article" else MAX_NOTE_CHARS
        if not draft.source.strip() and not (draft.images or draft.media_ids or has_media):
            raise InvalidInput("Write something first.", field="source")
        if len(draft.source) > limit:
            raise InvalidInput(
                f"Posts are limited to {limit:,} characters ({len(draft.source):,} given).",
                field="source",
            )
        if draft.kind == "article" and not draft.title.strip():
            raise InvalidInput("Articles need a title.", field="title")
        if len(draft.title) > MAX_TITLE_CHARS:
            raise InvalidInput(
                f"Titles are limited to {MAX_TITLE_CHARS} characters.", field="title"
            )
        if len(draft.summary) > MAX_SUMMARY_CHARS:
            raise InvalidInput(
                f"Content warnings are limited to {MAX_SUMMARY_CHARS} characters.", field="summary"
            )
        if len(draft.images) + len(draft.media_ids) > MAX_MEDIA:
            raise InvalidInput(f"At most {MAX_MEDIA} images per post.", field="images")
        if draft.language is not None and not LANGUAGE_CODE.fullmatch(draft.language):
            raise InvalidInput("The language must be an ISO 639 code.", field="language")
        for image in draft.images:
            self._check_alt_text(image.description)

    @staticmethod
    def _check_alt_text(description: str) -> None:
        if len(description) > MAX_ALT_TEXT:
            raise InvalidInput(
                f"Image descriptions are limited to {MAX_ALT_TEXT} characters.", field="images"
            )

    async def _check_uploads(
        self, account_id: int, media_ids: Sequence[int], post_id: int | None = None
    ) -> None:
        """Refuse media ids that are not the account's own unattached uploads (or, when
        editing, already on ``post_id``): nobody attaches someone else's image."""
        if len(set(media_ids)) != len(media_ids):
            raise InvalidInput("The same media is attached twice.", field="media_ids")
        found = await post_store.get_attachments(self.db, media_ids)
        for media_id in media_ids:
            media = found.get(media_id)
            if (
                media is None
                or media.account_id != account_id
                or media.post_id not in (None, post_id)
            ):
                raise InvalidInput(
                    f"Media {media_id} is not an upload of yours waiting to be attached.",
                    field="media_ids",
                )

    async def _render(
        self, source: str, source_format: str
    ) -> tuple[str, list[Account], list[str]]:
        entities = content.extract_entities(source)
        mentioned = await self._resolve_mentions(entities.handles)
        targets = content.LinkTargets(
            {key: self.profile_url(acc) for key, acc in mentioned.items()}, self.tag_url
        )
        html = content.render(source, source_format, targets)
        return html, list(mentioned.values()), list(entities.tags)

    async def _store_images(
        self, account_id: int, images: Sequence[ImageUpload]
    ) -> list[dict[str, Any]]:
        """Decode and store every image before the post is written (all or nothing)."""
        rows = []
        for position, image in enumerate(images):
            try:
                rows.append(await self._store_image(account_id, image, position))
            except XnodeError as exc:
                raise type(exc)(f"Image {position + 1}: {exc.message}", field="images") from None
        return rows

    async def _store_image(
        self, account_id: int, image: ImageUpload, position: int
    ) -> dict[str, Any]:
        """Decode, re-encode and store one image and its thumbnail (in a thread: Pillow
        would hold the event loop); the ``media_attachments`` row to write."""
        full = await asyncio.to_thread(
            process_image, image.data, POST_IMAGE, self.settings.max_upload_bytes
        )
        thumb = await asyncio.to_thread(
            process_image, image.data, THUMBNAIL, self.settings.max_upload_bytes
        )
        return {
            "id": new_id(),
            "account_id": account_id,
            "file_name": self.media.save(full),
            "thumbnail_file": self.media.save(thumb),
            "content_type": full.content_type,
            "width": full.width,
            "height": full.height,
            "description": image.description.strip(),
            "position": position,
            "created_at": self.clock.now(),
        }

    # --- uploads before posting (the client API's media) ------------------------

    async def upload_media(
        self, account_id: int, image: ImageUpload, focus: tuple[float, float] | None = None
    ) -> MediaAttachment:
        """Store an image uploaded ahead of its post: an unattached attachment of the
        uploader's, which :meth:`publish` attaches when a draft names it in ``media_ids``.

        Raises:
            InvalidInput: not an image, too many pixels, alt text or focus out of bounds.
            PayloadTooLarge: over the upload limit.
        """
        self._check_alt_text(image.description)
        _check_focus(focus)
        row = await self._store_image(account_id, image, 0)
        focus_x, focus_y = focus if focus is not None else (None, None)
        async with self.db.transaction() as conn:
            # Uploads never posted (or kept from a deleted post for a redraft) are kept
            # a day, as Mastodon does; each new upload clears the uploader's older ones.
            await post_store.prune_uploads(conn, account_id, self.clock.now() - UPLOAD_TTL_S)
            await post_store.insert_media(
                conn, post_id=None, focus_x=focus_x, focus_y=focus_y, **row
            )
        return await self.own_media(account_id, row["id"])

    async def own_media(self, account_id: int, media_id: int) -> MediaAttachment:
        """One of the account's own attachments, attached or not.

        Raises:
            NotFound: no such attachment, or someone else's (the same answer).
        """
        media = await post_store.get_attachment(self.db, media_id)
        if media is None or media.account_id != account_id:
            raise NotFound("No such media.")
        if media.post_id is not None:
            post = await post_store.get_post(self.db, media.post_id)
            if post is None or post.is_deleted:
                raise NotFound("No such media.")
        return media

    async def describe_media(
        self, account_id: int, media_id: int, *, description: str,
        focus: tuple[float, float] | None,
    ) -> MediaAttachment:
        """Change the alt text and focal point of one's own attachment; on a published
        post the change reaches its readers (and other servers) as an edit of the post.

        Raises:
            NotFound: not one of the account's attachments.
            InvalidInput: alt text too long, focus outside -1..1.
        """
        media = await self.own_media(account_id, media_id)
        self._check_alt_text(description)
        _check_focus(focus)
        async with self.events.change(self.db) as change:
            await post_store.describe_media(
                change.conn, media.id, description=description.strip(), focus=focus
            )
            if media.post_id is not None:
                change.emit(PostEdited(media.post_id, account_id))
        return await self.own_media(account_id, media_id)

    async def publish(
        self, author: Account, draft: Draft, *, idempotency_key: str | None = None
    ) -> Post:
        """Publish a note or article.

        With an ``idempotency_key`` (the client API's header), a key the author used in
        the last day returns the post it created instead of publishing again, so a
        retried request never posts twice.

        Raises:
            InvalidInput: the draft breaks a limit, an image is not an image, or a media
                id is not the author's own unattached upload.
            PayloadTooLarge: an image is over the upload limit.
            NotFound: the post replied to does not exist or is not visible.
        """
        if idempotency_key is not None:
            earlier = await self._idempotent(author.id, idempotency_key)
            if earlier is not None:
                return earlier
        try:
            return await self._publish(author, draft, idempotency_key)
        except _KeyTaken:
            # A request with the same key was written while this one was being prepared;
            # it may share this one's commit group (xnode/store/database.py), so wait the
            # moment it takes to be committed and readable.
            for _ in range(_KEY_WAIT_ROUNDS):
                earlier = await self._idempotent(author.id, idempotency_key or "")
                if earlier is not None:
                    return earlier
                await asyncio.sleep(_KEY_WAIT_S)
            raise Conflict("The request is being processed; try again.") from None

    async def _idempotent(self, account_id: int, key: str) -> Post | None:
        since = self.clock.now() - IDEMPOTENCY_WINDOW_S
        post_id = await idempotency_store.find(self.db, account_id, key, since)
        return None if post_id is None else await post_store.get_post(self.db, post_id)

    async def _publish(self, author: Account, draft: Draft, idempotency_key: str | None) -> Post:
        self._check_draft(draft)
        if draft.media_ids:
            await self._check_uploads(author.id, draft.media_ids)
        parent: Post | None = None
        if draft.in_reply_to_id is not None:
            parent = await self._visible_post(author.id, draft.in_reply_to_id)
        html, mentioned, tags = await self._render(draft.source, draft.source_format)
        known = {m.id for m in mentioned}
        mentioned += [r for r in draft.recipients if r.id not in known and r.id != author.id]
        if parent is not None and parent.account_id != author.id:
            # The author of the post replied to is always addressed (cc in ActivityPub).
            parent_author = await account_store.get_account(self.db, parent.account_id)
            if parent_author is not None and parent_author.id not in {m.id for m in mentioned}:
                mentioned.append(parent_author)
        media_rows = await self._store_images(author.id, draft.images)
        post_id = new_id()
        now = self.clock.now()
        base = self.settings.base_url
        uri = f"{base}/users/{author.username}/statuses/{post_id}"
        notify: list[tuple[int, str]] = []
        context = draft.context or (
            parent.context if parent and parent.context else f"{base}/contexts/{post_id}"
        )
        async with self.events.change(self.db) as change:
            conn = change.conn
            await post_store.insert_post(
                conn,
                id=post_id,
                account_id=author.id,
                uri=uri,
                url=f"{base}/@{author.username}/{post_id}",
                kind=draft.kind,
                title=draft.title.strip(),
                source=draft.source,
                source_format=draft.source_format,
                content_html=html,
                summary=draft.summary.strip(),
                sensitive=int(draft.sensitive),
                visibility=draft.visibility,
                language=draft.language,
                in_reply_to_id=parent.id if parent else None,
                in_reply_to_uri=parent.uri if parent else None,
                context=context,
                local=1,
                created_at=now,
            )
            await post_store.set_mentions(conn, post_id, [m.id for m in mentioned], new=True)
            refused: tuple[int, ...] = ()
            if draft.visibility == "direct":
                placement = await place_message(
                    conn, post_id=post_id, author=author, recipients=mentioned, now=now,
                    conversation_id=draft.conversation_id,
                    parent_id=parent.id if parent else None, context=context,
                )
                refused = placement.refused
            await post_store.set_tags(conn, post_id, tags, new=True)
            for row in media_rows:
                await post_store.insert_media(conn, post_id=post_id, **row)
            if draft.media_ids and not await post_store.attach_media(
                conn, author.id, post_id, draft.media_ids, first_position=len(media_rows)
            ):
                # Attached to another post (or deleted) since the check above.
                raise InvalidInput("The media is no longer available.", field="media_ids")
            if idempotency_key is not None and not await idempotency_store.remember(
                conn, author.id, idempotency_key, post_id, now, now - IDEMPOTENCY_WINDOW_S
            ):
                raise _KeyTaken()
            if parent is not None:
                await post_store.add_to_counter(conn, parent.id, "replies_count", 1)
                if parent.account_id != author.id:
                    notify.append((parent.account_id, "reply"))
            notify.extend((m.id, "mention") for m in mentioned if m.id != author.id)
            notify = [(recipient, kind) for recipient, kind in notify if recipient not in refused]
            notified = await self._notify(conn, notify, author.id, post_id, now)
            if draft.visibility != "direct":
                # Last in the transaction: FTS5 writes out its pending terms whenever
                # a later statement opens a statement savepoint (the notification
                # insert does), which cost about 70 us per post on the inbox's path.
                await post_store.index_text(
                    conn, post_id, self._search_text(draft, html), new=True
                )
            change.emit(PostPublished(post_id, author.id))
            for recipient in notified:
                change.emit(NotificationCreated(recipient))
        post = await post_store.get_post(self.db, post_id)
        assert post is not None
        return post

    @staticmethod
    def _search_text(draft: Draft, html: str) -> str:
        return "\n".join(t for t in (draft.title, draft.summary, content.html_to_text(html)) if t)

    async def _notify(
        self,
        conn: Connection,
        targets: list[tuple[int, str]],
        from_id: int,
        post_id: int,
        now: float,
    ) -> list[int]:
        """Write notifications (one per recipient, replies before mentions)."""
        done: list[int] = []
        for recipient, kind in targets:
            if recipient in done:
                continue
            if await notification_store.insert_notification(
                conn,
                new_id(),
                recipient_id=recipient,
                kind=kind,
                from_id=from_id,
                post_id=post_id,
                now=now,
            ):
                done.append(recipient)
        return done

    # --- changing and removing -----------------------------------------------

    async def _own_post(self, account_id: int, post_id: int) -> Post:
        post = await post_store.get_post(self.db, post_id)
        if post is None or post.is_boost:
            raise NotFound("No such post.")
        if post.account_id != account_id:
            raise Forbidden("Only the author can change this post.")
        if post.is_deleted:
            raise Gone("This post was deleted.")
        return post

    async def edit(
        self,
        account_id: int,
        post_id: int,
        *,
        source: str,
        summary: str,
        sensitive: bool,
        title: str = "",
        media_ids: Sequence[int] | None = None,
    ) -> Post:
        """Edit one's own post, keeping the previous version in its history.

        ``media_ids`` (the client API's edit), when given, is the post's whole new set of
        images in order: ones already on the post and the author's own new uploads;
        attachments left out are removed. None keeps the images as they are.

        Raises:
            NotFound, Forbidden, Gone: not an editable post of this author.
            InvalidInput: the new text breaks a limit, or a media id is not the author's.
        """
        post = await self._own_post(account_id, post_id)
        draft = Draft(
            source=source,
            visibility=post.visibility,
            summary=summary,
            sensitive=sensitive,
            source_format=post.source_format,
            kind=post.kind,
            title=title or post.title,
        )
        if media_ids is None:
            has_media = bool((await post_store.media_of(self.db, [post.id])).get(post.id))
        else:
            has_media = bool(media_ids)
            draft = dataclasses.replace(draft, media_ids=tuple(media_ids))
            await self._check_uploads(account_id, media_ids, post.id)
            current = await self._media_ids_of(post.id)
        self._check_draft(draft, has_media=has_media)
        html, mentioned, tags = await self._render(source, post.source_format)
        now = self.clock.now()
        async with self.events.change(self.db) as change:
            conn = change.conn
            await post_store.save_edit(conn, new_id(), post)
            await post_store.update_content(
                conn,
                post.id,
                title=draft.title.strip(),
                source=source,
                source_format=post.source_format,
                content_html=html,
                summary=summary.strip(),
                sensitive=sensitive,
                edited_at=now,
            )
            if media_ids is not None:
                new = [m for m in media_ids if m not in current]
                if not await post_store.attach_media(conn, account_id, post.id, new):
                    raise InvalidInput("The media is no longer available.", field="media_ids")
                await post_store.reorder_media(conn, post.id, media_ids)
            keep = {m for m in (await post_store.mentions_of(self.db, [post.id])).get(post.id, [])}
            await post_store.set_mentions(conn, post.id, [*keep, *(m.id for m in mentioned)])
            await post_store.set_tags(conn, post.id, tags)
            if post.visibility != "direct":
                await post_store.index_text(conn, post.id, self._search_text(draft, html))
            change.emit(PostEdited(post.id, account_id))
        updated = await post_store.get_post(self.db, post.id)
        assert updated is not None
        return updated

    async def delete(self, account_id: int, post_id: int, *, keep_media: bool = False) -> None:
        """Delete one's own post: a tombstone stays, replies keep their place.

        ``keep_media`` (the client API's "delete and redraft") leaves the post's images
        as the author's unattached uploads, so the redrafted post can attach them again.

        Raises:
            NotFound, Forbidden, Gone: not a deletable post of this author.
        """
        post = await self._own_post(account_id, post_id)
        await self._remove(post, keep_media=keep_media)

    async def remove_remote(self, post: Post) -> None:
        """Apply a deletion from a remote post's own server: a Delete of a post or boost,
        an Undo Announce, a Lemmy community's relayed Delete.

        The same cleanup as a local delete (:meth:`delete`): counters, reactions,
        notifications, boosts, media.
        """
        await self._remove(post)

    async def _remove(self, post: Post, *, keep_media: bool = False) -> None:
        """The one path by which a post or boost leaves, whoever deletes it.

        A local author's deletion must reach other servers, so it is a kept change
        (the outbox); a remote one's only concerns this node's tabs and streams,
        so it is published after its transaction.
        """
        mentioned: list[int] = []
        if not post.is_boost:
            mentioned = (await post_store.mentions_of(self.db, [post.id])).get(post.id, [])
        event = PostDeleted(post.id, post.account_id, post.uri, post.visibility, tuple(mentioned))
        async with self.events.change(self.db, federate=post.local) as change:
            await self._remove_rows(change.conn, post, keep_media=keep_media)
            change.emit(event)

    async def _remove_rows(
        self, conn: Connection, post: Post, *, keep_media: bool
    ) -> None:
        if post.is_boost:
            await post_store.delete_boost(conn, post)
            return
        if keep_media:
            await post_store.detach_media(conn, post.id)
        await post_store.delete_post(conn, post.id, self.clock.now())

    # --- interactions --------------------------------------------------------

    async def like(self, account_id: int, post_id: int, on: bool = True) -> None:
        """Like (or unlike) a post the account can see.

        Raises:
            NotFound: no such post, or not visible.
        """
        post = await self._visible_post(account_id, post_id)
        if on:
            await self.add_like(account_id, post)
        else:
            await self.remove_like(account_id, post.id)

    async def add_like(
        self, account_id: int, post: Post, *, uri: str | None = None, federate: bool = True
    ) -> bool:
        """The one path of a like, whoever likes: a click here, or a Like from another
        server (``uri`` its id, ``federate=False``: nothing to send). The like, the post's
        counter and the author's notification in one transaction. False if the account
        already liked the post (nothing changes)."""
        now = self.clock.now()
        async with self.events.change(self.db, federate=federate) as change:
            conn = change.conn
            created = await like_store.add_like(conn, new_id(), account_id, post.id, uri, now)
            if created:
                notified = await self._notify(
                    conn, [(post.account_id, "like")], account_id, post.id, now
                )
                change.emit(Liked(account_id, post.id))
                for recipient in notified:
                    change.emit(NotificationCreated(recipient))
        return created

    async def remove_like(
        self, account_id: int, post_id: int, *, federate: bool = True
    ) -> bool:
        """The one path of an unlike (here, or an Undo{Like} from another server with
        ``federate=False``): the like, the post's counter and the notification go. False if
        there was no like."""
        async with self.events.change(self.db, federate=federate) as change:
            removed = await like_store.remove_like(change.conn, account_id, post_id)
            if removed:
                change.emit(Liked(account_id, post_id, undone=True))
        return removed

    async def boost(self, account: Account, post_id: int, on: bool = True) -> None:
        """Boost (or un-boost) a public or unlisted post.

        Raises:
            NotFound: no such post, or not visible.
            Forbidden: the post is followers-only or direct.
        """
        post = await self._visible_post(account.id, post_id)
        if not on:
            existing = await post_store.boost_by(self.db, account.id, post.id)
            if existing is not None:
                # The same path as an Undo Announce from another server.
                await self._remove(existing)
            return
        if post.visibility not in BOOSTABLE:
            raise Forbidden("Only public and unlisted posts can be boosted.")
        boost_id = new_id()
        await self.add_boost(
            account.id, post, boost_id=boost_id,
            uri=f"{self.settings.base_url}/users/{account.username}/statuses/{boost_id}/activity",
            url=None, visibility="public" if post.visibility == "public" else "unlisted",
            created_at=self.clock.now(),
        )  # fmt: skip

    async def add_boost(
        self, account_id: int, post: Post, *, boost_id: int, uri: str | None, url: str | None,
        visibility: str, created_at: float, federate: bool = True,
    ) -> bool:
        """The one path of a boost, whoever boosts: a click here, or an Announce from
        another server (``federate=False``: nothing to send). The boost row, the post's
        counter and the author's notification in one transaction. False if the account
        already boosted the post (nothing changes)."""
        now = self.clock.now()
        async with self.events.change(self.db, federate=federate) as change:
            conn = change.conn
            created = await post_store.add_boost(
                conn, boost_id=boost_id, account_id=account_id, post_id=post.id, uri=uri,
                # A boost federates exactly when it is made here (a local row).
                url=url, visibility=visibility, local=federate, created_at=created_at,
            )  # fmt: skip
            if created:
                change.emit(PostPublished(boost_id, account_id))
                for recipient in await self._notify(
                    conn, [(post.account_id, "boost")], account_id, post.id, now
                ):
                    change.emit(NotificationCreated(recipient))
        return created

    async def bookmark(self, account_id: int, post_id: int, on: bool = True) -> None:
        """Bookmark (or un-bookmark) a visible post; bookmarks are private."""
        post = await self._visible_post(account_id, post_id)
        async with self.db.transaction() as conn:
            await post_store.set_flag(
                conn, "bookmarks", new_id(), account_id, post.id, self.clock.now(), on
            )

    async def pin(self, account_id: int, post_id: int, on: bool = True) -> None:
        """Pin (or unpin) one's own public or unlisted post to the profile.

        Raises:
            Forbidden: not one's own post, or not public/unlisted.
            Conflict: already at the pin limit.
        """
        post = await self._own_post(account_id, post_id)
        if on and post.visibility not in BOOSTABLE:
            raise Forbidden("Only public and unlisted posts can be pinned.")
        async with self.events.change(self.db) as change:
            conn = change.conn
            # Pinning an already pinned post changes nothing, so the limit does not apply.
            if (
                on
                and not await post_store.is_pinned(conn, account_id, post.id)
                and await post_store.count_pins(conn, account_id) >= MAX_PINS
            ):
                raise Conflict(f"You can pin at most {MAX_PINS} posts.")
            if await post_store.set_flag(
                conn, "pins", 0, account_id, post.id, self.clock.now(), on
            ):
                change.emit(PinChanged(account_id, post.id, unpinned=not on))

    # --- reading ---------------------------------------------------------------

    async def audiences(
        self,
        viewer_id: int | None,
        posts: Sequence[Post],
        authors: dict[int, Account],
        mentions: dict[int, list[int]],
        edges: tuple[set[int], set[int]] | None = None,
    ) -> dict[int, Audience]:
        """How the viewer stands towards each post (one query for follows and blocks, unless
        ``edges`` brings them, read beforehand: (followed authors, blocked authors))."""
        following: set[int] = set()
        blocked: set[int] = set()
        if edges is not None:
            following, blocked = edges
        elif viewer_id is not None:
            following, blocked = await relationship_store.viewer_edges(
                self.db, viewer_id, list({p.account_id for p in posts})
            )
        result = {}
        for post in posts:
            author = authors.get(post.account_id)
            result[post.id] = Audience(
                is_author=viewer_id == post.account_id,
                follows_author=post.account_id in following,
                mentioned=viewer_id is not None and viewer_id in mentions.get(post.id, ()),
                blocked=post.account_id in blocked,
                author_hidden=author is None or author.is_deleted or author.is_suspended,
            )
        return result

    async def feed(self, account_id: int, limit: int) -> list[PostView]:
        """An account's newest public posts of its own (threads included, no boosts, no
        replies to others), as a logged-out visitor sees them: its Atom and RSS feeds."""
        posts = await post_store.public_originals(self.db, account_id, limit)
        # Hydrating as a logged-out visitor re-applies the visibility rule.
        return await self.hydrate(None, posts)

    async def outbox_size(self, account_id: int) -> int:
        """How many posts and boosts an account's ActivityPub outbox holds (public and
        unlisted, live)."""
        return await post_store.count_outbox_posts(self.db, account_id)

    async def delivery_status(self, post_id: int) -> list[delivery_store.HostStatus]:
        """Which servers a post was delivered to, per host (only its author may see this:
        it reveals where the followers are)."""
        return await delivery_store.status_for_post(self.db, post_id)

    async def hydrate(
        self, viewer_id: int | None, posts: Sequence[Post], *, keep_deleted: bool = False
    ) -> list[PostView]:
        """Turn posts (and boost rows) into views, dropping what the viewer may not see."""
        # One read for all the rest (one statement on PostgreSQL), for every post: what
        # the viewer may not see is then not used.
        facts = await hydration_store.page_facts(
            self.db, viewer_id, posts, previews=self.settings.link_previews
        )
        originals = facts.originals
        everything = [*posts, *originals.values()]
        authors, mentions, mentioned_accounts = facts.authors, facts.mentions, facts.mentioned
        media, tags, states, previews = facts.media, facts.tags, facts.states, facts.previews
        parent_authors = facts.parent_authors
        audiences = await self.audiences(
            viewer_id, everything, authors, mentions, (facts.following, facts.blocked)
        )

        def replying_to(post: Post) -> Account | None:
            answered = parent_authors.get(post.in_reply_to_id or 0)
            if answered == post.account_id:
                return authors.get(answered)
            if answered is not None and answered in mentions.get(post.id, ()):
                return mentioned_accounts.get(answered)
            return None

        def view_of(post: Post) -> PostView:
            return PostView(
                post=post,
                author=authors[post.account_id],
                media=tuple(media.get(post.id, ())),
                mentions=tuple(
                    mentioned_accounts[a]
                    for a in mentions.get(post.id, ())
                    if a in mentioned_accounts
                ),
                tags=tuple(tags.get(post.id, ())),
                state=states.get(post.id, ViewerState()),
                replying_to=replying_to(post),
                preview=previews.get(post.id),
            )

        views: list[PostView] = []
        for post in posts:
            if not can_view(post.visibility, audiences[post.id]):
                continue
            if post.reblog_of_id is not None:
                original = originals.get(post.reblog_of_id)
                if (
                    original is None
                    or original.is_deleted
                    or not can_view(original.visibility, audiences[original.id])
                ):
                    continue
                view = view_of(original)
                views.append(
                    PostView(
                        **{**view.__dict__, "boost": post, "booster": authors[post.account_id]}
                    )
                )
            elif keep_deleted or not post.is_deleted:
                views.append(view_of(post))
        return views

    async def views(self, viewer_id: int | None, post_ids: Sequence[int]) -> list[PostView]:
        """The posts (or boosts) of these ids the viewer may see, in the order asked;
        missing, deleted and hidden ones are left out."""
        found = await post_store.get_posts(self.db, post_ids)
        wanted = [found[i] for i in dict.fromkeys(post_ids) if i in found]
        return await self.hydrate(viewer_id, wanted)

    async def boost_view(self, account_id: int, post_id: int) -> PostView:
        """The account's own boost of a post, as a view (the boost wrapping the original).

        Raises:
            NotFound: the account has not boosted the post (or may no longer see it).
        """
        boost = await post_store.boost_by(self.db, account_id, post_id)
        views = await self.hydrate(account_id, [boost]) if boost is not None else []
        if not views:
            raise NotFound("No such boost.")
        return views[0]

    async def _media_ids_of(self, post_id: int) -> set[int]:
        return {m.id for m in (await post_store.media_of(self.db, [post_id])).get(post_id, [])}

    async def liked_by(
        self, viewer_id: int | None, post_id: int, cursor: Cursor
    ) -> list[tuple[int, Account]]:
        """Who liked a post the viewer may see, newest like first, as (like id, account):
        the like ids are what pages of them are cursored by.

        Raises:
            NotFound, Gone: no such post, or not visible.
        """
        post = await self._visible_post(viewer_id, post_id)
        return await like_store.likers(self.db, post.id, cursor)

    async def boosted_by(
        self, viewer_id: int | None, post_id: int, cursor: Cursor
    ) -> list[tuple[int, Account]]:
        """Who boosted a post the viewer may see, newest first, as (boost id, account).

        Raises:
            NotFound, Gone: no such post, or not visible.
        """
        post = await self._visible_post(viewer_id, post_id)
        return await post_store.boosters(self.db, post.id, cursor)

    async def authors_of(self, post_ids: Sequence[int]) -> dict[int, int]:
        """The author's account id of each post (the client API names whom a reply answers)."""
        return await post_store.authors_of(self.db, post_ids)

    async def visible_attachment(
        self, viewer_id: int | None, attachment_id: int
    ) -> MediaAttachment:
        """A media attachment of a live post the viewer may see.

        Raises:
            NotFound: no such attachment, or its post is deleted or not visible.
        """
        attachment = await post_store.get_attachment(self.db, attachment_id)
        if attachment is None or attachment.post_id is None:
            raise NotFound("No such media.")
        try:
            await self._visible_post(viewer_id, attachment.post_id)
        except (NotFound, Gone):
            raise NotFound("No such media.") from None
        return attachment

    async def _visible_post(self, viewer_id: int | None, post_id: int) -> Post:
        """The post if the viewer may see it (never a boost row).

        Raises:
            NotFound: no such post, or not visible (the same answer, not to leak existence).
            Gone: deleted.
        """
        post = await post_store.get_post(self.db, post_id)
        if post is None or post.is_boost:
            raise NotFound("No such post.")
        views = await self.hydrate(viewer_id, [post], keep_deleted=True)
        if not views:
            raise NotFound("No such post.")
        if post.is_deleted:
            raise Gone("This post was deleted.")
        return post

    async def view(self, viewer_id: int | None, post_id: int) -> PostView:
        """One post as the viewer may see it.

        Raises:
            NotFound: no such post, or not visible to this viewer.
            Gone: the post was deleted.
        """
        post = await self._visible_post(viewer_id, post_id)
        return (await self.hydrate(viewer_id, [post]))[0]

    async def thread(self, viewer_id: int | None, post_id: int) -> Thread:
        """A post with its visible ancestors and descendants.

        Deleted posts in the thread appear as tombstones so the shape stays.
        """
        main = await self.view(viewer_id, post_id)
        up = await post_store.ancestor_ids(self.db, post_id)
        down = await post_store.descendant_ids(self.db, post_id)
        fetched = await post_store.get_posts(self.db, [*up, *(i for i, _ in down)])
        ancestors = await self.hydrate(
            viewer_id, [fetched[i] for i in up if i in fetched], keep_deleted=True
        )
        depth_of = dict(down)
        replies = await self.hydrate(
            viewer_id, [fetched[i] for i, _ in down if i in fetched], keep_deleted=True
        )
        return Thread(
            ancestors=ancestors,
            post=main,
            descendants=[(v, depth_of[v.post.id]) for v in replies],
        )

    async def edit_history(self, viewer_id: int | None, post_id: int) -> list[PostEdit]:
        """Earlier versions of a post the viewer may see, oldest first."""
        await self._visible_post(viewer_id, post_id)
        return await post_store.list_edits(self.db, post_id)
