"""Privacy matrix: every visibility × every kind of viewer × every surface, over HTTP.

Each post carries a unique marker word. For each surface we fetch the page as
each viewer and check the marker is present exactly when the rule says so.
Removing any visibility check on any surface makes one of these tests fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient
from api.conftest import Api
from conftest import create_user, csrf_from, login

from xnode.posts.service import Draft
from xnode.web.state import POSTS, RELATIONSHIPS

VISIBILITIES = ("public", "unlisted", "followers", "direct")
VIEWERS = ("author", "follower", "stranger", "mentioned", "blocked", "anonymous")
USERNAMES = {
    "author": "alice", "follower": "bob", "stranger": "carol", "mentioned": "dave",
    "blocked": "erin",
}


@dataclass
class World:
    """A node with one post per visibility and a logged-in client per viewer."""

    clients: dict[str, TestClient]
    post_ids: dict[str, int]
    reply_ids: dict[str, int]
    root_id: int

    @staticmethod
    def marker(visibility: str) -> str:
        return f"zqx{visibility}marker"

    @staticmethod
    def reply_marker(visibility: str) -> str:
        return f"zqxreplyto{visibility}"


def can_see(visibility: str, viewer: str) -> bool:
    """The rule, written out independently of the code under test."""
    if viewer == "author":
        return True
    if viewer == "blocked":
        return False
    if visibility in ("public", "unlisted"):
        return True
    if visibility == "followers":
        return viewer in ("follower", "mentioned")
    return viewer == "mentioned"


@pytest.fixture
async def world(client, app, aiohttp_client) -> World:
    accounts = {role: (await create_user(app, name)).account for role, name in USERNAMES.items()}
    await app[RELATIONSHIPS].follow(accounts["follower"].id, accounts["author"].id)
    # The thread root's author is addressed by every reply, so it is none of the viewers.
    outsider = (await create_user(app, "frank")).account
    root = await app[POSTS].publish(outsider, Draft("thread root zqxroot"))
    post_ids, reply_ids = {}, {}
    for visibility in VISIBILITIES:
        text = f"{World.marker(visibility)} #zqxtag @dave"
        post = await app[POSTS].publish(accounts["author"], Draft(text, visibility=visibility))
        post_ids[visibility] = post.id
        reply = await app[POSTS].publish(
            accounts["author"],
            Draft(f"{World.reply_marker(visibility)} @dave", visibility=visibility,
                  in_reply_to_id=root.id),
        )
        reply_ids[visibility] = reply.id
    # Blocking after posting: what is already published must disappear too.
    await app[RELATIONSHIPS].block(accounts["author"].id, accounts["blocked"].id)
    clients: dict[str, TestClient] = {}
    for role in VIEWERS:
        viewer_client = client if role == "author" else await aiohttp_client(client.server)
        if role != "anonymous":
            await login(viewer_client, USERNAMES[role])
        clients[role] = viewer_client
    return World(clients, post_ids, reply_ids, root.id)


async def page_text(client: TestClient, path: str) -> tuple[int, str]:
    response = await client.get(path)
    return response.status, await response.text()


def check(viewer: str, visibility: str, shown: bool, expected: bool, where: str) -> None:
    assert shown == expected, (
        f"{where}: {visibility} post {'shown' if shown else 'hidden'} to {viewer}, "
        f"expected {'shown' if expected else 'hidden'}"
    )


async def test_post_page(world: World):
    for viewer, client in world.clients.items():
        for visibility, post_id in world.post_ids.items():
            status, body = await page_text(client, f"/@alice/{post_id}")
            shown = status == 200 and World.marker(visibility) in body
            check(viewer, visibility, shown, can_see(visibility, viewer), "post page")
            if not shown:
                assert status == 404, f"{viewer}/{visibility}: expected 404, got {status}"


async def test_edit_history_page(world: World):
    for viewer, client in world.clients.items():
        for visibility, post_id in world.post_ids.items():
            status, _ = await page_text(client, f"/@alice/{post_id}/history")
            check(viewer, visibility, status == 200, can_see(visibility, viewer),
                  "history")


async def test_thread_replies(world: World):
    for viewer, client in world.clients.items():
        status, body = await page_text(client, f"/@frank/{world.root_id}")
        assert status == 200
        for visibility in VISIBILITIES:
            shown = World.reply_marker(visibility) in body
            check(viewer, visibility, shown, can_see(visibility, viewer), "thread")


async def test_profile_page(world: World):
    for viewer, client in world.clients.items():
        _, body = await page_text(client, "/@alice")
        for visibility in VISIBILITIES:
            # Direct messages never appear on profiles, not even to their participants.
            expected = can_see(visibility, viewer) and visibility != "direct"
            check(viewer, visibility, World.marker(visibility) in body, expected,
                  "profile")


async def test_home_timeline(world: World):
    for viewer, client in world.clients.items():
        if viewer == "anonymous":
            continue
        _, body = await page_text(client, "/")
        for visibility in VISIBILITIES:
            expected = viewer in ("author", "follower") and visibility != "direct"
            check(viewer, visibility, World.marker(visibility) in body, expected, "home")


@pytest.mark.parametrize("path", ["/local", "/federated", "/tags/zqxtag"])
async def test_public_timelines(world: World, path: str):
    for viewer, client in world.clients.items():
        _, body = await page_text(client, path)
        for visibility in VISIBILITIES:
            expected = visibility == "public" and viewer != "blocked"
            check(viewer, visibility, World.marker(visibility) in body, expected, path)


async def test_search(world: World):
    for viewer, client in world.clients.items():
        for visibility in VISIBILITIES:
            _, body = await page_text(client, f"/search?q={World.marker(visibility)}")
            shown = f'id="post-{world.post_ids[visibility]}"' in body
            expected = can_see(visibility, viewer) and visibility != "direct"
            check(viewer, visibility, shown, expected, "search")


@pytest.mark.parametrize("path", ["/@alice/feed.atom", "/@alice/feed.rss"])
async def test_feeds(world: World, path: str):
    for viewer, client in world.clients.items():
        status, body = await page_text(client, path)
        assert status == 200
        for visibility in VISIBILITIES:
            check(viewer, visibility, World.marker(visibility) in body,
                  visibility == "public", path)


async def test_notifications(world: World):
    for viewer, client in world.clients.items():
        if viewer == "anonymous":
            continue
        _, body = await page_text(client, "/notifications")
        for visibility in VISIBILITIES:
            # Only the mentioned account is notified, and only of posts it may see.
            expected = viewer == "mentioned"
            check(viewer, visibility, World.marker(visibility) in body, expected,
                  "notifications")


async def test_actions_on_invisible_posts_are_refused(world: World, app):
    for viewer, client in world.clients.items():
        if viewer == "anonymous":
            continue
        for visibility, post_id in world.post_ids.items():
            if can_see(visibility, viewer):
                continue
            token = await csrf_from(client, "/")
            response = await client.post(
                f"/posts/{post_id}/like", data={"csrf_token": token}, allow_redirects=False
            )
            liked = await app[POSTS].db.fetchvalue(
                "SELECT COUNT(*) FROM likes WHERE post_id = ?", (post_id,)
            )
            assert liked == 0, f"{viewer} liked an invisible {visibility} post"
            assert response.status in (303, 404)


# --- the same rules through the client API (tests/api/) ------------------------------


async def api_callers(world: World, app) -> dict[str, Api]:
    """An API client per viewer: a token for each person, none for the anonymous one."""
    from api.conftest import token_for

    from xnode.store import accounts as account_store

    callers = {}
    for viewer, client in world.clients.items():
        if viewer == "anonymous":
            callers[viewer] = Api(client, None)
            continue
        user = await account_store.get_user(app[POSTS].db, (
            await account_store.get_local_account(app[POSTS].db, USERNAMES[viewer])
        ).id)  # fmt: skip
        callers[viewer] = Api(client, await token_for(app, user, "read write"))
    return callers


def _markers_in(body: object) -> str:
    import json

    return json.dumps(body)


async def test_api_status_context_and_history(world: World, app):
    for viewer, api in (await api_callers(world, app)).items():
        for visibility, post_id in world.post_ids.items():
            expected = can_see(visibility, viewer)
            body = await api.get(f"/api/v1/statuses/{post_id}", expect=None)
            shown = api.last.status == 200 and World.marker(visibility) in _markers_in(body)
            check(viewer, visibility, shown, expected, "API status")
            if not shown:
                assert api.last.status == 404
            await api.get(f"/api/v1/statuses/{post_id}/history", expect=None)
            check(viewer, visibility, api.last.status == 200, expected, "API history")
            await api.get(f"/api/v1/statuses/{post_id}/context", expect=None)
            check(viewer, visibility, api.last.status == 200, expected, "API context")
        context = await api.get(f"/api/v1/statuses/{world.root_id}/context")
        for visibility in VISIBILITIES:
            shown = World.reply_marker(visibility) in _markers_in(context)
            check(viewer, visibility, shown, can_see(visibility, viewer), "API thread")


async def test_api_account_statuses(world: World, app):
    from xnode.store import accounts as account_store

    alice_id = (await account_store.get_local_account(app[POSTS].db, "alice")).id
    for viewer, api in (await api_callers(world, app)).items():
        body = _markers_in(await api.get(f"/api/v1/accounts/{alice_id}/statuses", expect=None))
        for visibility in VISIBILITIES:
            expected = can_see(visibility, viewer) and visibility != "direct"
            check(viewer, visibility, World.marker(visibility) in body, expected,
                  "API account statuses")


async def test_api_timelines(world: World, app):
    for viewer, api in (await api_callers(world, app)).items():
        if viewer != "anonymous":
            home = _markers_in(await api.get("/api/v1/timelines/home"))
            for visibility in VISIBILITIES:
                expected = viewer in ("author", "follower") and visibility != "direct"
                check(viewer, visibility, World.marker(visibility) in home, expected, "API home")
        for path in ("/api/v1/timelines/public", "/api/v1/timelines/public?local=true",
                     "/api/v1/timelines/tag/zqxtag"):  # fmt: skip
            body = _markers_in(await api.get(path, expect=None))
            for visibility in VISIBILITIES:
                expected = visibility == "public" and viewer != "blocked"
                check(viewer, visibility, World.marker(visibility) in body, expected, path)


async def test_api_search_notifications_and_conversations(world: World, app):
    for viewer, api in (await api_callers(world, app)).items():
        for visibility in VISIBILITIES:
            found = await api.get("/api/v2/search", params={
                "q": World.marker(visibility), "type": "statuses"}, expect=None)  # fmt: skip
            shown = str(world.post_ids[visibility]) in _markers_in(found)
            expected = can_see(visibility, viewer) and visibility != "direct" and (
                viewer != "anonymous")  # statuses search needs a signed-in caller
            check(viewer, visibility, shown, expected, "API search")
        if viewer == "anonymous":
            continue
        notes = _markers_in(await api.get("/api/v1/notifications"))
        conversations = _markers_in(await api.get("/api/v1/conversations"))
        for visibility in VISIBILITIES:
            check(viewer, visibility, World.marker(visibility) in notes,
                  viewer == "mentioned", "API notifications")
            in_conversation = World.marker(visibility) in conversations
            check(viewer, visibility, in_conversation,
                  visibility == "direct" and viewer in ("author", "mentioned"),
                  "API conversations")


async def test_api_actions_on_invisible_posts_are_refused(world: World, app):
    for viewer, api in (await api_callers(world, app)).items():
        if viewer == "anonymous":
            continue
        for visibility, post_id in world.post_ids.items():
            if can_see(visibility, viewer):
                continue
            for action in ("favourite", "reblog", "bookmark"):
                await api.post(f"/api/v1/statuses/{post_id}/{action}", expect=404)
            liked = await app[POSTS].db.fetchvalue(
                "SELECT COUNT(*) FROM likes WHERE post_id = ?", (post_id,)
            )
            assert liked == 0, f"{viewer} liked an invisible {visibility} post through the API"
