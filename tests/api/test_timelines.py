"""Timelines through the client API: home, public, hashtag, bookmarks, favourites,
with Mastodon's pagination (Link headers both ways, max_id / min_id / since_id)."""

from __future__ import annotations

import pytest
from conftest import create_user

from api.conftest import in_thread, mastodon_for, token_for
from xnode.posts.service import Draft
from xnode.web.state import POSTS, RELATIONSHIPS


@pytest.fixture
async def people(app):
    """alice, bob (follows alice) and carol."""
    users = [await create_user(app, name) for name in ("alice", "bob", "carol")]
    await app[RELATIONSHIPS].follow(users[1].id, users[0].id)
    return users


async def _posts(app, author, count: int, **draft: object) -> list[int]:
    ids = []
    for n in range(count):
        ids.append((await app[POSTS].publish(author.account, Draft(f"post {n}", **draft))).id)
    return ids


async def test_home_pages_both_ways_with_mastodon_py(client, app, people):
    alice, bob, _ = people
    ids = await _posts(app, alice, 7)
    newest_first = [str(i) for i in reversed(ids)]
    masto = await mastodon_for(client, await token_for(app, bob))
    first = await in_thread(masto.timeline_home, limit=3)
    assert [str(s.id) for s in first] == newest_first[:3]
    second = await in_thread(masto.fetch_next, first)
    assert [str(s.id) for s in second] == newest_first[3:6]
    third = await in_thread(masto.fetch_next, second)
    assert [str(s.id) for s in third] == newest_first[6:]
    assert not await in_thread(masto.fetch_next, third)
    back = await in_thread(masto.fetch_previous, third)
    assert [str(s.id) for s in back] == newest_first[3:6]
    # Nothing newer than the newest yet; then one more post shows up above it.
    assert not await in_thread(masto.fetch_previous, first)
    newer = await app[POSTS].publish(alice.account, Draft("the newest"))
    since = await in_thread(masto.timeline_home, since_id=ids[-1])
    assert [str(s.id) for s in since] == [str(newer.id)]


async def test_home_link_header_and_limits(client, app, people, api_as):
    alice, bob, _ = people
    ids = await _posts(app, alice, 45)
    api = await api_as(bob)
    page = await api.get("/api/v1/timelines/home")
    assert len(page) == 20  # the default
    link = api.last.headers["Link"]
    assert f"max_id={page[-1]['id']}" in link and 'rel="next"' in link
    assert f"min_id={page[0]['id']}" in link and 'rel="prev"' in link
    assert len(await api.get("/api/v1/timelines/home?limit=1000")) == 40  # the maximum
    above = await api.get(f"/api/v1/timelines/home?min_id={ids[0]}&limit=2")
    assert [s["id"] for s in above] == [str(ids[2]), str(ids[1])]  # just above, newest first
    since = await api.get(f"/api/v1/timelines/home?since_id={ids[0]}&limit=2")
    assert [s["id"] for s in since] == [str(ids[-1]), str(ids[-2])]  # the newest
    empty = await api.get(f"/api/v1/timelines/home?max_id={ids[0]}")
    assert empty == [] and "Link" not in api.last.headers
    for bad in ("limit=abc", "max_id=x", "since_id=-4", "min_id=1e5"):
        body = await api.get(f"/api/v1/timelines/home?{bad}", expect=422)
        assert "error" in body
    await (await api_as(None, token=False)).get("/api/v1/timelines/home", expect=401)
    await (await api_as(bob, "write")).get("/api/v1/timelines/home", expect=403)


async def test_home_shows_boosts_and_hides_what_it_should(client, app, people, api_as):
    alice, bob, carol = people
    carols = await app[POSTS].publish(carol.account, Draft("carol speaks"))
    await app[POSTS].boost(alice.account, carols.id)
    followers = await app[POSTS].publish(alice.account, Draft("fo", visibility="followers"))
    await app[POSTS].publish(alice.account, Draft("@bob psst", visibility="direct"))
    home = await (await api_as(bob)).get("/api/v1/timelines/home")
    assert home[0]["id"] == str(followers.id)
    boost = home[1]
    assert boost["reblog"]["id"] == str(carols.id) and boost["account"]["acct"] == "alice"
    assert len(home) == 2  # the direct post belongs to conversations, not timelines


async def test_public_timelines_and_filters(client, app, people, api_as):
    alice, _, carol = people
    plain = await app[POSTS].publish(alice.account, Draft("plain #cats"))
    await app[POSTS].publish(alice.account, Draft("quiet #cats", visibility="unlisted"))
    await app[POSTS].publish(alice.account, Draft("friends #cats", visibility="followers"))
    api = await api_as(carol)
    anonymous = await api_as(None, token=False)
    for caller in (api, anonymous):
        for path in ("/api/v1/timelines/public", "/api/v1/timelines/public?local=true",
                     "/api/v1/timelines/tag/cats", "/api/v1/timelines/tag/CATS?local=1"):
            assert [s["id"] for s in await caller.get(path)] == [str(plain.id)], path
        assert await caller.get("/api/v1/timelines/public?remote=true") == []
        assert await caller.get("/api/v1/timelines/public?only_media=true") == []
        assert await caller.get("/api/v1/timelines/tag/dogs") == []
    await api.get("/api/v1/timelines/public?local=perhaps", expect=422)
    assert await api.get("/api/v1/timelines/tag/cats?any[]=dogs&none[]=birds")  # ignored
    body = await api.get("/api/v1/timelines/list/123", expect=404)
    assert body == {"error": "Record not found"}


async def test_bookmarks_and_favourites(client, app, people, api_as):
    alice, bob, _ = people
    ids = await _posts(app, alice, 4)
    masto = await mastodon_for(client, await token_for(app, bob))
    # Liked oldest post last: the list is by when it was liked, not when it was written.
    for post_id in (ids[1], ids[3], ids[0]):
        await in_thread(masto.status_favourite, post_id)
        await in_thread(masto.status_bookmark, post_id)
    favourites = await in_thread(masto.favourites, limit=2)
    assert [str(s.id) for s in favourites] == [str(ids[0]), str(ids[3])]
    assert all(s.favourited for s in favourites)
    rest = await in_thread(masto.fetch_next, favourites)
    assert [str(s.id) for s in rest] == [str(ids[1])]
    bookmarks = await in_thread(masto.bookmarks)
    assert [str(s.id) for s in bookmarks] == [str(ids[0]), str(ids[3]), str(ids[1])]
    assert all(s.bookmarked for s in bookmarks)
    api = await api_as(bob)
    await api.get("/api/v1/favourites?limit=1")
    # Pages are by the favourite's own id, not the status's (as in Mastodon).
    assert str(ids[0]) not in api.last.headers["Link"]
    await app[POSTS].delete(alice.id, ids[3])
    assert [s["id"] for s in await api.get("/api/v1/favourites")] == [str(ids[0]), str(ids[1])]
    await (await api_as(bob, "read:statuses")).get("/api/v1/favourites", expect=403)
    await (await api_as(None)).get("/api/v1/bookmarks", expect=422)
