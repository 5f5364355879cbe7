"""Pinned posts of remote accounts (Add/Remove to ``featured``) and group-relayed activities.

Pins come from a second real xnode (``node_b``), whose users sign their Add and
Remove; the posts are fetched from it over HTTP. The groups live on a small
loopback "Lemmy" server: it serves a community (``Group``) and its members as
actor documents with real RSA keys, and their posts. The community's Announces
are signed with its key and POSTed to ``node_a``'s inbox; what the community
embeds differs on purpose from what the origin serves, so a test passes only if
the embedded copy was not believed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from conftest import Node, activity, follow_accepted, note, post_activity

from federation.keys import generate_rsa_key, public_key_of
from xnode.accounts.models import Account
from xnode.activitypub import featured_handlers, post_handlers
from xnode.activitypub.keys import SigningKey
from xnode.activitypub.urls import PUBLIC
from xnode.posts.service import Draft
from xnode.web.state import POSTS

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


async def receive(node: Node, doc: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """POST ``doc`` to node's inbox signed with ``key``, process it, return its queue row."""
    response = await post_activity(node, doc, key)
    assert response.status == 202, await response.text()
    await node.process()
    row = await node.db.fetchone(
        "SELECT * FROM inbox_queue WHERE activity_id = ?", (doc["id"],)
    )
    assert row is not None and row["state"] == "done", row and row["last_error"]
    return dict(row)


def refused(row: dict[str, Any]) -> bool:
    return (row["last_error"] or "").startswith("refused:")


async def post_row(node: Node, uri: str) -> dict[str, Any] | None:
    row = await node.db.fetchone("SELECT * FROM posts WHERE uri = ?", (uri,))
    return dict(row) if row is not None else None


# --- pinned posts -----------------------------------------------------------------------------


@dataclass
class Pinner:
    """bob@b (who pins), as b signs for him and as a knows him."""

    key: SigningKey
    account: Account  # on node a
    local: Account  # on node b


@pytest.fixture
async def bob(node_a: Node, node_b: Node) -> Pinner:
    local = await node_b.user("bob")
    return Pinner(await node_b.key(local), await node_a.resolver.actor(node_b.actor("bob")), local)


def add(kind: str, who: Account, obj: str, target: str | None) -> dict[str, Any]:
    """Add/Remove as Mastodon sends them when pinning: the post's id, the collection's id."""
    assert who.uri is not None
    extra = {"target": target} if target is not None else {}
    return activity(kind, who.uri, obj, to=[PUBLIC], **extra)


async def pins(node: Node, account: Account) -> list[str]:
    rows = await node.db.fetchall(
        "SELECT p.uri FROM pins JOIN posts p ON p.id = pins.post_id WHERE pins.account_id = ?"
        " ORDER BY pins.created_at DESC",
        (account.id,),
    )
    return [row[0] for row in rows]


async def profile_html(node: Node, account: Account) -> str:
    response = await node.client.get(f"/@{account.username}@{account.domain}")
    assert response.status == 200, await response.text()
    return await response.text()


async def test_add_pins_and_remove_unpins_on_the_remote_profile(node_a, node_b, bob):
    posts = node_b.app[POSTS]
    older = await posts.publish(bob.local, Draft(source="the post bob pins"))
    newer = await posts.publish(bob.local, Draft(source="a later post"))
    assert await node_a.resolver.note(newer.uri) is not None
    featured = bob.account.featured_url
    assert featured == f"{node_b.actor('bob')}/collections/featured"

    # The pinned post is not known here yet: it is fetched from bob's server.
    await receive(node_a, add("Add", bob.account, older.uri, featured), bob.key)
    assert await pins(node_a, bob.account) == [older.uri]
    stored = await post_row(node_a, older.uri)
    assert stored is not None and stored["account_id"] == bob.account.id
    # Delivered again (a new activity id, or a replay after a crash): still one pin.
    await receive(node_a, add("Add", bob.account, older.uri, featured), bob.key)
    assert await pins(node_a, bob.account) == [older.uri]

    page = await profile_html(node_a, bob.account)
    pinned_at, posts_at = page.index('id="pinned-heading"'), page.index('id="posts-heading"')
    assert pinned_at < page.index("the post bob pins") < posts_at < page.index("a later post")
    assert page.count("the post bob pins") == 1  # not repeated among the posts

    await receive(node_a, add("Remove", bob.account, older.uri, featured), bob.key)
    assert await pins(node_a, bob.account) == []
    page = await profile_html(node_a, bob.account)
    assert 'id="pinned-heading"' not in page
    assert page.index('id="posts-heading"') < page.index("the post bob pins")
    row = await receive(node_a, add("Remove", bob.account, older.uri, featured), bob.key)
    assert not refused(row) and row["last_error"] is None


