"""The GET side: discovery documents, actors, collections, objects and who may see them."""

from __future__ import annotations

import json

from conftest import AP_JSON, Node, signed_get

from federation import jsonld
from federation import nodeinfo as nodeinfo_lib
from federation.actors import parse_actor
from federation.keys import PublicKey
from federation.webfinger import parse_jrd, resolve_actor_url
from xnode.activitypub.urls import PUBLIC
from xnode.posts.service import Draft
from xnode.store import posts as post_store
from xnode.web.state import POSTS, RELATIONSHIPS

LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


async def body_of(response) -> dict:
    """The JSON body, whatever the content type says."""
    return json.loads(await response.text())


# --- discovery ------------------------------------------------------------------------


async def test_webfinger_finds_a_user_by_acct_and_by_actor_url(node_a: Node):
    await node_a.user("alice")
    domain = node_a.settings.domain
    response = await node_a.client.get(f"/.well-known/webfinger?resource=acct:alice@{domain}")
    assert response.status == 200
    assert response.content_type == "application/jrd+json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    jrd = parse_jrd(await body_of(response))
    found = resolve_actor_url(jrd, served_by=domain, allow_http=True)
    assert found.actor_url == node_a.actor("alice")
    assert str(found.handle) == f"alice@{domain}"
    by_url = await node_a.client.get(
        "/.well-known/webfinger", params={"resource": node_a.actor("alice")}
    )
    assert (await body_of(by_url))["subject"] == f"acct:alice@{domain}"


async def test_webfinger_answers_400_for_garbage_and_404_for_strangers(node_a: Node):
    await node_a.user("alice")
    domain = node_a.settings.domain
    assert (await node_a.client.get("/.well-known/webfinger")).status == 400
    bad = await node_a.client.get("/.well-known/webfinger?resource=acct:not a handle")
    assert bad.status == 400
    for resource in (f"acct:nobody@{domain}", "acct:alice@elsewhere.example",
                     "https://elsewhere.example/users/alice", f"{node_a.base}/tags/x"):
        response = await node_a.client.get("/.well-known/webfinger", params={"resource": resource})
        assert response.status == 404, resource


async def test_webfinger_knows_the_instance_actor(node_a: Node):
    domain = node_a.settings.domain
    name = domain.split(":")[0]  # test nodes have a port in their domain
    for resource in (f"acct:{name}@{domain}", f"{node_a.base}/actor"):
        response = await node_a.client.get("/.well-known/webfinger", params={"resource": resource})
        doc = await body_of(response)
        assert doc["subject"] == f"acct:{name}@{domain}"
        assert {"rel": "self", "type": AP_JSON, "href": f"{node_a.base}/actor"} in doc["links"]


async def test_host_meta_and_nodeinfo(node_a: Node):
    alice = await node_a.user("alice")
    await node_a.app[POSTS].publish(alice, Draft(source="hello"))
    host_meta = await node_a.client.get("/.well-known/host-meta")
    assert host_meta.content_type == "application/xrd+xml"
    assert f"{node_a.base}/.well-known/webfinger?resource={{uri}}" in await host_meta.text()
    links = await body_of(await node_a.client.get("/.well-known/nodeinfo"))
    assert nodeinfo_lib.pick_nodeinfo_url(links) == f"{node_a.base}/nodeinfo/2.1"
    response = await node_a.client.get("/nodeinfo/2.1")
    assert response.content_type == "application/json"
    assert "nodeinfo.diaspora.software/ns/schema/2.1" in response.headers["Content-Type"]
    info = nodeinfo_lib.parse_nodeinfo(await body_of(response))
    assert info.software_name == "xnode" and info.speaks_activitypub
    assert info.open_registrations is True
    assert info.usage.users_total == 1
    assert info.usage.users_active_month == 1
    assert info.usage.local_posts == 1


# --- actors ---------------------------------------------------------------------------


async def test_actor_document_has_keys_endpoints_and_multikey(node_a: Node):
    await node_a.user("alice", display_name="Alice", locked=1)
    response = await node_a.client.get("/users/alice", headers={"Accept": AP_JSON})
    assert response.status == 200
    assert response.content_type == AP_JSON
    doc = await body_of(response)
    actor = parse_actor(doc, expected_id=node_a.actor("alice"), allow_http=True)
    assert actor.type == "Person" and actor.name == "Alice"
    assert actor.inbox == f"{node_a.actor('alice')}/inbox"
    assert actor.shared_inbox == f"{node_a.base}/inbox"
    assert actor.manually_approves_followers
    assert actor.public_key is not None and actor.public_key.id.endswith("#main-key")
    PublicKey.from_pem(actor.public_key.pem)
    (multikey,) = actor.assertion_methods
    assert PublicKey.from_multibase(multikey.public_key_multibase).algorithm == "ed25519"


