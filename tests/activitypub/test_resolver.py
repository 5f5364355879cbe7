"""Finding and storing remote actors, keys and posts, against a second real node."""

from __future__ import annotations

import pytest
from aiohttp import web
from conftest import Node, block_domain, create, note

from federation.keys import generate_rsa_key, public_key_of
from federation.objects import parse_note
from xnode.activitypub.resolver import BlockedDomain, ResolveError
from xnode.activitypub.urls import PUBLIC
from xnode.posts.service import Draft
from xnode.store import accounts as account_store
from xnode.store import posts as post_store
from xnode.web.state import POSTS, RELATIONSHIPS


async def test_actor_by_handle_stores_the_remote_account(node_a: Node, node_b: Node):
    bob = await node_b.user(
        "bob", display_name="Bob \u202eevil",
        bio_html='<p>Hi <script>x()</script><a href="/rel">r</a></p>',
        fields_json='[{"name": "Site", "value": "https://bob.example"}]', locked=1,
        avatar_file="a.png",
    )  # fmt: skip
    account = await node_a.resolver.actor_by_handle(f"@bob@{node_b.settings.domain}")
    assert account.uri == node_b.actor("bob") and not account.is_local
    assert account.username == "bob" and account.domain == node_b.settings.domain
    assert account.acct == f"bob@{node_b.settings.domain}"
    assert account.display_name == "Bob evil"  # the bidi override is gone
    assert "script" not in account.bio_html and 'href="/rel"' not in account.bio_html
    assert [(f.name, f.value) for f in account.fields] == [("Site", "https://bob.example")]
    assert account.locked and account.discoverable and account.actor_type == "Person"
    assert account.inbox_url == f"{node_b.actor('bob')}/inbox"
    assert account.shared_inbox_url == f"{node_b.base}/inbox"
    assert account.followers_url == node_b.urls.followers("bob")
    assert account.following_url == node_b.urls.following("bob")
    assert account.outbox_url == node_b.urls.outbox("bob")
    assert account.featured_url == node_b.urls.featured("bob")
    assert account.avatar_remote_url == f"{node_b.base}/media/a.png"
    assert account.fetched_at == node_a.clock.now()
    keys = await node_a.db.fetchall(
        "SELECT key_id, algorithm, private_pem FROM account_keys WHERE account_id = ?",
        (account.id,),
    )
    assert {(k["key_id"], k["algorithm"], k["private_pem"]) for k in keys} == {
        (node_b.urls.main_key("bob"), "rsa", None),
        (node_b.urls.ed25519_key("bob"), "ed25519", None),
    }
    assert bob.id  # the remote node's own row is unrelated to ours


async def test_actors_are_cached_for_a_day(node_a: Node, node_b: Node):
    bob = await node_b.user("bob", display_name="Bob")
    uri = node_b.actor("bob")
    first = await node_a.resolver.actor(uri)
    await node_b.db.execute("UPDATE accounts SET display_name = 'Robert' WHERE id = ?", (bob.id,))
    node_a.clock.advance(23 * 3600)
    assert (await node_a.resolver.actor(uri)).display_name == "Bob"
    assert (await node_a.resolver.actor(uri, refresh=True)).display_name == "Robert"
    await node_b.db.execute("UPDATE accounts SET display_name = 'Rob' WHERE id = ?", (bob.id,))
    node_a.clock.advance(25 * 3600)
    again = await node_a.resolver.actor(uri)
    assert again.display_name == "Rob" and again.id == first.id


async def test_stale_copy_is_used_when_the_server_is_down(node_a: Node, make_node):
    node_c = await make_node("c")
    await node_c.user("carol")
    cached = await node_a.resolver.actor(node_c.actor("carol"))
    await node_c.client.close()
    node_a.clock.advance(2 * 24 * 3600)
    assert (await node_a.resolver.actor(node_c.actor("carol"))).id == cached.id
    with pytest.raises(ResolveError):
        await node_a.resolver.actor(f"{node_c.base}/users/nobody")


