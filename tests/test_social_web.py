"""Profiles with relationship buttons, followers lists and follow requests, over HTTP."""

from __future__ import annotations

import asyncio
import html
import re

import pytest
from aiohttp.test_utils import TestClient
from conftest import create_user, csrf_from, login, post_form

from xnode.accounts import relationships
from xnode.posts.service import Draft
from xnode.store import relationships as rel_store
from xnode.web import social
from xnode.web.state import DB, POSTS, PROFILES, RELATIONSHIPS, TIMELINES


def visible_text(page: str) -> str:
    """The page's text as a reader sees it: tags gone, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def has_button(page: str, username: str, action: str, label: str) -> bool:
    """Whether the page has a relationship form posting ``action`` with ``label``."""
    pattern = (
        rf'<form method="post" action="/@{username}/{action}"[^>]*>\s*'
        rf'<input type="hidden" name="csrf_token" value="[^"]+">\s*'
        rf"<button[^>]*>{re.escape(label)}</button>"
    )
    return re.search(pattern, page) is not None


def account_list(page: str) -> str:
    """Just the list of accounts on a page (the nav links to the viewer's own profile)."""
    match = re.search(r'<ul class="account-list">.*?</ul>', page, re.S)
    return match[0] if match else ""


async def page(client: TestClient, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, (path, response.status)
    return await response.text()


async def act(client: TestClient, username: str, action: str) -> str:
    """Press a relationship button on a profile; return the flash shown afterwards."""
    response = await post_form(client, f"/@{username}/{action}", {}, token_page=f"/@{username}")
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/@{username}"
    return visible_text(await page(client, f"/@{username}"))


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


async def lock(app, account) -> None:
    await app[PROFILES].update_profile(account.id, "", "", [], locked=True, discoverable=True)


async def test_follow_and_unfollow_change_relationship_and_counts(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    before = await page(clients["bob"], "/@alice")
    assert has_button(before, "alice", "follow", "Follow")
    assert "0 followers" in visible_text(before)

    text = await act(clients["bob"], "alice", "follow")
    assert "You now follow @alice." in text
    assert "1 follower" in text and "0 followers" not in text
    assert (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    assert "1 following" in visible_text(await page(clients["bob"], "/@bob"))
    after = await page(clients["bob"], "/@alice")
    assert has_button(after, "alice", "unfollow", "Unfollow")
    assert not has_button(after, "alice", "follow", "Follow")
    assert "Follows you" in await page(clients["alice"], "/@bob")
    assert "Follows you" not in after

    text = await act(clients["bob"], "alice", "unfollow")
    assert "You no longer follow @alice." in text
    assert "0 followers" in text
    assert not (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    assert "Follows you" not in await page(clients["alice"], "/@bob")


async def test_owner_sees_no_relationship_buttons(app, people):
    _, clients = people
    own = await page(clients["alice"], "/@alice")
    assert not has_button(own, "alice", "follow", "Follow")
    assert 'href="/settings/profile"' in own
    assert has_button(await page(clients["alice"], "/@bob"), "bob", "follow", "Follow")
    response = await post_form(clients["alice"], "/@alice/follow", {}, token_page="/@alice")
    assert response.status == 303
    assert "You cannot follow yourself." in visible_text(await page(clients["alice"], "/@alice"))


async def test_logged_out_visitors_are_sent_to_login(client, app, aiohttp_client):
    alice = (await create_user(app, "alice")).account
    bob = (await create_user(app, "bob")).account
    anonymous = await aiohttp_client(client.server)
    profile = await page(anonymous, "/@alice")
    assert 'href="/login?next=/@alice"' in profile
    assert not has_button(profile, "alice", "follow", "Follow")
    token = await csrf_from(anonymous, "/login")
    response = await anonymous.post(
        "/@alice/follow", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")
    assert not (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following


async def test_locked_account_request_approve(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    await lock(app, alice)
    assert has_button(await page(clients["bob"], "/@alice"), "alice", "follow",
                      "Request to follow")
    text = await act(clients["bob"], "alice", "follow")
    assert "Follow request sent." in text
    assert has_button(await page(clients["bob"], "/@alice"), "alice", "unfollow",
                      "Cancel request")
    assert not (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    assert "0 followers" in text

    requests = await page(clients["alice"], "/follow-requests")
    assert "1 person is waiting" in visible_text(requests)
    assert f'action="/follow-requests/{bob.id}/approve"' in requests
    assert 'href="/@bob"' in account_list(requests)
    assert "Follow requests (1)" in visible_text(await page(clients["alice"], "/@alice"))
    notifications = await page(clients["alice"], "/notifications")
    assert "Follow requests (1)" in visible_text(notifications)
    assert 'href="/follow-requests"' in notifications

    response = await post_form(clients["alice"], f"/follow-requests/{bob.id}/approve", {},
                               token_page="/follow-requests")
    assert response.status == 303
    assert response.headers["Location"] == "/follow-requests"
    after = visible_text(await page(clients["alice"], "/follow-requests"))
    assert "Request approved" in after and "0 people are waiting" in after
    assert (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    assert "1 follower" in visible_text(await page(clients["bob"], "/@alice"))
    followers = await page(clients["alice"], "/@alice/followers")
    assert 'href="/@bob"' in account_list(followers)


async def test_locked_account_request_reject_and_cancel(app, people):
    accounts, clients = people
    alice, bob, carol = accounts["alice"], accounts["bob"], accounts["carol"]
    await lock(app, alice)
    await act(clients["bob"], "alice", "follow")
    await act(clients["carol"], "alice", "follow")
    assert "2 people are waiting" in visible_text(await page(clients["alice"], "/follow-requests"))

    response = await post_form(clients["alice"], f"/follow-requests/{bob.id}/reject", {},
                               token_page="/follow-requests")
    assert response.status == 303
    requests = await page(clients["alice"], "/follow-requests")
    assert "Request rejected." in visible_text(requests)
    assert f"/follow-requests/{bob.id}/" not in requests
    assert f"/follow-requests/{carol.id}/" in requests
    assert await rel_store.get_follow_state(app[DB], bob.id, alice.id) is None

    text = await act(clients["carol"], "alice", "unfollow")
    assert "Your follow request to @alice was withdrawn." in text
    assert await rel_store.get_follow_state(app[DB], carol.id, alice.id) is None
    assert "No pending follow requests." in await page(clients["alice"], "/follow-requests")

    # Answering a request that no longer exists is refused with a message, not a crash.
    response = await post_form(clients["alice"], f"/follow-requests/{bob.id}/approve", {},
                               token_page="/follow-requests")
    assert response.status == 303
    after = await page(clients["alice"], "/follow-requests")
    assert "flash-error" in after and "no pending follow request" in after
    assert await rel_store.get_follow_state(app[DB], bob.id, alice.id) is None


async def test_block_ends_follows_and_hides_posts(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[POSTS].publish(alice, Draft("zqxblockmarker from alice"))
    assert "zqxblockmarker" in await page(clients["bob"], "/@alice")

    text = await act(clients["alice"], "bob", "block")
    assert "You blocked @bob." in text
    rel = await app[RELATIONSHIPS].relationship(alice.id, bob.id)
    assert rel.blocking and not rel.following and not rel.followed_by
    assert has_button(await page(clients["alice"], "/@bob"), "bob", "unblock", "Unblock")

    blocked_view = await page(clients["bob"], "/@alice")
    assert "zqxblockmarker" not in blocked_view
    assert "<h1 class=\"profile-name\">alice</h1>" in blocked_view
    assert "You cannot see posts from @alice." in blocked_view
    assert not has_button(blocked_view, "alice", "follow", "Follow")
    # A hand-made follow request is refused too.
    response = await post_form(clients["bob"], "/@alice/follow", {}, token_page="/@alice")
    assert response.status == 303
    assert "flash-error" in await page(clients["bob"], "/@alice")
    assert not (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following

    await act(clients["alice"], "bob", "unblock")
    assert "zqxblockmarker" in await page(clients["bob"], "/@alice")


async def test_mute_hides_from_home_but_not_profile(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    post = await app[POSTS].publish(alice, Draft("zqxmutemarker"))
    home = await app[TIMELINES].home(bob.id)
    assert post.id in [v.post.id for v in home.items]

    text = await act(clients["bob"], "alice", "mute")
    assert "You muted @alice" in text
    assert has_button(await page(clients["bob"], "/@alice"), "alice", "unmute", "Unmute")
    home = await app[TIMELINES].home(bob.id)
    assert post.id not in [v.post.id for v in home.items]
    assert "zqxmutemarker" in await page(clients["bob"], "/@alice")
    assert (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following

    await act(clients["bob"], "alice", "unmute")
    home = await app[TIMELINES].home(bob.id)
    assert post.id in [v.post.id for v in home.items]


async def test_a_timed_mute_ends_on_time_without_anyone_asking(app, people, clock):
    """The serving app's own task deletes the mute row when its time is up (timelines test
    for the row): not a minute later, and not before."""
    accounts, _ = people
    alice, bob = accounts["alice"], accounts["bob"]
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    post = await app[POSTS].publish(alice, Draft("zqxtimedmute"))

    async def in_home() -> bool:
        return post.id in [v.post.id for v in (await app[TIMELINES].home(bob.id)).items]

    await app[RELATIONSHIPS].set_mute(bob.id, alice.id, True, duration=0.2)
    await asyncio.sleep(0.6)  # real time: the task looks (the node's clock stands still)
    assert not await in_home()
    clock.advance(1)
    async with asyncio.timeout(10):  # the old periodic sweep waited 60 s
        while not await in_home():
            await asyncio.sleep(0.05)
    assert await app[DB].fetchvalue("SELECT COUNT(*) FROM mutes") == 0


async def test_hide_network_hides_lists_from_others_only(client, app, people, aiohttp_client):
    accounts, clients = people
    await app[RELATIONSHIPS].follow(accounts["bob"].id, accounts["alice"].id)
    response = await post_form(clients["alice"], "/settings/profile", {"hide_network": "1"})
    assert response.status == 303, await response.text()
    settings_page = await page(clients["alice"], "/settings/profile")
    assert re.search(r'name="hide_network" value="1"\s+checked', settings_page)

    anonymous = await aiohttp_client(client.server)
    for viewer in (clients["bob"], anonymous):
        for kind in ("followers", "following"):
            response = await viewer.get(f"/@alice/{kind}")
            assert response.status == 403
            assert "hidden" in await response.text()
        profile = await page(viewer, "/@alice")
        assert 'href="/@alice/followers"' not in profile
        assert "1 follower" in visible_text(profile)
    own = await page(clients["alice"], "/@alice")
    assert 'href="/@alice/followers"' in own
    assert 'href="/@bob"' in account_list(await page(clients["alice"], "/@alice/followers"))
    # Bob hides nothing: his lists stay public.
    assert 'href="/@alice"' in account_list(await page(anonymous, "/@bob/following"))


async def test_network_lists_paginate(app, people, monkeypatch):
    monkeypatch.setattr(relationships, "PAGE_SIZE", 1)
    monkeypatch.setattr(social, "PAGE_SIZE", 1)
    accounts, clients = people
    await app[RELATIONSHIPS].follow(accounts["bob"].id, accounts["alice"].id)
    await app[RELATIONSHIPS].follow(accounts["carol"].id, accounts["alice"].id)
    first = await page(clients["bob"], "/@alice/followers")
    assert 'href="/@carol"' in account_list(first)
    assert 'href="/@bob"' not in account_list(first)
    match = re.search(r'href="(/@alice/followers\?max_id=\d+)" rel="next"', first)
    assert match
    second = await page(clients["bob"], match[1])
    assert 'href="/@bob"' in account_list(second)
    assert 'href="/@carol"' not in account_list(second)


async def test_profile_shows_pinned_first_and_paginates(app, people):
    accounts, clients = people
    alice = accounts["alice"]
    posts = [await app[POSTS].publish(alice, Draft(f"zqxpost{i:02d}")) for i in range(42)]
    await app[POSTS].pin(alice.id, posts[0].id)
    first = await page(clients["bob"], "/@alice")
    assert first.index("zqxpost00") < first.index("zqxpost41") < first.index("zqxpost02")
    assert first.count('id="post-' + str(posts[0].id) + '"') == 1
    assert "zqxpost01" not in first
    match = re.search(r'href="(/@alice\?max_id=\d+)" rel="next">Older posts<', first)
    assert match
    older = await page(clients["bob"], match[1])
    assert "zqxpost01" in older and "zqxpost41" not in older
    assert "Pinned" not in older


async def test_bad_cursor_and_unknown_accounts(client, app, people):
    _, clients = people
    assert (await clients["bob"].get("/@alice?max_id=abc")).status == 400
    assert (await clients["bob"].get("/@alice?max_id=99999999999999999999")).status == 400
    assert (await clients["bob"].get("/@nobody")).status == 404
    assert (await clients["bob"].get("/@nobody/followers")).status == 404
    response = await post_form(clients["bob"], "/@nobody/follow", {}, token_page="/@alice")
    assert response.status == 404


async def test_actions_without_csrf_are_refused(app, people):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    for action in ("follow", "block", "mute"):
        response = await clients["bob"].post(f"/@alice/{action}", data={},
                                              allow_redirects=False)
        assert response.status == 403
    rel = await app[RELATIONSHIPS].relationship(bob.id, alice.id)
    assert not (rel.following or rel.requested or rel.blocking or rel.muting)

    await lock(app, alice)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    response = await clients["alice"].post(f"/follow-requests/{bob.id}/approve",
                                           data={"csrf_token": "forged"},
                                           allow_redirects=False)
    assert response.status == 403
    assert await rel_store.get_follow_state(app[DB], bob.id, alice.id) == "pending"


async def test_pin_limit_counts_new_pins_only(app, people):
    from xnode.errors import Conflict
    from xnode.posts.service import MAX_PINS

    accounts, _clients = people
    alice = accounts["alice"]
    posts = [await app[POSTS].publish(alice, Draft(f"zqxpin{i}")) for i in range(MAX_PINS + 1)]
    for post in posts[:MAX_PINS]:
        await app[POSTS].pin(alice.id, post.id)
    await app[POSTS].pin(alice.id, posts[0].id)  # pinning again at the limit is a no-op
    with pytest.raises(Conflict):
        await app[POSTS].pin(alice.id, posts[MAX_PINS].id)