async def test_json_ld_readers_find_our_ed25519_key(node_a: Node):
    """Expanded as JSON-LD (as Fedify reads actors), the actor still has its Multikey in
    assertionMethod, so FEP-8b32 proofs can be verified (issue 15)."""
    await node_a.user("alice")
    response = await node_a.client.get("/users/alice", headers={"Accept": AP_JSON})
    [expanded] = jsonld.expand(await body_of(response))
    sec = "https://w3id.org/security#"
    [method] = expanded[f"{sec}assertionMethod"]
    assert method["@id"].endswith("#ed25519-key")
    assert method["@type"] == [f"{sec}Multikey"]
    [value] = method[f"{sec}publicKeyMultibase"]
    key = PublicKey.from_multibase(value["@value"])
    assert key.algorithm == "ed25519"
    [controller] = method[f"{sec}controller"]
    assert controller["@id"] == node_a.actor("alice")


async def test_instance_actor(node_a: Node):
    doc = await body_of(await node_a.client.get("/actor", headers={"Accept": AP_JSON}))
    actor = parse_actor(doc, expected_id=f"{node_a.base}/actor", allow_http=True)
    assert actor.type == "Application"
    assert actor.public_key is not None


async def test_profile_url_negotiates_between_html_and_activitypub(node_a: Node):
    alice = await node_a.user("alice")
    for accept in (AP_JSON, LD_JSON, "application/ld+json"):
        response = await node_a.client.get("/@alice", headers={"Accept": accept})
        assert response.status == 200, accept
        assert (await body_of(response))["id"] == node_a.actor("alice")
    page = await node_a.client.get("/@alice", headers={"Accept": "text/html"})
    assert page.content_type == "text/html"
    post = await node_a.app[POSTS].publish(alice, Draft(source="hi"))
    as_json = await node_a.client.get(f"/@alice/{post.id}", headers={"Accept": AP_JSON})
    assert (await body_of(as_json))["id"] == post.uri
    as_html = await node_a.client.get(f"/@alice/{post.id}", headers={"Accept": "text/html"})
    assert as_html.content_type == "text/html"
    browser = await node_a.client.get("/users/alice", headers={"Accept": "text/html"},
                                      allow_redirects=False)  # fmt: skip
    assert browser.status == 302 and browser.headers["Location"].endswith("/@alice")


async def test_deleted_and_suspended_accounts(node_a: Node):
    alice = await node_a.user("alice")
    await node_a.user("bob")
    await node_a.db.execute("UPDATE accounts SET deleted_at = 1 WHERE id = ?", (alice.id,))
    gone = await node_a.client.get("/users/alice", headers={"Accept": AP_JSON})
    assert gone.status == 410
    assert (await body_of(gone))["type"] == "Tombstone"
    resource = f"acct:alice@{node_a.settings.domain}"
    webfinger = await node_a.client.get("/.well-known/webfinger", params={"resource": resource})
    assert webfinger.status == 410
    assert (await node_a.client.get("/users/alice/outbox")).status == 410
    await node_a.db.execute("UPDATE accounts SET suspended_at = 1 WHERE username = 'bob'")
    assert (await node_a.client.get("/users/bob", headers={"Accept": AP_JSON})).status == 404
    assert (await node_a.client.get("/users/nobody", headers={"Accept": AP_JSON})).status == 404


# --- collections ------------------------------------------------------------------------


async def test_outbox_pages_public_posts_and_boosts_only(node_a: Node):
    alice = await node_a.user("alice")
    posts = node_a.app[POSTS]
    public = await posts.publish(alice, Draft(source="public"))
    await posts.publish(alice, Draft(source="secret", visibility="followers"))
    await posts.publish(alice, Draft(source="dm", visibility="direct"))
    await posts.boost(alice, public.id)
    root = await body_of(await node_a.client.get("/users/alice/outbox"))
    assert root["type"] == "OrderedCollection" and root["totalItems"] == 2
    page = await body_of(await node_a.client.get(root["first"].removeprefix(node_a.base)))
    kinds = [(item["type"], item["object"] if item["type"] == "Announce" else
              item["object"]["content"]) for item in page["orderedItems"]]  # fmt: skip
    assert kinds == [("Announce", public.uri), ("Create", public.content_html)]
    assert all(PUBLIC in item["to"] + item["cc"] for item in page["orderedItems"])


async def test_followers_collection_pages_and_hidden_network(node_a: Node):
    alice = await node_a.user("alice")
    for name in ("bob", "carol"):
        other = await node_a.user(name)
        await node_a.app[RELATIONSHIPS].follow(other.id, alice.id)
    root = await body_of(await node_a.client.get("/users/alice/followers"))
    assert root["totalItems"] == 2
    page = await body_of(await node_a.client.get(root["first"].removeprefix(node_a.base)))
    assert set(page["orderedItems"]) == {node_a.actor("bob"), node_a.actor("carol")}
    following = await body_of(await node_a.client.get("/users/bob/following?page=true"))
    assert following["orderedItems"] == [node_a.actor("alice")]
    await node_a.db.execute("UPDATE accounts SET hide_network = 1 WHERE id = ?", (alice.id,))
    hidden = await body_of(await node_a.client.get("/users/alice/followers"))
    assert hidden["totalItems"] == 2 and "first" not in hidden
    assert "orderedItems" not in await body_of(
        await node_a.client.get("/users/alice/followers?page=true")
    )