async def test_add_to_another_collection_or_of_another_post_is_refused(node_a, node_b, bob):
    alice = await node_a.user("alice")
    carol_b = await node_b.user("carol")
    carol = await node_a.resolver.actor(node_b.actor("carol"))
    posts = node_b.app[POSTS]
    own = await posts.publish(bob.local, Draft(source="bob's own"))
    carols = await posts.publish(carol_b, Draft(source="carol's"))
    secret = await posts.publish(bob.local, Draft(source="friends only", visibility="followers"))
    local = await node_a.app[POSTS].publish(alice, Draft(source="alice's"))
    featured = bob.account.featured_url
    assert featured is not None and carol.featured_url is not None

    cases = [
        (own.uri, carol.featured_url),  # someone else's featured collection
        (own.uri, f"{node_b.actor('bob')}/collections/tags"),  # featured hashtags
        (own.uri, None),
        (carols.uri, featured),  # a post by someone else
        (local.uri, featured),
        (secret.uri, featured),  # not public: our fetch is not shown it
        ("https://elsewhere.example/statuses/1", featured),  # not on bob's host: not fetched
    ]
    for obj, target in cases:
        row = await receive(node_a, add("Add", bob.account, obj, target), bob.key)
        assert refused(row), (obj, target)
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM pins") == 0

    # Nobody unpins someone else's post either, not even from their own collection.
    await receive(node_a, add("Add", bob.account, own.uri, featured), bob.key)
    carol_key = await node_b.key(carol_b)
    row = await receive(node_a, add("Remove", carol, own.uri, carol.featured_url), carol_key)
    assert refused(row)
    row = await receive(node_a, add("Remove", carol, own.uri, featured), carol_key)
    assert refused(row)
    assert await pins(node_a, bob.account) == [own.uri]


async def test_featured_collection_learnt_late_and_pins_are_bounded(
    node_a, node_b, bob, monkeypatch
):
    first = await node_b.app[POSTS].publish(bob.local, Draft(source="first"))
    second = await node_b.app[POSTS].publish(bob.local, Draft(source="second"))
    featured = bob.account.featured_url
    assert featured is not None
    # A profile stored before it named its featured collection: the Add refetches it once.
    await node_a.db.execute("UPDATE accounts SET featured_url = NULL WHERE id = ?",
                            (bob.account.id,))  # fmt: skip
    node_a.clock.advance(post_handlers.ACTOR_REFRESH_MIN_S + 1)
    await receive(node_a, add("Add", bob.account, first.uri, featured), bob.key)
    assert await pins(node_a, bob.account) == [first.uri]
    monkeypatch.setattr(featured_handlers, "MAX_REMOTE_PINS", 1)
    row = await receive(node_a, add("Add", bob.account, second.uri, featured), bob.key)
    assert refused(row) and await pins(node_a, bob.account) == [first.uri]


# --- a loopback Lemmy: a community and its members ------------------------------------------


