"""Which conversation a direct message belongs to, and who actually receives it.

Run inside the transaction that stores the message (local or remote), so a
message is never visible without its conversation and request state. The rule,
in order:

1. an explicit conversation (sent from a conversation page) the author is in;
2. the conversation of the message replied to, if the author is in it;
3. a conversation with the same context / ``ostatus:conversation`` id the author is in;
4. a conversation with exactly the same participants;
5. otherwise a new conversation.

New local participants land in the inbox when they follow the author, in
Requests when their policy allows messages from everyone, and are refused
otherwise; blocks (either way) refuse too. A refused recipient loses the
mention, so the visibility rule never shows them the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xnode.accounts.models import Account
from xnode.ids import new_id
from xnode.store import conversations as store
from xnode.store.database import Connection

MAX_PARTICIPANTS = 32


@dataclass(frozen=True)
class Placement:
    """Where a message went."""

    conversation_id: int
    created: bool
    refused: tuple[int, ...]


async def _find(
    conn: Connection,
    author: Account,
    participants: set[int],
    *,
    conversation_id: int | None,
    parent_id: int | None,
    context: str | None,
) -> int | None:
    if conversation_id is not None and author.id in await store.member_ids_in(
        conn, conversation_id
    ):
        return conversation_id
    if parent_id is not None:
        found = await store.conversation_of_post(conn, parent_id)
        if found is not None and author.id in await store.member_ids_in(conn, found):
            return found
    if context:
        found = await store.by_uri_with_member(conn, context, author.id)
        if found is not None:
            return found
    return await store.by_exact_members(conn, participants)


def join_state(*, local: bool, blocked: bool, follows_author: bool, policy: str) -> str | None:
    """The state a recipient joins a conversation in, or None when refused (the rule, pure)."""
    if not local:
        return "accepted"  # remote servers apply their own rules
    if blocked:
        return None
    if follows_author:
        return "accepted"
    return "request" if policy == "everyone" else None


async def new_member_state(
    conn: Connection, recipient: Account, author: Account
) -> str | None:
    """:func:`join_state` for a recipient, read inside the message's transaction."""
    if not recipient.is_local:
        return "accepted"
    return join_state(
        local=True,
        blocked=await store.blocked_either_way_in(conn, recipient.id, author.id),
        follows_author=await store.is_following(conn, recipient.id, author.id),
        policy=await store.dm_policy_in(conn, recipient.id),
    )


async def place_message(
    conn: Connection,
    *,
    post_id: int,
    author: Account,
    recipients: Sequence[Account],
    now: float,
    conversation_id: int | None = None,
    parent_id: int | None = None,
    context: str | None = None,
    contexts_url: str | None = None,
) -> Placement:
    """File a stored direct post into its conversation; see the module rule.

    A new conversation takes the message's ``context`` as its id; a remote
    message that had none gets one of ours (``contexts_url``/conversation id),
    which our replies then carry, so that every server can thread them.
    """
    recipients = [r for r in dict((r.id, r) for r in recipients).values() if r.id != author.id]
    participants = {author.id, *(r.id for r in recipients)}
    found = await _find(
        conn,
        author,
        participants,
        conversation_id=conversation_id,
        parent_id=parent_id,
        context=context,
    )
    created = found is None
    if found is None:
        found = new_id()
        uri = context or (f"{contexts_url}/{found}" if contexts_url else None)
        await store.insert_conversation(conn, found, uri, author.id, now)
    members = await store.member_ids_in(conn, found)
    if author.id not in members:
        await store.add_member(conn, found, author.id, "accepted", now)
    elif author.is_local:
        # Writing in a conversation accepts it (a reply to a request).
        await store.set_member_state(conn, found, author.id, "accepted")
    refused: list[int] = []
    for recipient in recipients:
        if recipient.id in members:
            if recipient.is_local and await store.blocked_either_way_in(
                conn, recipient.id, author.id
            ):
                refused.append(recipient.id)
            continue
        state = await new_member_state(conn, recipient, author)
        if state is None:
            refused.append(recipient.id)
        else:
            await store.add_member(conn, found, recipient.id, state, now)
    await store.record_message(conn, found, post_id, now)
    await store.drop_recipients(conn, post_id, refused)
    return Placement(found, created, tuple(refused))
