"""Search through the client API: v2 search, accounts search, tags, URL and handle
lookups (across two real nodes), privacy and bad input."""

from __future__ import annotations

import aiohttp
from conftest import create_user
from live_nodes import PASSWORD, eventually, nodes  # noqa: F401 (the fixture)

from api.conftest import in_thread, mastodon_for, token_for
from xnode.activitypub.appkeys import RESOLVER
from xnode.posts.service import Draft
from xnode.web.state import ACCOUNTS, DMS, POSTS, PROFILES, RELATIONSHIPS


async def _world(app):
    """alice posts publicly, to followers and by DM; bob follows her; carol does not."""
    alice, bob, carol = [await create_user(app, n) for n in ("alice", "bob", "carol")]
    await app[PROFILES].update_profile(
        alice.id, "Zqxwonder Alice", "", [], locked=False, discoverable=True
    )
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    public = await app[POSTS].publish(alice.account, Draft("zqxcats are great #zqxcats"))
    friends = await app[POSTS].publish(
        alice.account, Draft("zqxcats for friends", visibility="followers")
    )
    await app[DMS].start(alice.account, "@carol", "zqxcats secret")
    older = await app[POSTS].publish(bob.account, Draft("zqxcats by bob #zqxcatsofbob"))
    return alice, bob, carol, public, friends, older


def _never_resolves(app):
    """Make the resolver record lookups instead of making them."""
    asked: list[str] = []

    async def actor_by_handle(handle: str):
        asked.append(handle)
        raise ValueError("not looked up in this test")

    app[RESOLVER].actor_by_handle = actor_by_handle  # type: ignore[method-assign]
    return asked


async def test_mastodon_py_search_v2(client, app):
    alice, bob, _carol, public, friends, older = await _world(app)
    masto = await mastodon_for(client, await token_for(app, bob, "read write"))
    found = await in_thread(masto.search_v2, "zqxcats")
    assert [str(s.id) for s in found.statuses] == [str(older.id), str(friends.id),
                                                    str(public.id)]  # fmt: skip
    assert [t.name for t in found.hashtags] == ["zqxcats", "zqxcatsofbob"]
    assert found.hashtags[0].history == [] and found.hashtags[0].following is False
    assert found.hashtags[0].url == "http://xnode.test/tags/zqxcats"
    people = await in_thread(masto.search_v2, "zqxwonder", result_type="accounts")
    assert [a.acct for a in people.accounts] == ["alice"]
    assert people.statuses == [] and people.hashtags == []
    # One author's posts, a page further on, fewer at a time.
    by_alice = await in_thread(masto.search_v2, "zqxcats", result_type="statuses",
                               account_id=str(alice.id))  # fmt: skip
    assert [str(s.id) for s in by_alice.statuses] == [str(friends.id), str(public.id)]
    paged = await in_thread(masto.search_v2, "zqxcats", result_type="statuses", offset=1,
                            limit=1)  # fmt: skip
    assert [str(s.id) for s in paged.statuses] == [str(friends.id)]


async def test_privacy_anonymous_and_strangers(client, app, api_as):
    _alice, bob, carol, public, _friends, older = await _world(app)
    asked = _never_resolves(app)
    # A stranger finds neither the followers-only post nor the DM sent to her.
    carol_api = await api_as(carol, "read")
    found = await carol_api.get("/api/v2/search?q=zqxcats&type=statuses")
    assert [s["id"] for s in found["statuses"]] == [str(older.id), str(public.id)]
    # Anonymous: no statuses at all (as Mastodon), tags without "following", and
    # resolve=true is ignored: nothing is looked up elsewhere.
    anonymous = await api_as(None, token=False)
    found = await anonymous.get("/api/v2/search?q=zqxcats&resolve=true")
    assert found["statuses"] == [] and "following" not in found["hashtags"][0]
    found = await anonymous.get("/api/v2/search?q=@someone@elsewhere.example&resolve=true")
    assert found == {"accounts": [], "statuses": [], "hashtags": []} and asked == []
    # Signed in, the same query is looked up (and its failure is no error).
    await carol_api.get("/api/v2/search?q=@someone@elsewhere.example&resolve=true")
    assert asked == ["someone@elsewhere.example"]
    # following=true: only people the caller follows.
    bob_api = await api_as(bob, "read")
    assert [a["acct"] for a in (await bob_api.get(
        "/api/v2/search?q=alice&type=accounts&following=true"))["accounts"]] == ["alice"]
    assert (await carol_api.get(
        "/api/v2/search?q=alice&type=accounts&following=true"))["accounts"] == []