@dataclass
class Lemmy:
    """A fake remote server: serves ``docs`` by path, accepts any POST."""

    base: str = ""
    docs: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(status=202)
        doc = self.docs.get(request.path)
        if doc is None:
            return web.Response(status=404)
        return web.json_response(doc, content_type="application/activity+json")

    def url(self, path: str) -> str:
        return self.base + path

    def actor(self, path: str, kind: str) -> str:
        """Publish an actor (with a fresh RSA key) at ``path``; returns its id."""
        uri = self.url(path)
        private = generate_rsa_key()
        public = public_key_of(private)
        self.keys[uri] = SigningKey(f"{uri}#main-key", private, public)
        self.docs[path] = {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
            "id": uri, "type": kind, "preferredUsername": path.rsplit("/", 1)[-1],
            "inbox": f"{uri}/inbox", "outbox": f"{uri}/outbox", "followers": f"{uri}/followers",
            "endpoints": {"sharedInbox": self.url("/inbox")},
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public.to_pem()},
        }  # fmt: skip
        return uri

    def page(self, path: str, author: str, group: str, title: str, body: str,
             **extra: Any) -> dict[str, Any]:  # fmt: skip
        """A Lemmy post (``Page``), addressed to the community and the public."""
        return {
            "id": self.url(path), "type": "Page", "attributedTo": author,
            "to": [group, PUBLIC], "cc": [], "name": title, "content": body,
            "mediaType": "text/html", "audience": group, "published": "2024-05-01T10:00:00Z",
            **extra,
        }  # fmt: skip

    def serve_object(self, doc: dict[str, Any]) -> None:
        self.docs[doc["id"].removeprefix(self.base)] = doc

    def wrap(self, kind: str, actor: str, obj: Any, group: str) -> dict[str, Any]:
        """An activity by a member, as the community embeds it."""
        return {"id": self.url(f"/activities/{kind.lower()}/{next(self.ids)}"), "type": kind,
                "actor": actor, "to": [PUBLIC], "cc": [group], "object": obj,
                "audience": group}  # fmt: skip

    def announce(self, group: str, obj: Any) -> dict[str, Any]:
        """The community's Announce (Lemmy leaves out @context; we send one, as on the wire)."""
        return {"@context": [AS_CONTEXT, "https://join-lemmy.org/context.json"],
                "id": self.url(f"/activities/announce/{next(self.ids)}"), "type": "Announce",
                "actor": group, "to": [PUBLIC], "cc": [f"{group}/followers"],
                "object": obj}  # fmt: skip


@dataclass
class Community:
    """The loopback server, its community ``main`` and member ``beta``, and alice on node a."""

    lemmy: Lemmy
    group: str
    member: str
    alice: Account
    group_account: Account

    @property
    def key(self) -> SigningKey:
        return self.lemmy.keys[self.group]


@pytest.fixture
async def lemmy(aiohttp_server: Any) -> Lemmy:
    server_side = Lemmy()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server_side.serve)
    server = await aiohttp_server(app)
    server_side.base = f"http://127.0.0.1:{server.port}"
    return server_side


@pytest.fixture
async def community(node_a: Node, lemmy: Lemmy) -> Community:
    """alice@a follows the community ``main`` on the loopback Lemmy."""
    group = lemmy.actor("/c/main", "Group")
    member = lemmy.actor("/u/beta", "Person")
    alice = await node_a.user("alice")
    group_account = await node_a.resolver.actor(group)
    assert group_account.actor_type == "Group"
    await follow_accepted(node_a.app, alice.id, group_account.id)
    return Community(lemmy, group, member, alice, group_account)


async def boosts_by(node: Node, account: Account, post_id: int) -> int:
    return await node.db.fetchvalue(
        "SELECT COUNT(*) FROM posts WHERE reblog_of_id = ? AND account_id = ?",
        (post_id, account.id),
    )


