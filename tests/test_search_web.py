"""The search page: accounts, hashtags and posts, privacy, and hostile queries."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from conftest import create_user, login

from xnode.posts.service import Draft
from xnode.web.state import POSTS, PROFILES, RELATIONSHIPS


async def search(client: TestClient, query: str, status: int = 200) -> str:
    response = await client.get("/search", params={"q": query})
    body = await response.text()
    assert response.status == status, body
    return body


def section(page: str, heading_id: str) -> str:
    """One results section (People, Hashtags or Posts), empty if absent."""
    match = re.search(rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', page, re.S)
    return match[0] if match else ""


@pytest.fixture
async def world(client, app, aiohttp_client):
    """alice posts; bob follows her; carol is a stranger; dave is mentioned in a DM."""
    names = ("alice", "bob", "carol", "dave")
    accounts = {name: (await create_user(app, name)).account for name in names}
    await app[RELATIONSHIPS].follow(accounts["bob"].id, accounts["alice"].id)
    alice = accounts["alice"]
    posts = {
        visibility: await app[POSTS].publish(
            alice, Draft(f"zqx{visibility}word hello @dave #zqxtopic", visibility=visibility)
        )
        for visibility in ("public", "unlisted", "followers", "direct")
    }
    clients = {"anonymous": client}
    for name in names:
        clients[name] = await aiohttp_client(client.server)
        await login(clients[name], name)
    return accounts, clients, posts


async def test_empty_query_shows_only_the_form(client):
    body = await search(client, "")
    assert '<label for="search-q">' in body and 'id="search-q"' in body
    assert 'aria-labelledby="posts-heading"' not in body
    assert "Nothing found" not in body
    assert "Nothing found" not in await search(client, "   ")


async def test_finds_public_posts_tags_and_accounts(app, world):
    accounts, clients, posts = world
    await app[PROFILES].update_profile(
        accounts["alice"].id, "Wonderland Explorer", "", [], locked=False, discoverable=True
    )
    body = await search(clients["carol"], "zqxpublicword")
    assert f'id="post-{posts["public"].id}"' in section(body, "posts-heading")
    assert 'value="zqxpublicword"' in body

    for query in ("alice", "@alice", "Wonderland", "explorer"):
        people = section(await search(clients["carol"], query), "accounts-heading")
        assert 'href="/@alice"' in people, query
        assert "Wonderland Explorer" in people

    tags = section(await search(clients["anonymous"], "#zqxtop"), "tags-heading")
    assert 'href="/tags/zqxtopic"' in tags

    assert "Nothing found" in await search(clients["carol"], "qqqnothingmatches")


async def test_posts_only_reach_those_who_may_see_them(world):
    _, clients, posts = world
    expected = {
        "public": {"anonymous", "alice", "bob", "carol", "dave"},
        "unlisted": {"anonymous", "alice", "bob", "carol", "dave"},
        # dave is mentioned, so the followers-only post is addressed to him too.
        "followers": {"alice", "bob", "dave"},
        # Direct posts are never searchable, not even by their author or recipient.
        "direct": set(),
    }
    for visibility, viewers in expected.items():
        marker = f'id="post-{posts[visibility].id}"'
        for viewer, viewer_client in clients.items():
            found = marker in await search(viewer_client, f"zqx{visibility}word")
            assert found == (viewer in viewers), (visibility, viewer)


async def test_blocked_viewer_finds_nothing_of_the_blocker(app, world):
    accounts, clients, posts = world
    await app[RELATIONSHIPS].block(accounts["alice"].id, accounts["carol"].id)
    body = await search(clients["carol"], "zqxpublicword")
    assert f'id="post-{posts["public"].id}"' not in body


@pytest.mark.parametrize(
    "query",
    ['" OR * NEAR(', "NEAR(a b", "*", '"', "^hello", "a:b", "-", "AND OR NOT", "(((", "'; --",
     "\x00", "#", "@", "@@@"],
)
async def test_hostile_queries_do_not_break(client, app, query):
    await create_user(app, "alice")
    body = await search(client, query)
    assert "Search" in body


async def test_too_long_query_is_refused(client):
    body = await search(client, "x" * 201, status=422)
    assert "limited to 200 characters" in body
    assert 'role="alert"' in body
    await search(client, "x" * 200)
