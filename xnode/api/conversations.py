"""Client API: direct conversations (``/api/v1/conversations``).

A Conversation is one of the node's DM conversations as one member sees it: ``accounts``
are the other participants (the member themselves for notes to self, as Mastodon does),
``last_status`` the newest message they can see, ``unread`` whether messages from others
wait past their read marker. Only members ever see a conversation: anyone else's id, like
an unknown one, is 404.

The list holds the inbox and message requests (apps have no requests list; Mastodon lists
conversations with strangers too), newest message first; its cursors are the latest
message ids, as Mastodon's are. Deleting a conversation takes it off the member's list
until a newer message arrives, as in Mastodon; it does not decline it (the web page's
Decline refuses the conversation, which an app's "delete" must not do behind their back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aiohttp import web

from xnode.api import entities
from xnode.api.auth import require_user
from xnode.api.pagination import page_request, paginated, path_id
from xnode.api.present import context_for
from xnode.dms.models import ConversationSummary
from xnode.web.state import ACCOUNTS, DMS


async def conversation_entities(
    app: web.Application, viewer_id: int, conversations: Sequence[int | ConversationSummary]
) -> list[dict[str, object]]:
    """Conversation entities for the member ``viewer_id``, from conversation ids (read
    here, and left out unless the viewer is a listed member) or summaries.

    Public for the streaming API's ``conversation`` events.
    """
    ids = [c for c in conversations if isinstance(c, int)]
    read = {s.id: s for s in await app[DMS].summaries(viewer_id, ids)} if ids else {}
    summaries = [
        c if isinstance(c, ConversationSummary) else read[c]
        for c in conversations
        if isinstance(c, ConversationSummary) or c in read
    ]
    if not summaries:
        return []
    alone = any(not s.participants for s in summaries)
    me = (await app[ACCOUNTS].require_user(viewer_id)).account if alone else None
    people = [a for s in summaries for a in s.participants]
    views = [s.last_message for s in summaries if s.last_message is not None]
    ctx = await context_for(app, accounts=[*people, *([me] if me else [])], views=views)
    return [
        {
            "id": str(s.id),
            "unread": s.unread > 0,
            "accounts": [
                entities.account(a, ctx)
                for a in (s.participants or ((me,) if me is not None else ()))
            ],
            "last_status": (
                entities.status(s.last_message, ctx) if s.last_message is not None else None
            ),
        }
        for s in summaries
    ]



async def list_conversations(request: web.Request) -> web.Response:
    """``GET /api/v1/conversations``: newest message first, with ``Link`` headers."""
    user = require_user(request, "read:statuses")
    page = page_request(request, default=20, maximum=40)
    found = await request.app[DMS].listed(
        user.id, max_id=page.max_id, min_id=page.min_id, since_id=page.since_id,
        limit=page.limit,
    )  # fmt: skip
    body = await conversation_entities(request.app, user.id, found.items)
    return paginated(request, page, body, found.cursors)


async def read_conversation(request: web.Request) -> web.Response:
    """``POST /api/v1/conversations/:id/read``: mark it read; answers the Conversation."""
    user = require_user(request, "write:conversations")
    conversation_id = path_id(request)
    dms = request.app[DMS]
    summary = await dms.listed_summary(user.id, conversation_id)  # 404 unless listed for them
    await dms.mark_read(user.id, conversation_id)
    # Read up to its latest message: nothing waits past the marker any more.
    read = dataclasses.replace(summary, unread=0)
    return web.json_response((await conversation_entities(request.app, user.id, [read]))[0])


async def remove_conversation(request: web.Request) -> web.Response:
    """``DELETE /api/v1/conversations/:id``: off the caller's list; answers ``{}``."""
    user = require_user(request, "write:conversations")
    await request.app[DMS].remove(user.id, path_id(request))
    return web.json_response({})


def add_routes(app: web.Application) -> None:
    """Register the conversations endpoints."""
    app.router.add_get("/api/v1/conversations", list_conversations)
    app.router.add_post("/api/v1/conversations/{id}/read", read_conversation)
    app.router.add_delete("/api/v1/conversations/{id}", remove_conversation)
