"""Two complete nodes on loopback ports federating over real HTTP with real signatures.

Nothing is stubbed: each node is `create_app(settings)` with its workers
running; follows, posts, replies, likes, boosts, deletes and DMs travel as
signed activities through the delivery queues and inboxes.
"""

from __future__ import annotations

import pytest
from live_nodes import PASSWORD, LiveNode, eventually, follow_across, nodes, remote_post

from xnode.accounts.models import Account
from xnode.errors import NotFound
from xnode.posts.service import Draft
from xnode.web.state import ACCOUNTS, DB, NOTIFICATIONS, POSTS, RELATIONSHIPS, TIMELINES

__all__ = ["nodes"]  # the fixture, imported for pytest


async def test_follow_post_reply_like_boost_delete_across_nodes(nodes):
    a, b = nodes
    alice = await a.user("alice")
    bob = await b.user("bob")

    # bob@B follows alice@A: Follow → A auto-accepts → Accept → B marks it accepted.
    alice_on_b = await b.remote(f"alice@{a.domain}")
    assert alice_on_b.uri == f"http://{a.domain}/users/alice"
    await b[RELATIONSHIPS].follow(bob.id, alice_on_b.id)

    async def accepted():
        return (await b[RELATIONSHIPS].relationship(bob.id, alice_on_b.id)).following

    await eventually(accepted)
    bob_on_a = await a.remote(f"bob@{b.domain}")
    assert (await a[RELATIONSHIPS].counts(alice.id))[0] == 1
    assert (await a[RELATIONSHIPS].relationship(alice.id, bob_on_a.id)).followed_by

    # alice posts publicly: it reaches bob's home timeline on B.
    post = await a[POSTS].publish(alice, Draft("Hello from A #federation"))
    row = await eventually(lambda: remote_post(b, post.uri))
    assert row["visibility"] == "public" and "Hello from A" in row["content_html"]
    home = await b[TIMELINES].home(bob.id)
    assert [v.post.uri for v in home.items] == [post.uri]

    # bob replies from B: alice gets the reply and a notification on A.
    copy_id = row["id"]
    reply = await b[POSTS].publish(bob, Draft(f"@alice@{a.domain} hi!", in_reply_to_id=copy_id))
    reply_on_a = await eventually(lambda: remote_post(a, reply.uri))
    assert reply_on_a["in_reply_to_id"] == post.id
    notes, _ = await a[NOTIFICATIONS].page(alice.id)
    assert {n.kind for n in notes} >= {"follow", "reply"}

    # bob likes and boosts alice's post: A counts both.
    await b[POSTS].like(bob.id, copy_id)
    await b[POSTS].boost(bob, copy_id)

    async def counted():
        view = await a[POSTS].view(alice.id, post.id)
        return view.post.likes_count == 1 and view.post.reblogs_count == 1

    await eventually(counted)

    # alice deletes: the copy on B becomes a tombstone.
    await a[POSTS].delete(alice.id, post.id)

    async def tombstoned():
        found = await remote_post(b, post.uri)
        return found is not None and found["deleted_at"] is not None

    await eventually(tombstoned)


async def test_direct_message_reaches_only_its_recipient(nodes):
    a, b = nodes
    alice = await a.user("alice")
    bob = await b.user("bob")
    carol = await b.user("carol")
    await a.remote(f"bob@{b.domain}")
    dm = await a[POSTS].publish(
        alice, Draft(f"@bob@{b.domain} just between us", visibility="direct")
    )
    row = await eventually(lambda: remote_post(b, dm.uri))
    assert row["visibility"] == "direct"
    assert (await b[POSTS].view(bob.id, row["id"])).post.uri == dm.uri
    with pytest.raises(NotFound):
        await b[POSTS].view(carol.id, row["id"])
    with pytest.raises(NotFound):
        await b[POSTS].view(None, row["id"])


async def test_unfollow_stops_delivery(nodes):
    a, b = nodes
    alice = await a.user("alice")
    bob = await b.user("bob")
    alice_on_b = await b.remote(f"alice@{a.domain}")
    await b[RELATIONSHIPS].follow(bob.id, alice_on_b.id)

    async def followed():
        return await _count(a, alice) == 1

    await eventually(followed)
    await b[RELATIONSHIPS].unfollow(bob.id, alice_on_b.id)

    async def gone():
        return await _count(a, alice) == 0

    await eventually(gone)