async def test_group_announce_of_a_page_stores_the_origin_version_by_its_author(
    node_a, community
):
    lemmy, group, member = community.lemmy, community.group, community.member
    real = lemmy.page("/post/7", member, group, "Real title", "<p>what beta wrote</p>")
    lemmy.serve_object(real)
    forged = {**real, "name": "Forged title", "content": "<p>words put in beta's mouth</p>"}
    await receive(node_a, lemmy.announce(group, lemmy.wrap("Create", member, forged, group)),
                  community.key)  # fmt: skip
    stored = await post_row(node_a, real["id"])
    assert stored is not None, "the relayed post was not stored"
    author = await node_a.resolver.known_account(member)
    assert author is not None and stored["account_id"] == author.id
    assert "what beta wrote" in stored["content_html"] and "mouth" not in stored["content_html"]
    assert stored["title"] == "Real title" and stored["kind"] == "article"
    # The community's followers get the thread as a boost by the community.
    assert await boosts_by(node_a, community.group_account, stored["id"]) == 1

    # A comment joins the thread as a reply to the post; it is not boosted.
    comment = note(member, "<p>the real comment</p>", inReplyTo=real["id"], to=[PUBLIC],
                   cc=[group], audience=group)  # fmt: skip
    lemmy.serve_object(comment)
    fake_comment = {**comment, "content": "<p>a forged comment</p>"}
    announce = lemmy.announce(group, lemmy.wrap("Create", member, fake_comment, group))
    await receive(node_a, announce, community.key)
    reply = await post_row(node_a, comment["id"])
    assert reply is not None and reply["in_reply_to_id"] == stored["id"]
    assert reply["account_id"] == author.id and "the real comment" in reply["content_html"]
    assert await boosts_by(node_a, community.group_account, reply["id"]) == 0

    # Relayed again (Lemmy retries with new ids): nothing new.
    before = await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts")
    again = lemmy.announce(group, lemmy.wrap("Create", member, forged, group))
    row = await receive(node_a, again, community.key)
    assert not refused(row)
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts") == before


async def test_group_announce_of_a_note_from_another_server(node_a, node_b, community):
    """A member on another instance (bob@b): his post is fetched from b, not the group."""
    lemmy, group = community.lemmy, community.group
    bob_b = await node_b.user("bob")
    post = await node_b.app[POSTS].publish(bob_b, Draft(source="bob's own words"))
    forged = note(node_b.actor("bob"), "<p>what the group claims</p>", id=post.uri, cc=[group])
    announce = lemmy.announce(group, lemmy.wrap("Create", node_b.actor("bob"), forged, group))
    await receive(node_a, announce, community.key)
    stored = await post_row(node_a, post.uri)
    bob = await node_a.resolver.known_account(node_b.actor("bob"))
    assert stored is not None and bob is not None and stored["account_id"] == bob.id
    assert "bob's own words" in stored["content_html"]
    assert "claims" not in stored["content_html"]


async def test_group_announce_of_an_activity_by_id(node_a, community):
    lemmy, group, member = community.lemmy, community.group, community.member
    real = lemmy.page("/post/8", member, group, "By id", "<p>linked</p>")
    lemmy.serve_object(real)
    create = lemmy.wrap("Create", member, real["id"], group)
    lemmy.serve_object(create)
    await receive(node_a, lemmy.announce(group, create["id"]), community.key)
    stored = await post_row(node_a, real["id"])
    assert stored is not None and "linked" in stored["content_html"]


async def test_group_relayed_update_and_delete_are_checked_at_the_origin(node_a, community):
    lemmy, group, member = community.lemmy, community.group, community.member
    real = lemmy.page("/post/9", member, group, "Title", "<p>first version</p>")
    lemmy.serve_object(real)
    await receive(node_a, lemmy.announce(group, lemmy.wrap("Create", member, real, group)),
                  community.key)  # fmt: skip

    edited = {**real, "content": "<p>second version</p>", "updated": "2024-05-02T10:00:00Z"}
    lemmy.serve_object(edited)
    forged = {**edited, "content": "<p>forged version</p>"}
    await receive(node_a, lemmy.announce(group, lemmy.wrap("Update", member, forged, group)),
                  community.key)  # fmt: skip
    stored = await post_row(node_a, real["id"])
    assert stored is not None and "second version" in stored["content_html"]

    # A Delete while the origin still serves the post is not believed...
    delete = lemmy.wrap("Delete", member, real["id"], group)
    row = await receive(node_a, lemmy.announce(group, delete), community.key)
    assert refused(row)
    assert (await post_row(node_a, real["id"]) or {}).get("deleted_at") is None
    # ...once it is gone there, the copy here goes too (with the community's boost).
    del lemmy.docs["/post/9"]
    tombstone = {"id": real["id"], "type": "Tombstone"}
    delete = lemmy.wrap("Delete", member, tombstone, group)
    await receive(node_a, lemmy.announce(group, delete), community.key)
    gone = await post_row(node_a, real["id"])
    assert gone is not None and gone["deleted_at"] is not None and gone["content_html"] == ""
    assert await boosts_by(node_a, community.group_account, gone["id"]) == 0