async def test_local_uris_and_handles_resolve_without_http(node_a: Node):
    alice = await node_a.user("alice")
    assert (await node_a.resolver.actor(node_a.actor("alice"))).id == alice.id
    assert (await node_a.resolver.actor(f"{node_a.base}/@alice")).id == alice.id
    handle = f"alice@{node_a.settings.domain}"
    assert (await node_a.resolver.actor_by_handle(handle)).id == alice.id
    with pytest.raises(ResolveError):
        await node_a.resolver.actor(node_a.actor("nobody"))


async def test_suspended_domains_are_refused(node_a: Node, node_b: Node):
    await node_b.user("bob")
    await block_domain(node_a, "127.0.0.1")
    with pytest.raises(BlockedDomain):
        await node_a.resolver.actor(node_b.actor("bob"))
    with pytest.raises(BlockedDomain):
        await node_a.resolver.actor_by_handle(f"bob@{node_b.settings.domain}")


async def test_public_key_by_key_id(node_a: Node, node_b: Node):
    bob = await node_b.user("bob")
    key = await node_b.key(bob)
    owner, public = await node_a.resolver.public_key(key.key_id)
    assert owner.uri == node_b.actor("bob") and public == key.public_key
    cached_owner, _ = await node_a.resolver.public_key(key.key_id)
    assert cached_owner.id == owner.id
    with pytest.raises(ResolveError):
        await node_a.resolver.public_key(f"{node_b.actor('bob')}#other-key")


async def test_keys_kept_in_memory_follow_writes_to_keys_and_accounts(node_a: Node, node_b: Node):
    bob = await node_b.user("bob")
    key = await node_b.key(bob)
    owner, public = await node_a.resolver.public_key(key.key_id)
    new_key = public_key_of(generate_rsa_key())
    async with node_a.db.transaction() as conn:
        await conn.execute(
            "UPDATE account_keys SET public_pem = ? WHERE key_id = ?",
            (new_key.to_pem(), key.key_id),
        )
    # A rotation stored by this node is seen at once, not after the cache expires.
    assert (await node_a.resolver.public_key(key.key_id))[1] == new_key
    async with node_a.db.transaction() as conn:
        await account_store.set_suspended(conn, owner.id, node_a.clock.now())
    suspended, _ = await node_a.resolver.public_key(key.key_id)
    assert suspended.is_suspended and not owner.is_suspended
    assert public == key.public_key


async def test_accounts_kept_in_memory_follow_writes_to_accounts(node_a: Node, node_b: Node):
    await node_b.user("bob")
    uri = node_b.actor("bob")
    fetched = await node_a.resolver.actor(uri)
    assert (await node_a.resolver.known_account(uri)) == fetched
    async with node_a.db.transaction() as conn:
        await account_store.set_suspended(conn, fetched.id, node_a.clock.now())
    # Both the by-URI read and the no-fetch path of actor() see the write at once.
    known = await node_a.resolver.known_account(uri)
    assert known is not None and known.is_suspended
    assert (await node_a.resolver.actor(uri)).is_suspended


async def test_standalone_key_document_names_its_owner(node_a: Node, aiohttp_server):
    """GoToSocial-style key ids: the key is a document of its own with an ``owner``."""
    private = generate_rsa_key()
    pem = public_key_of(private).to_pem()
    docs: dict[str, dict] = {}

    async def serve(request: web.Request) -> web.Response:
        if request.path not in docs:
            raise web.HTTPNotFound()
        return web.json_response(docs[request.path], content_type="application/activity+json")

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    docs["/users/dan"] = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": f"{base}/users/dan", "type": "Person", "preferredUsername": "dan",
        "inbox": f"{base}/users/dan/inbox",
        "publicKey": {"id": f"{base}/users/dan/main-key", "owner": f"{base}/users/dan",
                      "publicKeyPem": pem},
    }  # fmt: skip
    docs["/users/dan/main-key"] = {"@context": "https://w3id.org/security/v1",
                                   **docs["/users/dan"]["publicKey"]}  # fmt: skip
    owner, public = await node_a.resolver.public_key(f"{base}/users/dan/main-key")
    assert owner.uri == f"{base}/users/dan" and public.to_pem() == pem
    # A key document whose owner does not list that key is refused.
    other = f"{base}/users/dan/other-key"
    docs["/users/dan/other-key"] = {**docs["/users/dan/main-key"], "id": other}
    with pytest.raises(ResolveError):
        await node_a.resolver.public_key(f"{base}/users/dan/other-key")
    # An owner on another host cannot vouch for this host's keys.
    docs["/users/dan/third-key"] = {**docs["/users/dan/main-key"],
                                    "owner": "https://elsewhere.example/users/dan"}  # fmt: skip
    with pytest.raises(ResolveError):
        await node_a.resolver.public_key(f"{base}/users/dan/third-key")