async def test_featured_embeds_pinned_notes(node_a: Node):
    alice = await node_a.user("alice")
    post = await node_a.app[POSTS].publish(alice, Draft(source="pinned"))
    await node_a.app[POSTS].pin(alice.id, post.id)
    doc = await body_of(await node_a.client.get("/users/alice/collections/featured"))
    assert doc["totalItems"] == 1 and doc["orderedItems"][0]["id"] == post.uri


# --- objects ----------------------------------------------------------------------------


async def test_public_note_and_its_create(node_a: Node):
    alice = await node_a.user("alice")
    post = await node_a.app[POSTS].publish(alice, Draft(source="hello #world"))
    path = post.uri.removeprefix(node_a.base)
    note = await body_of(await node_a.client.get(path, headers={"Accept": AP_JSON}))
    assert note["type"] == "Note" and note["to"] == [PUBLIC] and "@context" in note
    assert note["tag"][0]["name"] == "#world"
    create = await body_of(await node_a.client.get(f"{path}/activity"))
    assert create["type"] == "Create" and create["object"]["id"] == post.uri


async def test_followers_only_note_only_for_a_signed_fetch_by_a_follower(
    node_a: Node, node_b: Node
):
    alice = await node_a.user("alice")
    bob, carol = await node_b.user("bob"), await node_b.user("carol")
    post = await node_a.app[POSTS].publish(alice, Draft(source="friends", visibility="followers"))
    path = post.uri.removeprefix(node_a.base)
    # bob (on node b) follows alice: node a knows him through his actor document.
    remote_bob = await node_a.resolver.actor(node_b.actor("bob"))
    await node_a.app[RELATIONSHIPS].follow(remote_bob.id, alice.id)

    assert (await signed_get(node_a, path, None)).status == 401
    as_bob = await signed_get(node_a, path, await node_b.key(bob))
    assert as_bob.status == 200
    assert (await body_of(as_bob))["to"] == [node_a.urls.followers("alice")]
    assert (await signed_get(node_a, path, await node_b.key(carol))).status == 404


async def test_direct_note_only_for_the_mentioned(node_a: Node, node_b: Node):
    alice = await node_a.user("alice")
    bob, carol = await node_b.user("bob"), await node_b.user("carol")
    remote_bob = await node_a.resolver.actor(node_b.actor("bob"))
    post = await node_a.app[POSTS].publish(alice, Draft(source="psst", visibility="direct"))
    # Mentioned by hand: handles with an IP address and port are not linkified in text.
    async with node_a.db.transaction() as conn:
        await post_store.set_mentions(conn, post.id, [remote_bob.id])
    path = post.uri.removeprefix(node_a.base) + "/activity"
    assert (await signed_get(node_a, path, await node_b.key(bob))).status == 200
    assert (await signed_get(node_a, path, await node_b.key(carol))).status == 404
    assert (await signed_get(node_a, path, None)).status == 401


async def test_forged_signature_on_a_fetch_is_401(node_a: Node, node_b: Node):
    alice = await node_a.user("alice")
    bob, carol = await node_b.user("bob"), await node_b.user("carol")
    post = await node_a.app[POSTS].publish(alice, Draft(source="x", visibility="followers"))
    bob_key, carol_key = await node_b.key(bob), await node_b.key(carol)
    # carol's private key under bob's key id: the signature does not verify.
    forged = type(bob_key)(bob_key.key_id, carol_key.private_key, carol_key.public_key)
    response = await signed_get(node_a, post.uri.removeprefix(node_a.base), forged)
    assert response.status == 401


async def test_deleted_note_is_410_with_a_tombstone(node_a: Node):
    alice = await node_a.user("alice")
    post = await node_a.app[POSTS].publish(alice, Draft(source="bye"))
    await node_a.app[POSTS].delete(alice.id, post.id)
    response = await node_a.client.get(post.uri.removeprefix(node_a.base))
    assert response.status == 410
    assert (await body_of(response)) | {} == {
        "@context": "https://www.w3.org/ns/activitystreams", "id": post.uri,
        "type": "Tombstone", "deleted": (await body_of(response))["deleted"],
    }


async def test_authorized_fetch_requires_signatures_except_for_actors(make_node):
    node_a = await make_node("a", authorized_fetch=True)
    node_b = await make_node("b")
    alice = await node_a.user("alice")
    bob = await node_b.user("bob")
    post = await node_a.app[POSTS].publish(alice, Draft(source="public but guarded"))
    path = post.uri.removeprefix(node_a.base)
    assert (await signed_get(node_a, path, None)).status == 401
    assert (await signed_get(node_a, "/users/alice/outbox", None)).status == 401
    assert (await signed_get(node_a, "/users/alice", None)).status == 200
    assert (await signed_get(node_a, "/actor", None)).status == 200
    assert (await signed_get(node_a, path, await node_b.key(bob))).status == 200
