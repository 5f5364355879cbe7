"""Timeline pages through the web UI: home, local, federated, hashtags, bookmarks, paging."""

from __future__ import annotations

import re
from html import unescape

import pytest
from conftest import create_user, login
from test_posts_web import act, publish, switch_to, text_of

from xnode.posts.service import Draft
from xnode.web.state import POSTS, RELATIONSHIPS

CARD = re.compile(r'<article class="post card[^"]*"\s+id="[^"]+" data-post-id="(\d+)"')
OLDER = re.compile(r'<a class="button secondary" href="([^"]+)" rel="next">Older posts</a>')
NEWER = re.compile(r'<a class="button secondary" href="([^"]+)" rel="prev">Newer posts</a>')


def cards(page: str) -> list[int]:
    """The ids of the posts shown as cards, in page order."""
    return [int(i) for i in CARD.findall(page)]


@pytest.fixture
async def people(client, app):
    """alice (logged in), bob and carol."""
    accounts = [(await create_user(app, name)).account for name in ("alice", "bob", "carol")]
    await login(client, "alice")
    return accounts


async def test_composed_posts_reach_home_and_public_timelines(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    public = await publish(client, "a public hello")
    unlisted = await publish(client, "an unlisted hello", visibility="unlisted")
    private = await publish(client, "a followers hello", visibility="followers")
    ids = [int(p.rsplit("/", 1)[1]) for p in (private, unlisted, public)]
    home = await text_of(client, "/")
    assert "Hello, alice" in home and 'id="compose"' in home
    assert cards(home) == ids
    await switch_to(client, "bob")
    assert cards(await text_of(client, "/")) == ids
    await switch_to(client, "carol")
    carol_home = await text_of(client, "/")
    assert cards(carol_home) == [] and "Nothing here yet." in carol_home
    for path in ("/local", "/federated"):
        assert cards(await text_of(client, path)) == [ids[2]], path
    client.session.cookie_jar.clear()
    for path in ("/local", "/federated"):
        assert cards(await text_of(client, path)) == [ids[2]], path


async def test_logged_out_front_page_shows_welcome_and_local_timeline(client, app, people):
    alice, _, _ = people
    shown = await app[POSTS].publish(alice, Draft("visible to the world"))
    await app[POSTS].publish(alice, Draft("quiet one", visibility="unlisted"))
    client.session.cookie_jar.clear()
    page = await text_of(client, "/")
    assert "Welcome to xnode.test" in page and 'href="/signup"' in page
    assert cards(page) == [shown.id]
    assert 'action="/posts"' not in page


async def test_hashtag_page_shows_only_public_posts(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    public = await publish(client, "I like #Cats a lot")
    await publish(client, "secret #cats club", visibility="followers")
    await publish(client, "about #dogs")
    await switch_to(client, "bob")
    page = await text_of(client, "/tags/cats")
    assert cards(page) == [int(public.rsplit("/", 1)[1])]
    assert "<h1" in page and "#cats" in page
    response = await client.get("/tags/Cats", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/tags/cats"
    assert 'href="http://xnode.test/tags/cats"' in await text_of(client, public)
    assert cards(await text_of(client, "/tags/nothing")) == []


async def test_bookmarks_page_lists_only_my_bookmarks(client, app, people):
    alice, bob, _ = people
    first = await app[POSTS].publish(alice, Draft("alice keeps this"))
    second = await app[POSTS].publish(bob, Draft("bob keeps this"))
    third = await app[POSTS].publish(bob, Draft("nobody keeps this"))
    await act(client, first.id, "bookmark")
    await act(client, second.id, "bookmark")
    await app[POSTS].bookmark(bob.id, third.id)
    assert cards(await text_of(client, "/bookmarks")) == [second.id, first.id]
    await switch_to(client, "bob")
    assert cards(await text_of(client, "/bookmarks")) == [third.id]
    client.session.cookie_jar.clear()
    response = await client.get("/bookmarks", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", ["/local", "/"])
async def test_pagination_by_cursor(client, app, people, path):
    alice, _, _ = people
    posts = [await app[POSTS].publish(alice, Draft(f"post number {i}")) for i in range(45)]
    newest_first = [p.id for p in reversed(posts)]
    first = await text_of(client, path)
    assert cards(first) == newest_first[:40]
    assert NEWER.search(first) is None
    older_url = unescape(OLDER.search(first)[1])
    assert "max_id=" in older_url and "offset" not in older_url
    second = await text_of(client, older_url)
    assert cards(second) == newest_first[40:]
    assert OLDER.search(second) is None
    newer_url = unescape(NEWER.search(second)[1])
    assert "min_id=" in newer_url
    assert cards(await text_of(client, newer_url)) == newest_first[:40]


async def test_bad_cursor_is_refused(client, people):
    await text_of(client, "/local?max_id=abc", 400)
    await text_of(client, "/local?min_id=99999999999999999999", 400)
    page = await text_of(client, "/local?max_id=1")
    assert "No more posts here." in page and 'href="/local"' in page


async def test_boosts_show_on_followers_home(client, app, people):
    alice, bob, carol = people
    await app[RELATIONSHIPS].follow(carol.id, bob.id)
    post = await app[POSTS].publish(alice, Draft("worth sharing"))
    await switch_to(client, "bob")
    await act(client, post.id, "boost")
    await switch_to(client, "carol")
    page = await text_of(client, "/")
    assert cards(page) == [post.id]
    assert re.search(r'<a href="/@bob">bob</a> boosted', page)


async def test_a_post_boosted_by_several_people_shows_once(client, app, people):
    """The newest appearance stands for the others (issue 15): here carol's boost."""
    alice, bob, carol = people
    dave = (await create_user(app, "dave")).account
    for followed in (bob, carol, dave):
        await app[RELATIONSHIPS].follow(alice.id, followed.id)
    post = await app[POSTS].publish(dave, Draft("zqx everybody shares this"))
    await app[POSTS].boost(bob, post.id)
    await app[POSTS].boost(carol, post.id)
    page = await text_of(client, "/")
    assert cards(page) == [post.id]
    assert re.search(r'<a href="/@carol">carol</a> boosted', page)


async def test_replies_say_whom_they_answer(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    question = await app[POSTS].publish(alice, Draft("zqx a question"))
    await app[POSTS].publish(bob, Draft("zqx an answer", in_reply_to_id=question.id))
    await app[POSTS].publish(alice, Draft("zqx and more", in_reply_to_id=question.id))
    page = unescape(await text_of(client, "/"))
    assert "replying to @alice</a>" in page
    assert page.count("replying to @alice") == 2  # bob's answer, and alice's own thread
