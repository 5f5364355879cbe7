"""Direct messages: start a conversation by handle, send, read, react, delete, requests.

Messages are direct posts (see :mod:`xnode.store.migrations.m004_conversations`),
published through :class:`PostService` so that they federate, carry images and
are deleted like posts; :mod:`xnode.dms.placement` files each one into its
conversation in the same transaction. This service adds the chat rules: who
may be messaged, group size, requests, read markers and reactions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.clock import Clock
from xnode.dms.models import ConversationPage, ConversationSummary, Message, Reaction
from xnode.dms.placement import MAX_PARTICIPANTS, join_state
from xnode.errors import Forbidden, InvalidInput, NotFound
from xnode.events import ConversationChanged, EventBus, ReactionChanged
from xnode.ids import new_id
from xnode.posts import content
from xnode.posts.models import Post
from xnode.posts.service import Draft, ImageUpload, PostService
from xnode.settings import Settings
from xnode.store import conversations as store
from xnode.store import notifications as notification_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store
from xnode.store.database import Database, Row

PAGE_SIZE = 40
LIST_SIZE = 30
MAX_EMOJI_CHARS = 16
LISTED_STATES = ("accepted", "request")
"""The member states the client API lists (declined conversations are hidden)."""
_SEPARATORS = re.compile(r"[\s,;]+")
_NOT_EMOJI = re.compile(r"[\s<>&\"']")


@dataclass(frozen=True)
class ConversationListing:
    """A page of conversations for the client API, and each one's latest message id
    (the pagination cursor, even where the member sees an older message)."""

    items: list[ConversationSummary]
    cursors: list[int]


def parse_handles(text: str) -> list[content.Handle]:
    """Handles typed in a "To" field: ``@bob``, ``bob@other.example``, comma or space separated.

    Raises:
        InvalidInput: a piece is not a handle, or none was given.
    """
    handles: list[content.Handle] = []
    for token in _SEPARATORS.split(text.strip()):
        if not token:
            continue
        written = token if token.startswith("@") else f"@{token}"
        found = content.extract_entities(written).handles
        if len(found) != 1 or f"@{found[0].key}" != written.lower().rstrip("."):
            raise InvalidInput(
                f"“{token}” is not a handle like @bob or @bob@other.example.", field="to"
            )
        handles.append(found[0])
    if not handles:
        raise InvalidInput("Add at least one person to message.", field="to")
    return list({h.key: h for h in handles}.values())


def check_emoji(emoji: str) -> str:
    """A reaction as typed; short, one symbol or a few, nothing markup-like.

    Raises:
        InvalidInput: empty, too long, or containing spaces or markup characters.
    """
    emoji = emoji.strip()
    if not emoji or len(emoji) > MAX_EMOJI_CHARS or _NOT_EMOJI.search(emoji):
        raise InvalidInput("Pick an emoji to react with.", field="emoji")
    if any(ch.isascii() and ch.isalnum() for ch in emoji):
        raise InvalidInput("Reactions are emoji, not words.", field="emoji")
    return emoji


class DirectMessages:
    """The rules of conversations, for the web pages and the live channel."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        events: EventBus,
        posts: PostService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.events = events
        self.posts = posts

    # --- starting and sending ------------------------------------------------------

    async def resolve(self, sender: Account, to: str) -> list[Account]:
        """The accounts named in a "To" field, looked up (remote ones by WebFinger).

        Raises:
            InvalidInput: a handle is malformed, unknown or unreachable, or too many.
        """
        handles = parse_handles(to)
        if len(handles) > MAX_PARTICIPANTS - 1:
            raise InvalidInput(f"A conversation has at most {MAX_PARTICIPANTS} people.", field="to")
        found: dict[int, Account] = {}
        for handle in handles:
            account = await self.posts.resolve_handle(handle)
            if account is None or account.is_deleted or account.is_suspended:
                raise InvalidInput(f"Could not find @{handle.key}.", field="to")
            if account.id != sender.id:
                found[account.id] = account
        if not found:
            raise InvalidInput("Add someone other than yourself.", field="to")
        return list(found.values())

    async def _check_may_message(self, sender: Account, recipients: Sequence[Account]) -> None:
        """Refuse up front what placement would silently drop, with a reason.

        Raises:
            Forbidden: a block either way, or the recipient's DM setting.
        """
        for recipient in recipients:
            await self._check_blocks(sender, recipient)
            if not recipient.is_local:
                continue
            policy = await store.get_dm_policy(self.db, recipient.id)
            follows = await relationship_store.get_follow_state(self.db, recipient.id, sender.id)
            state = join_state(
                local=True, blocked=False, follows_author=follows == "accepted", policy=policy
            )
            if state is None:
                who = "nobody" if policy == "nobody" else "people they follow"
                raise Forbidden(f"@{recipient.acct} only accepts messages from {who}.")

    async def start(
        self,
        sender: Account,
        to: str,
        source: str,
        images: Sequence[ImageUpload] = (),
    ) -> Post:
        """Message people by handle: continue the conversation with exactly them, or start one.

        Nothing is stored unless every handle resolves and may be messaged.

        Raises:
            InvalidInput: bad or unknown handles, empty or oversize text, bad image.
            Forbidden: a recipient does not accept messages from the sender.
        """
        recipients = await self.resolve(sender, to)
        async with self.db.transaction() as conn:
            existing = await store.by_exact_members(conn, {sender.id, *(r.id for r in recipients)})
        if existing is not None:
            return await self.send(sender, existing, source, images)
        await self._check_may_message(sender, recipients)
        return await self.posts.publish(
            sender,
            Draft(source=source, visibility="direct", images=tuple(images),
                  recipients=tuple(recipients)),
        )  # fmt: skip

    async def _member_accounts(self, conversation_id: int) -> list[Account]:
        rows = await store.members(self.db, conversation_id)
        accounts = await post_store.get_accounts(self.db, [r["account_id"] for r in rows])
        return [accounts[r["account_id"]] for r in rows if r["account_id"] in accounts]

    async def _membership(self, account_id: int, conversation_id: int) -> tuple[str, int]:
        """(state, last read id) of a member.

        Raises:
            NotFound: no such conversation, or not a member (the same answer).
        """
        row = await store.membership(self.db, conversation_id, account_id)
        if row is None:
            raise NotFound("No such conversation.")
        return row["state"], row["last_read_id"]

    async def send(
        self,
        sender: Account,
        conversation_id: int,
        source: str,
        images: Sequence[ImageUpload] = (),
        reply_to_id: int | None = None,
    ) -> Post:
        """Write in a conversation the sender takes part in.

        Raises:
            NotFound: not a member, or the message replied to is not in this conversation.
            Forbidden: in a one-to-one conversation, a block either way.
            InvalidInput: empty or oversize text, bad image.
        """
        await self._membership(sender.id, conversation_id)
        conversation = await store.get_conversation(self.db, conversation_id)
        assert conversation is not None
        others = [
            a
            for a in await self._member_accounts(conversation_id)
            if a.id != sender.id and not a.is_deleted and not a.is_suspended
        ]
        if len(others) == 1:
            await self._check_blocks(sender, others[0])
        if reply_to_id is not None:
            parent = await post_store.get_post(self.db, reply_to_id)
            if parent is None or parent.conversation_id != conversation_id:
                raise NotFound("No such message in this conversation.")
        else:
            # Other servers (Mastodon, Fedify-based ones…) thread a direct message
            # by what it answers: a message typed at the bottom answers the latest.
            reply_to_id = await store.latest_message_id(self.db, conversation_id, sender.id)
        context = conversation["uri"]
        if context is None:
            # Opened before conversations always had an id: give it one, for good.
            context = await store.give_uri(
                self.db, conversation_id, f"{self.settings.base_url}/contexts/{conversation_id}"
            )
        return await self.posts.publish(
            sender,
            Draft(
                source=source,
                visibility="direct",
                images=tuple(images),
                in_reply_to_id=reply_to_id,
                recipients=tuple(others),
                conversation_id=conversation_id,
                context=context,
            ),
        )

    async def _check_blocks(self, sender: Account, other: Account) -> None:
        """Blocks either way, local or learnt from a remote server's Block.

        Raises:
            Forbidden: there is one.
        """
        if await relationship_store.blocked_either_way(self.db, sender.id, other.id):
            raise Forbidden(f"You can't message @{other.acct}.")

    # --- reading -------------------------------------------------------------------

    async def conversations(
        self,
        account_id: int,
        state: str = "accepted",
        *,
        before: float | None = None,
    ) -> list[ConversationSummary]:
        """A member's conversations (inbox or requests), most recently active first."""
        rows = await store.list_for(self.db, account_id, state, before=before, limit=LIST_SIZE)
        return await self._summaries(account_id, rows)

    async def _summaries(
        self, account_id: int, rows: Sequence[Row], *, live_only: bool = False
    ) -> list[ConversationSummary]:
        """Summaries of listed rows. ``live_only``: the last message is the newest live one
        the member can see (the client API shows no tombstones); otherwise the
        conversation's last message, deleted or not, as the web list shows it."""
        if not rows:
            return []
        member_rows = await store.members_of(self.db, [row["id"] for row in rows])
        accounts = await post_store.get_accounts(self.db, {r[1] for r in member_rows})
        participants: dict[int, list[Account]] = {}
        for conv_id, member_id in member_rows:
            if member_id != account_id and member_id in accounts:
                participants.setdefault(conv_id, []).append(accounts[member_id])
        last_ids = {row["id"]: row["last_message_id"] for row in rows if row["last_message_id"]}
        last_posts = await post_store.get_posts(self.db, list(last_ids.values()))
        views = {
            v.post.id: v
            for v in await self.posts.hydrate(account_id, list(last_posts.values()),
                                              keep_deleted=not live_only)
        }  # fmt: skip
        missing = [conv_id for conv_id, last_id in last_ids.items() if last_id not in views]
        if live_only and missing:
            # The latest message may be deleted, or one the member was never sent (a
            # member who blocked the sender): show the newest they can see instead.
            seen = await store.latest_message_ids(self.db, missing, account_id)
            for conv_id in missing:
                last_ids[conv_id] = seen.get(conv_id, 0)
            found = await post_store.get_posts(self.db, list(seen.values()))
            views.update(
                {v.post.id: v for v in await self.posts.hydrate(account_id, list(found.values()))}
            )
        return [
            ConversationSummary(
                id=row["id"],
                state=row["state"],
                participants=tuple(participants.get(row["id"], ())),
                last_message=views.get(last_ids.get(row["id"], 0)),
                unread=row["unread"],
                last_activity_at=row["last_activity_at"],
            )
            for row in rows
        ]

    async def listed(
        self,
        account_id: int,
        *,
        max_id: int | None = None,
        min_id: int | None = None,
        since_id: int | None = None,
        limit: int = LIST_SIZE,
    ) -> ConversationListing:
        """The member's conversations for the client API: the inbox and requests (apps have
        no requests list, and Mastodon lists conversations with strangers too), never the
        declined ones, nor those removed until a newer message came; ordered and paged by
        their latest message's id."""
        rows = await store.list_by_last_message(
            self.db, account_id, LISTED_STATES, max_id=max_id, min_id=min_id,
            since_id=since_id, limit=max(1, min(limit, PAGE_SIZE)),
        )  # fmt: skip
        return ConversationListing(
            await self._summaries(account_id, rows, live_only=True),
            [row["last_message_id"] for row in rows],
        )

    async def summaries(
        self, account_id: int, conversation_ids: Sequence[int]
    ) -> list[ConversationSummary]:
        """These conversations as :meth:`listed` shows them, those the account is a listed
        member of only (others are left out, never shown)."""
        rows = await store.listed_rows(self.db, account_id, conversation_ids, LISTED_STATES)
        return await self._summaries(account_id, rows, live_only=True)

    async def listed_summary(self, account_id: int, conversation_id: int) -> ConversationSummary:
        """One conversation as :meth:`listed` shows it.

        Raises:
            NotFound: not a member, or declined or removed.
        """
        found = await self.summaries(account_id, [conversation_id])
        if not found:
            raise NotFound("Record not found")
        return found[0]

    async def remove(self, account_id: int, conversation_id: int) -> None:
        """Take a conversation off the member's list in apps (the client API's delete),
        until a newer message arrives, as Mastodon does. Unlike the web page's Decline, it
        does not refuse the conversation: the others can still write.

        Raises:
            NotFound: not a member, or removed already.
        """
        if not await store.listed_rows(self.db, account_id, [conversation_id], LISTED_STATES):
            raise NotFound("Record not found")
        async with self.db.transaction() as conn:
            await store.remove_from_list(conn, conversation_id, account_id)
        await self.events.publish(ConversationChanged(account_id, conversation_id))

    async def unread_summary(self, account_id: int) -> tuple[int, int]:
        """(conversations with unread messages, requests with unread messages)."""
        return await store.unread_summary(self.db, account_id)

    async def unread_in(self, account_id: int, conversation_id: int) -> int:
        """Unread messages of one member in one conversation."""
        return await store.unread_in(self.db, conversation_id, account_id)

    async def participants(self, account_id: int, conversation_id: int) -> list[Account]:
        """Everyone in a conversation but the viewer.

        Raises:
            NotFound: not a member.
        """
        await self._membership(account_id, conversation_id)
        return [a for a in await self._member_accounts(conversation_id) if a.id != account_id]

    async def local_members(self, conversation_id: int) -> list[tuple[int, str]]:
        """(account id, state) of the local members, for live updates."""
        return await store.local_members(self.db, conversation_id)

    async def page(
        self,
        viewer_id: int,
        conversation_id: int,
        *,
        before_id: int | None = None,
    ) -> ConversationPage:
        """A page of a conversation, newest messages last.

        Raises:
            NotFound: not a member.
        """
        state, last_read = await self._membership(viewer_id, conversation_id)
        ids = await store.message_ids(
            self.db, conversation_id, viewer_id, before_id=before_id, limit=PAGE_SIZE + 1
        )
        older = ids[PAGE_SIZE - 1] if len(ids) > PAGE_SIZE else None
        ids = ids[:PAGE_SIZE]
        messages = await self.messages(viewer_id, ids)
        others = [a for a in await self._member_accounts(conversation_id) if a.id != viewer_id]
        return ConversationPage(
            id=conversation_id,
            state=state,
            participants=tuple(others),
            messages=messages,
            older_than=older,
            last_read_id=last_read,
        )

    async def messages(self, viewer_id: int, ids: Sequence[int]) -> list[Message]:
        """Messages by id as the viewer sees them, oldest first, with reactions and quotes."""
        posts = await post_store.get_posts(self.db, ids)
        ordered = [posts[i] for i in sorted(ids) if i in posts]
        views = await self.posts.hydrate(viewer_id, ordered, keep_deleted=True)
        parent_ids = {v.post.in_reply_to_id for v in views if v.post.in_reply_to_id}
        parents = await post_store.get_posts(self.db, parent_ids)
        # Deleted ones too: a reply to a deleted message says so, as open tabs do.
        parent_views = {
            v.post.id: v
            for v in await self.posts.hydrate(viewer_id, list(parents.values()), keep_deleted=True)
        }
        reactions = await store.reactions_of(self.db, [v.post.id for v in views])
        names = await post_store.get_accounts(
            self.db, {who for pairs in reactions.values() for _, who in pairs}
        )
        # Every message answers one (that is how servers thread them); quoting the
        # message right above it would repeat what the reader just read.
        previous = await store.previous_message_ids(
            self.db, [v.post.id for v in views if v.post.in_reply_to_id]
        )
        found = []
        for view in views:
            answered = view.post.in_reply_to_id
            quoted = answered is not None and answered != previous.get(view.post.id)
            found.append(Message(
                view=view,
                reactions=_group_reactions(reactions.get(view.post.id, []), viewer_id, names),
                reply_to=parent_views.get(answered) if quoted and answered else None,
                answers_unseen=quoted and answered not in parent_views,
            ))  # fmt: skip
        return found

    async def message(self, viewer_id: int, message_id: int) -> Message | None:
        """One message as the viewer sees it, or None."""
        found = await self.messages(viewer_id, [message_id])
        return found[0] if found else None

    # --- state -----------------------------------------------------------------------

    async def mark_read(
        self, account_id: int, conversation_id: int, up_to_id: int | None = None
    ) -> None:
        """Move the member's read marker (and clear the messages' notifications).

        Raises:
            NotFound: not a member.
        """
        await self._membership(account_id, conversation_id)
        conversation = await store.get_conversation(self.db, conversation_id)
        assert conversation is not None
        last = conversation["last_message_id"] or 0
        target = last if up_to_id is None else min(up_to_id, last)
        async with self.db.transaction() as conn:
            moved = await store.mark_read_in(conn, conversation_id, account_id, target)
            if moved:
                await notification_store.mark_conversation_read(
                    conn, account_id, conversation_id, target, self.clock.now()
                )
        if moved:
            await self.events.publish(ConversationChanged(account_id, conversation_id))

    async def set_state(self, account_id: int, conversation_id: int, state: str) -> None:
        """Accept a request (``accepted``) or decline it (``declined``).

        Raises:
            NotFound: not a member.
            InvalidInput: an unknown state.
        """
        if state not in ("accepted", "declined"):
            raise InvalidInput("Accept or decline.")
        await self._membership(account_id, conversation_id)
        async with self.db.transaction() as conn:
            changed = await store.set_member_state(conn, conversation_id, account_id, state)
        if changed:
            await self.events.publish(ConversationChanged(account_id, conversation_id))

    async def _message_for(self, account_id: int, message_id: int) -> Post:
        post = await post_store.get_post(self.db, message_id)
        if post is None or post.conversation_id is None or post.is_deleted:
            raise NotFound("No such message.")
        await self._membership(account_id, post.conversation_id)
        if not await post_store.can_see(self.db, account_id, post.id):
            raise NotFound("No such message.")
        return post

    async def react(self, account: Account, message_id: int, emoji: str, on: bool = True) -> Post:
        """Add (or remove) an emoji reaction to a message the account can see.

        Raises:
            NotFound: no such message for this account.
            InvalidInput: not an emoji.
        """
        emoji = check_emoji(emoji)
        post = await self._message_for(account.id, message_id)
        reaction_id = new_id()
        uri = f"{self.settings.base_url}/users/{account.username}#reactions/{reaction_id}"
        async with self.events.change(self.db) as change:
            conn = change.conn
            if on:
                changed = await post_store.insert_reaction(
                    conn, reaction_id, account.id, post.id, emoji, uri, self.clock.now()
                )
            else:
                uri = await store.reaction_uri_in(conn, account.id, post.id, emoji) or uri
                removed = await post_store.delete_reaction(
                    conn, account.id, post_id=post.id, emoji=emoji
                )
                changed = removed > 0
            if changed:
                change.emit(ReactionChanged(account.id, post.id, emoji, undone=not on, uri=uri))
        return post

    async def delete(self, account_id: int, message_id: int) -> Post:
        """Delete one's own message for everyone (a tombstone stays in the history).

        Raises:
            NotFound, Forbidden: not one's own live message.
        """
        post = await self._message_for(account_id, message_id)
        await self.posts.delete(account_id, post.id)
        return post

    async def policy(self, account_id: int) -> str:
        """Who may start a conversation with the account."""
        return await store.get_dm_policy(self.db, account_id)

    async def set_policy(self, account_id: int, policy: str) -> None:
        """Change who may start a conversation with the account.

        Raises:
            InvalidInput: not one of everyone / following / nobody.
        """
        if policy not in store.DM_POLICIES:
            raise InvalidInput("Choose who may message you.", field="dm_policy")
        async with self.db.transaction() as conn:
            await store.set_dm_policy(conn, account_id, policy)


def _group_reactions(
    pairs: list[tuple[str, int]], viewer_id: int, names: dict[int, Account]
) -> tuple[Reaction, ...]:
    grouped: dict[str, list[int]] = {}
    for emoji, who in pairs:
        grouped.setdefault(emoji, []).append(who)
    return tuple(
        Reaction(
            emoji=emoji,
            count=len(who),
            mine=viewer_id in who,
            names=tuple(names[w].name_for_display for w in who if w in names),
        )
        for emoji, who in grouped.items()
    )