# --- posts -----------------------------------------------------------------------------


async def test_note_fetches_stores_and_sanitises(node_a: Node, node_b: Node):
    bob = await node_b.user("bob")
    post = await node_b.app[POSTS].publish(bob, Draft(source="hello #Fedi https://x.example"))
    stored = await node_a.resolver.note(post.uri)
    assert stored is not None and not stored.local
    assert stored.uri == post.uri and stored.url == post.url
    assert stored.visibility == "public" and stored.content_html == post.content_html
    assert (await post_store.tags_of(node_a.db, [stored.id]))[stored.id] == ["fedi"]
    again = await node_a.resolver.note(post.uri)
    assert again is not None and again.id == stored.id
    hits = await node_a.db.fetchall("SELECT rowid FROM posts_fts WHERE text LIKE '%hello%'")
    assert [row[0] for row in hits] == [stored.id]


async def test_followers_only_posts_cannot_be_fetched_by_the_instance(node_a: Node, node_b: Node):
    bob = await node_b.user("bob")
    post = await node_b.app[POSTS].publish(bob, Draft(source="friends", visibility="followers"))
    assert await node_a.resolver.note(post.uri) is None


async def test_reply_chains_are_fetched_to_a_bounded_depth(node_a: Node, node_b: Node):
    bob = await node_b.user("bob")
    posts = node_b.app[POSTS]
    chain = [await posts.publish(bob, Draft(source="root"))]
    for n in range(7):
        chain.append(await posts.publish(bob, Draft(source=f"reply {n}",
                                                    in_reply_to_id=chain[-1].id)))  # fmt: skip
    last = await node_a.resolver.note(chain[-1].uri)
    assert last is not None
    stored = await node_a.db.fetchall("SELECT uri, in_reply_to_id FROM posts ORDER BY id")
    # The reply itself and five ancestors; the rest of the thread stays unfetched.
    assert [row["uri"] for row in stored] == [p.uri for p in chain[-6:]]
    assert stored[0]["in_reply_to_id"] is None and all(r["in_reply_to_id"] for r in stored[1:])


def remote_note_for(node_b: Node, **kwargs) -> dict:
    return note(node_b.actor("bob"), **kwargs)


@pytest.mark.parametrize(
    ("to", "cc", "expected"),
    [
        ([PUBLIC], ["{followers}"], "public"),
        (["{followers}"], [PUBLIC], "unlisted"),
        (["{followers}"], [], "followers"),
        (["{alice}"], [], "direct"),
        ([], [], "direct"),
    ],
)
async def test_visibility_comes_from_addressing(node_a: Node, node_b: Node, to, cc, expected):
    alice = await node_a.user("alice")
    await node_b.user("bob")
    bob = await node_a.resolver.actor(node_b.actor("bob"))
    names = {"{followers}": bob.followers_url, "{alice}": node_a.actor("alice")}
    doc = remote_note_for(node_b, to=[names.get(a, a) for a in to],
                          cc=[names.get(a, a) for a in cc])  # fmt: skip
    post = await node_a.resolver.store_note(parse_note(doc), bob)
    assert post.visibility == expected
    if expected == "direct" and to:
        # A local addressee counts as mentioned, so the message reaches them.
        assert (await node_a.app[POSTS].hydrate(alice.id, [post]))