async def _count(node: LiveNode, account: Account) -> int:
    return (await node[RELATIONSHIPS].counts(account.id))[0]


async def test_remote_account_found_by_search_and_followed_from_its_profile(nodes):
    from aiohttp.test_utils import TestClient
    from support_web import csrf_token_of

    a, b = nodes
    alice = await a.user("alice")
    await b.user("bob")
    browser = TestClient(b.server)
    await browser.start_server()
    try:
        login_page = await (await browser.get("/login")).text()
        await browser.post("/login", data={"csrf_token": csrf_token_of(login_page),
                                           "username": "bob", "password": PASSWORD})
        found = await (await browser.get(f"/search?q=@alice@{a.domain}")).text()
        assert f"alice@{a.domain}" in found
        profile = await browser.get(f"/@alice@{a.domain}")
        assert profile.status == 200
        page = await profile.text()
        response = await browser.post(
            f"/@alice@{a.domain}/follow", data={"csrf_token": csrf_token_of(page)},
            allow_redirects=False,
        )
        assert response.status == 303

        async def followed():
            return await _count(a, alice) == 1

        await eventually(followed)
        post = await a[POSTS].publish(alice, Draft("visible on B's copy of my profile"))
        await eventually(lambda: remote_post(b, post.uri))
        page = await (await browser.get(f"/@alice@{a.domain}")).text()
        assert "visible on B" in page
        # Anonymous visitors cannot make the node fetch unknown remote accounts.
        anonymous = TestClient(b.server)
        await anonymous.start_server()
        assert (await anonymous.get("/@nobody@example.invalid")).status == 404
        await anonymous.close()
    finally:
        await browser.close()


async def test_profile_edit_and_account_deletion_reach_followers(nodes):
    from xnode.accounts.profile import ProfileEdit
    from xnode.web.state import PROFILES

    a, b = nodes
    alice = await a.user("alice")
    bob = await b.user("bob")
    alice_on_b = await b.remote(f"alice@{a.domain}")
    await b[RELATIONSHIPS].follow(bob.id, alice_on_b.id)

    async def followed():
        return await _count(a, alice) == 1

    await eventually(followed)
    await a[PROFILES].edit_profile(
        alice.id, ProfileEdit(display_name="Alice from A", bio="hello", fields=[],
                              locked=False, discoverable=True, hide_network=False),
    )

    async def renamed():
        row = await b[DB].fetchone("SELECT display_name FROM accounts WHERE id = ?",
                                   (alice_on_b.id,))
        return row["display_name"] == "Alice from A"

    await eventually(renamed)
    await a[ACCOUNTS].delete_user(alice.id)

    async def gone():
        row = await b[DB].fetchone("SELECT deleted_at FROM accounts WHERE id = ?",
                                   (alice_on_b.id,))
        return row["deleted_at"] is not None

    await eventually(gone)


async def test_pinning_and_unpinning_reach_followers(nodes):
    a, b = nodes
    alice = await a.user("alice")
    bob = await b.user("bob")
    alice_on_b = await follow_across(b, bob, a, "alice")
    post = await a[POSTS].publish(alice, Draft("pin me"))
    await eventually(lambda: remote_post(b, post.uri))

    async def pinned_on_b() -> list[str]:
        rows = await b[DB].fetchall(
            "SELECT p.uri FROM pins JOIN posts p ON p.id = pins.post_id"
            " WHERE pins.account_id = ?",
            (alice_on_b.id,),
        )
        return [row["uri"] for row in rows]

    # alice pins on A: an Add to her featured collection reaches B.
    await a[POSTS].pin(alice.id, post.id)
    assert await eventually(pinned_on_b) == [post.uri]
    # Pinning it again changes nothing and sends nothing new.
    await a[POSTS].pin(alice.id, post.id)
    sent = await a[DB].fetchall("SELECT payload FROM deliveries WHERE payload LIKE '%#featured/%'")
    assert len(sent) == 1 and '"type": "Add"' in sent[0]["payload"]

    # alice unpins: the Remove reaches B.
    await a[POSTS].pin(alice.id, post.id, on=False)

    async def unpinned() -> bool:
        return await pinned_on_b() == []

    await eventually(unpinned)