async def test_group_announce_nobody_follows_is_ignored(node_a, lemmy):
    group = lemmy.actor("/c/other", "Group")
    member = lemmy.actor("/u/gamma", "Person")
    real = lemmy.page("/post/10", member, group, "Unfollowed", "<p>nobody reads this</p>")
    lemmy.serve_object(real)
    row = await receive(node_a, lemmy.announce(group, lemmy.wrap("Create", member, real, group)),
                        lemmy.keys[group])  # fmt: skip
    assert row["last_error"] is None
    assert await post_row(node_a, real["id"]) is None


async def test_group_announce_of_unsupported_or_odd_activities_is_ignored(node_a, community):
    lemmy, group, member = community.lemmy, community.group, community.member
    real = lemmy.page("/post/11", member, group, "Title", "<p>body</p>")
    lemmy.serve_object(real)
    odd_objects: list[Any] = [
        lemmy.wrap("Like", member, real["id"], group),  # a Lemmy upvote
        lemmy.wrap("Dislike", member, real["id"], group),
        lemmy.wrap("Undo", member, lemmy.wrap("Like", member, real["id"], group), group),
        lemmy.wrap("Lock", member, real["id"], group),
        lemmy.wrap("Announce", group, lemmy.wrap("Create", member, real, group), group),
        lemmy.wrap("Add", member, real["id"], group) | {"target": f"{group}/featured"},
        lemmy.wrap("Create", member, None, group),
        lemmy.wrap("Create", member, 42, group),
        lemmy.wrap("Create", member, [], group),
        lemmy.wrap("Update", member, {"type": "Group", "id": group}, group),
        lemmy.wrap("Delete", member, "https://elsewhere.example/post/1", group),
        {"type": ["Create", "Activity"], "actor": {"id": member}, "object": {"id": 7}},
    ]
    for obj in odd_objects:
        row = await receive(node_a, lemmy.announce(group, obj), community.key)
        assert row["last_error"] is None or refused(row), (obj, row["last_error"])
    # None of those stored or boosted anything.
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts") == 0
    # A Create whose post is unavailable at its origin is refused, never stored from the copy.
    missing = lemmy.page("/post/404", member, group, "Missing", "<p>only in the copy</p>")
    row = await receive(node_a, lemmy.announce(group, lemmy.wrap("Create", member, missing, group)),
                        community.key)  # fmt: skip
    assert refused(row) and await post_row(node_a, missing["id"]) is None


async def test_corpus_group_announces_and_adds_are_handled_cleanly(node_a):
    """The corpus' Lemmy and WordPress shapes: no crash; nothing believed from the copies."""
    from test_corpus_inbox import CORPUS, NoNetwork, handle, load  # skips without the corpus

    from federation.http import Fetcher, FetchSettings

    await node_a.user("alice")
    node_a.resolver.fetcher = Fetcher(FetchSettings(timeout_s=2), resolver=NoNetwork())
    outcomes = {
        name: await handle(node_a, load(CORPUS / "social" / name))
        for name in ("lemmy-announce-create-page.json", "wordpress-announce-update-article.json",
                     "lemmy-add-featured-post.json", "lemmy-add-moderator.json")
    }  # fmt: skip
    # The origin is unreachable: the relayed Page is not stored from the community's copy.
    assert outcomes["lemmy-announce-create-page.json"].startswith("refused"), outcomes
    assert outcomes["wordpress-announce-update-article.json"] == "handled", outcomes
    # Lemmy's Add names the community's collections, not the actor's featured posts.
    assert outcomes["lemmy-add-featured-post.json"].startswith("refused"), outcomes
    assert outcomes["lemmy-add-moderator.json"].startswith("refused"), outcomes
    assert await node_a.db.fetchvalue("SELECT COUNT(*) FROM posts") == 0
