"""The notifications page: wording per kind, unread marks, mutes and privacy, over HTTP."""

from __future__ import annotations

import html
import re

import pytest
from aiohttp.test_utils import TestClient
from conftest import create_user, login, post_form

from xnode import notifications as notifications_module
from xnode.posts.service import Draft
from xnode.web.state import POSTS, PROFILES, RELATIONSHIPS

NAV_BADGE = re.compile(r'<span class="badge" aria-label="(\d+) unread">')
UNREAD_ITEM = re.compile(r'<li class="notification notification-\w+ unread"')


def visible_text(page: str) -> str:
    """The page's text as a reader sees it: tags gone, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def entries(page: str) -> list[str]:
    """The visible text of each notification on the page, in order."""
    return [
        visible_text(item)
        for item in re.findall(r'<li class="notification .*?</li>\n', page, re.S)
    ]


async def page(client: TestClient, path: str = "/notifications") -> str:
    response = await client.get(path)
    assert response.status == 200, (path, response.status)
    return await response.text()


def unread_badge(page: str) -> int:
    match = NAV_BADGE.search(page)
    return int(match[1]) if match else 0


@pytest.fixture
async def people(client, app, aiohttp_client):
    """alice (logged in on ``client``), bob and carol, each with their own browser."""
    accounts = {}
    clients = {"alice": client}
    for name in ("alice", "bob", "carol"):
        accounts[name] = (await create_user(app, name)).account
        if name != "alice":
            clients[name] = await aiohttp_client(client.server)
        await login(clients[name], name)
    return accounts, clients


async def test_each_kind_has_its_wording(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    liked = await app[POSTS].publish(alice, Draft("zqxliked post"))
    boosted = await app[POSTS].publish(alice, Draft("zqxboosted post"))
    replied = await app[POSTS].publish(alice, Draft("zqxreplied-to post"))
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[POSTS].like(bob.id, liked.id)
    await app[POSTS].boost(bob, boosted.id)
    await app[POSTS].publish(bob, Draft("zqxmention hello @alice"))
    await app[POSTS].publish(bob, Draft("zqxreply text", in_reply_to_id=replied.id))

    items = entries(await page(clients["alice"]))
    assert len(items) == 5
    reply, mention, boost, like, follow = items
    assert follow.startswith("New bob followed you")
    assert like.startswith("New bob liked your post") and "zqxliked post" in like
    assert boost.startswith("New bob boosted your post") and "zqxboosted post" in boost
    assert mention.startswith("New bob mentioned you") and "zqxmention hello" in mention
    assert reply.startswith("New bob replied to your post") and "zqxreply text" in reply
    # Bob caused them all and was told of none.
    assert entries(await page(clients["bob"])) == []


async def test_follow_request_links_to_requests(app, people):
    accounts, clients = people
    alice, carol = accounts["alice"], accounts["carol"]
    await app[PROFILES].update_profile(alice.id, "", "", [], locked=True, discoverable=True)
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    body = await page(clients["alice"])
    [item] = entries(body)
    assert item.startswith("New carol asked to follow you")
    assert "Review follow requests" in item
    assert "Follow requests (1)" in visible_text(body)
    assert body.count('href="/follow-requests"') == 2


async def test_unread_count_clears_after_marking_read(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    post = await app[POSTS].publish(alice, Draft("zqxcount"))
    await app[POSTS].like(bob.id, post.id)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)

    body = await page(clients["alice"])
    assert unread_badge(body) == 2
    assert body.count('class="notification notification-') == 2
    assert len(UNREAD_ITEM.findall(body)) == 2
    # Looking is not reading: only the button marks them.
    assert unread_badge(await page(clients["alice"], "/@alice")) == 2

    response = await post_form(clients["alice"], "/notifications/read", {},
                               token_page="/notifications")
    assert response.status == 303
    assert response.headers["Location"] == "/notifications"
    body = await page(clients["alice"])
    assert unread_badge(body) == 0
    assert UNREAD_ITEM.findall(body) == []
    assert len(entries(body)) == 2
    assert 'action="/notifications/read"' not in body

    await app[POSTS].publish(bob, Draft("@alice again"))
    assert unread_badge(await page(clients["alice"], "/@alice")) == 1


async def test_mark_read_needs_csrf(app, people):
    accounts, clients = people
    await app[RELATIONSHIPS].follow(accounts["bob"].id, accounts["alice"].id)
    response = await clients["alice"].post("/notifications/read", data={},
                                           allow_redirects=False)
    assert response.status == 403
    assert unread_badge(await page(clients["alice"])) == 1


async def test_muted_accounts_do_not_notify(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    post = await app[POSTS].publish(alice, Draft("zqxmuted"))
    response = await post_form(clients["alice"], "/@bob/mute", {}, token_page="/@bob")
    assert response.status == 303
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[POSTS].like(bob.id, post.id)
    await app[POSTS].boost(bob, post.id)
    await app[POSTS].publish(bob, Draft("hey @alice", in_reply_to_id=post.id))
    body = await page(clients["alice"])
    assert entries(body) == []
    assert unread_badge(body) == 0
    # The same actions by someone not muted do notify.
    await app[POSTS].like(accounts["carol"].id, post.id)
    [item] = entries(await page(clients["alice"]))
    assert item.startswith("New carol liked your post")


async def test_direct_mention_notifies_only_the_mentioned(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[POSTS].publish(alice, Draft("zqxsecret for @carol", visibility="direct"))
    carol_items = entries(await page(clients["carol"]))
    assert len(carol_items) == 1
    assert carol_items[0].startswith("New alice mentioned you")
    assert "zqxsecret" in carol_items[0]
    for name in ("alice", "bob"):
        assert "zqxsecret" not in await page(clients[name])


async def test_notifications_paginate(app, people, monkeypatch):
    monkeypatch.setattr(notifications_module, "PAGE_SIZE", 2)
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    for i in range(3):
        post = await app[POSTS].publish(alice, Draft(f"zqxpage{i}"))
        await app[POSTS].like(bob.id, post.id)
    first = await page(clients["alice"])
    assert "zqxpage2" in first and "zqxpage1" in first and "zqxpage0" not in first
    match = re.search(r'href="(/notifications\?max_id=\d+)" rel="next"', first)
    assert match
    second = await page(clients["alice"], match[1])
    assert "zqxpage0" in second and "zqxpage1" not in second


async def test_login_required(client, app):
    await create_user(app, "alice")
    response = await client.get("/notifications", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")
    response = await client.get("/follow-requests", allow_redirects=False)
    assert response.status == 303
    await login(client, "alice")
    assert "No pending follow requests." in await page(client, "/follow-requests")


async def test_unread_badge_is_bounded(app, people):
    from xnode.ids import new_id
    from xnode.store import notifications as notification_store
    from xnode.web.state import DB

    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    db = app[DB]
    async with db.transaction() as conn:
        for _ in range(notification_store.UNREAD_COUNT_CAP + 5):
            await notification_store.insert_notification(
                conn, new_id(), recipient_id=alice.id, kind="follow", from_id=bob.id,
                post_id=None, now=0.0,
            )
    assert await notification_store.unread_count(db, alice.id) == 1000
    body = await page(clients["alice"], "/@alice")
    assert '<span class="badge" aria-label="999+ unread">999+</span>' in body


async def test_likes_of_one_post_and_follows_are_grouped_with_a_small_preview(app, people):
    accounts, clients = people
    alice = accounts["alice"]
    post = await app[POSTS].publish(alice, Draft("zqxpopular post"))
    other = await app[POSTS].publish(alice, Draft("zqxother post"))
    fans = [(await create_user(app, f"fan{n}")).account for n in range(4)]
    for fan in fans:
        await app[POSTS].like(fan.id, post.id)
        await app[RELATIONSHIPS].follow(fan.id, alice.id)
    await app[POSTS].like(fans[0].id, other.id)
    the_page = await page(clients["alice"])
    items = entries(the_page)
    likes = [i for i in items if "liked your post" in i]
    follows = [i for i in items if "followed you" in i]
    assert len(follows) == 1 and "fan3 and 3 others followed you" in follows[0]
    assert len(likes) == 2
    popular = next(i for i in likes if "zqxpopular" in i)
    assert "fan3 and 3 others liked your post" in popular
    # The post itself is a short preview, not a whole card with its buttons.
    assert 'class="notification-preview"' in the_page
    assert "Bookmark" not in popular