async def test_urls_of_this_node_resolve_for_signed_in_callers(client, app, api_as):
    _alice, bob, carol, public, friends, _older = await _world(app)
    bob_api = await api_as(bob, "read")
    found = await bob_api.get("/api/v2/search", params={
        "q": f"http://xnode.test/@alice/{public.id}", "resolve": "true"})  # fmt: skip
    assert [s["id"] for s in found["statuses"]] == [str(public.id)] and found["accounts"] == []
    found = await bob_api.get("/api/v2/search", params={
        "q": "http://xnode.test/users/alice", "resolve": "true"})  # fmt: skip
    assert [a["acct"] for a in found["accounts"]] == ["alice"]
    # A post one may not see is not found by its URL either; nor a post under another name.
    carol_api = await api_as(carol, "read")
    for url in (f"http://xnode.test/@alice/{friends.id}", f"http://xnode.test/@bob/{public.id}"):
        found = await carol_api.get("/api/v2/search", params={"q": url, "resolve": "true"})
        assert found == {"accounts": [], "statuses": [], "hashtags": []}


async def test_accounts_search_and_tags(client, app, api_as):
    _alice, bob, _carol, _public, _friends, _older = await _world(app)
    masto = await mastodon_for(client, await token_for(app, bob, "read write follow"))
    assert [a.acct for a in await in_thread(masto.account_search, "zqxwonder")] == ["alice"]
    assert [a.acct for a in await in_thread(masto.account_search, "@alice@xnode.test")] == [
        "alice"]
    assert await in_thread(masto.account_search, "alice", offset=1) == []
    tag = await in_thread(masto.tag, "ZqxCats")
    assert tag.name == "zqxcats" and tag.history == [] and tag.following is False
    assert await in_thread(masto.followed_tags) == []
    api = await api_as(None, token=False)
    assert "following" not in await api.get("/api/v1/tags/zqxcats")
    await api.get("/api/v1/tags/%21%21", expect=422)
    await api.get("/api/v1/accounts/search?q=alice", expect=401)
    await (await api_as(bob, "read:statuses")).get("/api/v1/accounts/search?q=a", expect=403)


async def test_bad_input_is_a_clear_4xx(client, app, api_as):
    bob = await create_user(app, "bob")
    api = await api_as(bob, "read")
    await api.get("/api/v2/search", expect=400)
    await api.get("/api/v2/search?q=x&type=people", expect=422)
    await api.get("/api/v2/search?q=x&limit=lots", expect=422)
    await api.get("/api/v2/search?q=x&offset=-1", expect=422)
    await api.get("/api/v2/search?q=x&offset=99999999", expect=422)
    await api.get("/api/v2/search?q=x&account_id=abc", expect=422)
    await api.get("/api/v2/search?q=x&resolve=maybe", expect=422)
    await api.get("/api/v2/search", params={"q": "x" * 801}, expect=422)
    await api.get("/api/v1/accounts/search?q=x&limit=-3", expect=422)
    empty = {"accounts": [], "statuses": [], "hashtags": []}
    assert await api.get("/api/v2/search?q=x&limit=100000") == empty
    assert await api.get("/api/v2/search?q=%20") == empty
    assert await api.get('/api/v2/search?q=%22%29%28*+OR+NEAR') == empty  # FTS syntax
    assert await api.get("/api/v2/search?q=x&limit=0") == empty


async def test_resolve_finds_an_account_on_another_node(nodes):  # noqa: F811
    a, b = nodes
    alice = await a.user("alice")
    post = await a[POSTS].publish(alice, Draft("zqxremote hello from node a"))
    bob = await b.app[ACCOUNTS].create_user("bob", PASSWORD)
    token = await token_for(b.app, bob, "read")
    base = f"http://{b.domain}/api/v2/search"
    async with aiohttp.ClientSession() as http:
        async def search(params: dict[str, str], token: str | None = None) -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.get(base, params=params, headers=headers) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        handle = f"@alice@{a.domain}"
        # Anonymous: no remote lookup, so node b does not know alice.
        assert (await search({"q": handle, "resolve": "true"}))["accounts"] == []
        found = await search({"q": handle, "resolve": "true", "type": "accounts"}, token)
        assert [x["acct"] for x in found["accounts"]] == [f"alice@{a.domain}"]
        assert found["accounts"][0]["url"] == f"http://{a.domain}/@alice"
        # Known now, she is found without resolving too.
        assert (await search({"q": handle}, token))["accounts"][0]["username"] == "alice"
        # A post by its URL, fetched over ActivityPub.
        url = f"http://{a.domain}/@alice/{post.id}"
        found = await eventually(lambda: search({"q": url, "resolve": "true"}, token))
        assert [s["content"] for s in found["statuses"]] == [
            "<p>zqxremote hello from node a</p>"]
