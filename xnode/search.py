"""Full-text search over posts the viewer may see, accounts and hashtags (SQLite FTS5).

Direct posts are never indexed; every post hit is filtered by the same
visibility rule as timelines, inside the query (see :mod:`xnode.store.search`).
The client API also looks URLs up (:meth:`SearchService.lookup_url`), through the
ActivityPub resolver for other servers' accounts and posts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from federation.actors import ACTOR_TYPES
from federation.http import FetchError
from federation.jsonld import id_of
from xnode.accounts.models import Account
from xnode.activitypub.resolver import Resolver
from xnode.errors import InvalidInput, XnodeError
from xnode.posts.content import normalize_tag
from xnode.posts.models import Post, PostView
from xnode.posts.service import PostService
from xnode.store import accounts as account_store
from xnode.store import posts as post_store
from xnode.store import search as search_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200
RESULTS = 20
_WORD = re.compile(r"\w+", re.UNICODE)
# This node's profile and post pages and actor and post ids (xnode/activitypub/urls.py).
_LOCAL_PATH = re.compile(
    r"/(?:@(?P<user>\w+)|users/(?P<user2>\w+))(?:/(?:statuses/)?(?P<post>\d{1,19}))?/?"
)


@dataclass(frozen=True)
class SearchResults:
    """What a search found, by kind."""

    accounts: list[Account]
    tags: list[str]
    posts: list[PostView]


def search_words(text: str) -> list[str]:
    """The words of what someone typed (at most 12), each to be matched as a prefix.

    Only words go to the store, never the text itself: the full-text engines have
    query languages of their own, and operators or punctuation in the input must
    not be interpreted (or raise syntax errors).
    """
    words: list[str] = _WORD.findall(text)[:12]
    return words


class SearchService:
    """Searches posts, accounts and hashtags."""

    def __init__(self, db: Database, posts: PostService) -> None:
        self.db = db
        self.posts = posts

    async def search(self, viewer_id: int | None, text: str) -> SearchResults:
        """Search everything for ``text``.

        Raises:
            InvalidInput: the query is too long.
        """
        text = text.strip()
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(f"Searches are limited to {MAX_QUERY_CHARS} characters.")
        words = search_words(text.lstrip("#@"))
        if not words:
            return SearchResults([], [], [])
        return SearchResults(
            accounts=await self.accounts(text),
            tags=await self.tags(text),
            posts=await self.find_posts(viewer_id, words),
        )

    async def find_posts(
        self,
        viewer_id: int | None,
        words: list[str],
        *,
        limit: int = RESULTS,
        offset: int = 0,
        account_id: int | None = None,
        max_id: int | None = None,
        min_id: int | None = None,
    ) -> list[PostView]:
        """Visible, non-direct, live posts with every word (as a prefix), newest first
        (by one author, between ids, when asked)."""
        rows = await search_store.find_posts(
            self.db, viewer_id, words, limit=limit, offset=offset, account_id=account_id,
            max_id=max_id, min_id=min_id,
        )  # fmt: skip
        return await self.posts.hydrate(viewer_id, [Post.from_row(r) for r in rows])

    async def accounts(
        self, text: str, *, limit: int = RESULTS, offset: int = 0,
        followed_by: int | None = None,
    ) -> list[Account]:
        """Live accounts whose handle or name matches; exact handles first (only those
        ``followed_by`` follows, when given)."""
        handle = text.strip().lstrip("@").lower()
        username, _, domain = handle.partition("@")
        if domain == self.posts.settings.domain.lower():
            domain = ""  # our own people by their full handle (@bob@this.node)
        exact = await search_store.exact_accounts(
            self.db, username, domain, followed_by=followed_by
        )
        words = search_words(text.lstrip("@"))
        fuzzy = await search_store.fuzzy_accounts(
            self.db, words, limit=offset + limit, followed_by=followed_by
        ) if words else []  # fmt: skip
        seen: dict[int, Account] = {}
        for row in [*exact, *fuzzy]:
            seen.setdefault(row["id"], Account.from_row(row))
        return list(seen.values())[offset : offset + limit]

    async def tags(self, text: str, *, limit: int = 10, offset: int = 0) -> list[str]:
        """Hashtags in use that start with the query."""
        prefix = tag_name(text)
        if prefix is None:
            return []
        return await search_store.tags_with_prefix(self.db, prefix, limit=limit, offset=offset)

    async def resolve_handle(self, resolver: Resolver, text: str) -> None:
        """Look ``@user@host`` up by WebFinger, so the searches that follow find the
        account (and it can be followed); nothing for anything else, one of ours, or a
        server that does not answer (logged)."""
        handle = text.strip().lstrip("@")
        username, _, domain = handle.partition("@")
        if not username or not domain or " " in handle:
            return
        if domain.lower() == self.posts.settings.domain.lower():
            return  # one of ours: in the database already, no WebFinger to ourselves
        try:
            await resolver.actor_by_handle(handle)
        except (XnodeError, FetchError, ValueError) as exc:
            log.info("search: could not resolve @%s: %s", handle, exc)

    async def lookup_url(
        self, resolver: Resolver, viewer_id: int | None, url: str
    ) -> Account | PostView | None:
        """The account or post a URL names (a profile or post page, or an ActivityPub id),
        here or on another server, fetched over ActivityPub when not known yet; None when
        it is neither, cannot be fetched, or is a post the viewer may not see."""
        if resolver.is_local(url):
            return await self._local_url(viewer_id, url[len(resolver.urls.base) :])
        known = await account_store.account_by_uri(self.db, url)
        if known is not None:
            return known if _live(known) else None
        post: Account | Post | None = await post_store.post_by_uri(self.db, url)
        try:
            if post is None:
                post = await self._fetch_url(resolver, url)
        except (XnodeError, FetchError, ValueError) as exc:
            log.info("search: could not resolve %s: %s", url, exc)
            return None
        if isinstance(post, Account):
            return post if _live(post) else None
        return await self._visible(viewer_id, post.id) if post is not None else None

    async def _fetch_url(self, resolver: Resolver, url: str) -> Account | Post | None:
        doc = await resolver.fetch(url)
        if not isinstance(doc, dict):
            return None
        doc_id = id_of(doc)
        kinds = doc.get("type")
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        if not isinstance(doc_id, str):
            return None
        if kinds & ACTOR_TYPES:
            # A page URL answers with the actor whose id it is not: take the actor from
            # its own id (and origin), never from the page that named it.
            if doc_id == url:
                return await resolver.store_actor(doc, expected_id=url)
            return await resolver.actor(doc_id)
        # Anything else may be a post; the resolver checks it comes from its own origin.
        return await resolver.note(doc_id, notify=False)

    async def _local_url(self, viewer_id: int | None, path: str) -> Account | PostView | None:
        match = _LOCAL_PATH.fullmatch(path.split("?", 1)[0].split("#", 1)[0])
        if match is None:
            return None
        username = match["user"] or match["user2"]
        if match["post"] is not None:
            found = await self._visible(viewer_id, int(match["post"]))
            if found is None or not found.author.is_local:
                return None
            return found if found.author.username.lower() == username.lower() else None
        account = await account_store.get_local_account(self.db, username)
        return account if account is not None and _live(account) else None

    async def _visible(self, viewer_id: int | None, post_id: int) -> PostView | None:
        try:
            view = await self.posts.view(viewer_id, post_id)
        except XnodeError:
            return None  # missing, deleted, or not for this viewer
        # Direct messages are conversations', never search results.
        return None if view.post.visibility == "direct" else view


def tag_name(text: str) -> str | None:
    """The hashtag a query names (``#Cats`` → ``cats``), or None when it is not one."""
    prefix = normalize_tag(text.strip().lstrip("#"))
    if not prefix or not _WORD.fullmatch(prefix):
        return None
    return prefix


def _live(account: Account) -> bool:
    return not account.is_deleted and not account.is_suspended