async def test_mentions_replies_media_and_notifications(node_a: Node, node_b: Node):
    alice = await node_a.user("alice")
    await node_b.user("bob")
    bob = await node_a.resolver.actor(node_b.actor("bob"))
    original = await node_a.app[POSTS].publish(alice, Draft(source="question?"))
    doc = remote_note_for(
        node_b, content='<p><a href="x" onclick="evil()">@alice</a> answer</p>',
        cc=[node_a.actor("alice")], inReplyTo=original.uri, sensitive=True, summary="cw",
        tag=[{"type": "Mention", "href": node_a.actor("alice"), "name": "@alice"}],
        attachment=[{"type": "Document", "mediaType": "image/png", "url": "https://m.example/1.png",
                     "name": "a cat", "width": 10, "height": 20}],
    )  # fmt: skip
    reply = await node_a.resolver.store_note(parse_note(doc), bob)
    assert "onclick" not in reply.content_html
    assert reply.in_reply_to_id == original.id and reply.summary == "cw" and reply.sensitive
    parent = await post_store.get_post(node_a.db, original.id)
    assert parent is not None and parent.replies_count == 1
    media = (await post_store.media_of(node_a.db, [reply.id]))[reply.id]
    assert [(m.remote_url, m.file_name, m.description, m.width) for m in media] == [
        ("https://m.example/1.png", None, "a cat", 10)
    ]
    kinds = await node_a.db.fetchall(
        "SELECT type, post_id FROM notifications WHERE account_id = ?", (alice.id,)
    )
    assert [(k["type"], k["post_id"]) for k in kinds] == [("reply", reply.id)]


async def test_replies_to_posts_the_author_cannot_see_are_not_attached(node_a: Node, node_b: Node):
    alice = await node_a.user("alice")
    await node_b.user("bob")
    bob = await node_a.resolver.actor(node_b.actor("bob"))
    secret = await node_a.app[POSTS].publish(alice, Draft(source="s", visibility="followers"))
    reply = await node_a.resolver.store_note(
        parse_note(remote_note_for(node_b, inReplyTo=secret.uri)), bob
    )
    assert reply.in_reply_to_id is None and reply.in_reply_to_uri == secret.uri
    await node_a.app[RELATIONSHIPS].follow(bob.id, alice.id)
    attached = await node_a.resolver.store_note(
        parse_note(remote_note_for(node_b, inReplyTo=secret.uri)), bob
    )
    assert attached.in_reply_to_id == secret.id


async def test_store_is_idempotent_and_refuses_other_authors(node_a: Node, node_b: Node):
    await node_b.user("bob")
    await node_b.user("carol")
    bob = await node_a.resolver.actor(node_b.actor("bob"))
    carol = await node_a.resolver.actor(node_b.actor("carol"))
    parsed = parse_note(remote_note_for(node_b))
    first = await node_a.resolver.store_note(parsed, bob)
    assert (await node_a.resolver.store_note(parsed, bob)).id == first.id
    with pytest.raises(ResolveError):
        await node_a.resolver.store_note(parsed, carol)


async def test_update_keeps_the_previous_version(node_a: Node, node_b: Node):
    await node_b.user("bob")
    bob = await node_a.resolver.actor(node_b.actor("bob"))
    doc = remote_note_for(node_b, content="<p>first</p>")
    post = await node_a.resolver.store_note(parse_note(doc), bob)
    edited = await node_a.resolver.update_note(
        parse_note({**doc, "content": "<p>second</p>", "updated": "2024-01-02T00:00:00Z"}), bob
    )
    assert edited is not None and edited.content_html == "<p>second</p>" and edited.edited_at
    history = await post_store.list_edits(node_a.db, post.id)
    assert [h.content_html for h in history] == ["<p>first</p>"]
    unknown = parse_note(remote_note_for(node_b))
    assert await node_a.resolver.update_note(unknown, bob) is None


async def test_create_builder_shape(node_b: Node):
    """The builder the inbox tests use produces what Mastodon sends."""
    doc = create(remote_note_for(node_b))
    assert doc["id"].endswith("/activity") and doc["object"]["attributedTo"] == doc["actor"]
