"""Turning pages of the node's models into API entities, with what they need gathered in
a few batched reads (counts of every account shown, whom each reply answers)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from xnode.accounts.models import Account
from xnode.api import entities
from xnode.posts.models import PostView
from xnode.web.state import ACCOUNTS, POSTS, SETTINGS


def _accounts_of(views: Sequence[PostView]) -> list[Account]:
    found: dict[int, Account] = {}
    for view in views:
        found.setdefault(view.author.id, view.author)
        if view.booster is not None:
            found.setdefault(view.booster.id, view.booster)
    return list(found.values())


async def context_for(
    app: web.Application, accounts: Sequence[Account] = (), views: Sequence[PostView] = ()
) -> entities.Context:
    """The serializers' context for these accounts and posts."""
    everyone = [*accounts, *_accounts_of(views)]
    stats = await app[ACCOUNTS].stats(everyone) if everyone else {}
    parents = [v.post.in_reply_to_id for v in views if v.post.in_reply_to_id is not None]
    reply_authors = await app[POSTS].authors_of(parents) if parents else {}
    return entities.Context(app[SETTINGS].base_url, stats, reply_authors)


async def accounts(app: web.Application, found: Sequence[Account]) -> list[dict[str, object]]:
    """Account entities."""
    ctx = await context_for(app, accounts=found)
    return [entities.account(acc, ctx) for acc in found]


async def account(app: web.Application, acc: Account) -> dict[str, object]:
    """One Account entity."""
    return (await accounts(app, [acc]))[0]


async def statuses(app: web.Application, views: Sequence[PostView]) -> list[dict[str, object]]:
    """Status entities."""
    ctx = await context_for(app, views=views)
    return [entities.status(view, ctx) for view in views]


async def status(app: web.Application, view: PostView) -> dict[str, object]:
    """One Status entity."""
    return (await statuses(app, [view]))[0]
