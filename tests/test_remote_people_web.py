"""Remote people in the web UI act on the remote person, never on a local namesake (issue 15).

bruno@other.example is a remote account known to the node; a local @bruno exists
too, so any link or form built from the bare username would land on him.
"""

from __future__ import annotations

import re

import pytest
from conftest import create_user, csrf_from, login, post_form

from xnode.accounts.models import Account
from xnode.ids import new_id
from xnode.posts.service import Draft
from xnode.store import accounts as account_store
from xnode.web.state import DB, POSTS, RELATIONSHIPS

REMOTE = "bruno@other.example"
PROFILE = f"/@{REMOTE}"


async def remote_account(app, username: str, domain: str, *, locked: bool = False) -> Account:
    """A remote account as the resolver stores it (fresh, so no fetch is attempted)."""
    account_id = new_id()
    actor = f"https://{domain}/users/{username}"
    await app[DB].execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, url, inbox_url,"
        " locked, fetched_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 4102444800, 0, 0)",
        (account_id, username, username.lower(), domain, actor, f"https://{domain}/@{username}",
         f"{actor}/inbox", int(locked)),
    )
    account = await account_store.get_account(app[DB], account_id)
    assert account is not None
    return account


@pytest.fixture
async def cast(client, app):
    """alice (logged in), a local bruno, and the remote bruno@other.example."""
    alice = (await create_user(app, "alice")).account
    local_bruno = (await create_user(app, "bruno")).account
    remote_bruno = await remote_account(app, "bruno", "other.example")
    await login(client, "alice")
    return alice, local_bruno, remote_bruno


async def text_of(client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, (path, response.status)
    return await response.text()


async def test_every_form_and_link_on_a_remote_profile_names_the_remote_person(client, cast):
    page = await text_of(client, PROFILE)
    actions = re.findall(r'<form method="post" action="([^"]+)"', page)
    profile_forms = [a for a in actions if a.startswith("/@")]
    assert profile_forms, page
    assert all(a.startswith(f"{PROFILE}/") for a in profile_forms), profile_forms
    # No link to the local namesake's pages, and no local feeds for a remote person.
    assert 'href="/@bruno/' not in page and 'href="/@bruno"' not in page
    assert "feed.atom" not in page and "feed.rss" not in page
    assert 'href="https://other.example/@bruno"' in page  # "View on other.example"


@pytest.mark.parametrize("action", ["follow", "mute", "block"])
async def test_actions_on_a_remote_profile_reach_the_remote_person(client, app, cast, action):
    alice, local_bruno, remote_bruno = cast
    response = await post_form(client, f"{PROFILE}/{action}", {}, token_page=PROFILE)
    assert response.status == 303 and response.headers["Location"] == PROFILE
    rels = app[RELATIONSHIPS]
    on_remote = await rels.relationship(alice.id, remote_bruno.id)
    on_local = await rels.relationship(alice.id, local_bruno.id)
    done = {"follow": "requested", "mute": "muting", "block": "blocking"}[action]
    assert getattr(on_remote, done)
    assert not any((on_local.requested, on_local.following, on_local.muting, on_local.blocking))


async def test_following_a_remote_person_says_the_follow_is_on_its_way(client, app, cast):
    await post_form(client, f"{PROFILE}/follow", {}, token_page=PROFILE)
    page = await text_of(client, PROFILE)
    assert f"Your follow is on its way to @{REMOTE}" in page
    assert "reviews requests" not in page


async def test_a_locked_remote_person_reviews_requests(client, app, cast):
    await remote_account(app, "lena", "other.example", locked=True)
    await post_form(client, "/@lena@other.example/follow", {}, token_page="/@lena@other.example")
    page = await text_of(client, "/@lena@other.example")
    assert "Follow request sent. @lena@other.example reviews requests" in page


async def test_remote_people_in_lists_link_to_their_local_view(client, app, cast):
    alice, _, remote_bruno = cast
    await app[RELATIONSHIPS].follow(remote_bruno.id, alice.id)  # bruno follows alice
    page = await text_of(client, "/@alice/followers")
    assert f'href="{PROFILE}"' in page
    assert "https://other.example/@bruno" not in page
    search = await text_of(client, f"/search?q=%40{REMOTE}")
    assert f'href="{PROFILE}"' in search
    notifications = await text_of(client, "/notifications")
    assert f'href="{PROFILE}"' in notifications


async def test_mentions_in_posts_link_to_the_local_view(client, app, cast):
    alice, _, _ = cast
    await app[POSTS].publish(alice, Draft(f"hello @{REMOTE}"))
    page = await text_of(client, "/@alice")
    assert f'href="{PROFILE}"' in page
    assert 'href="https://other.example/@bruno"' not in page


async def test_searching_a_local_persons_full_handle_finds_them(client, app, cast):
    search = await text_of(client, "/search?q=%40bruno%40xnode.test")
    assert 'href="/@bruno"' in search


async def test_csrf_still_guards_remote_profile_actions(client, app, cast):
    alice, _, remote_bruno = cast
    token = await csrf_from(client, PROFILE)
    response = await client.post(f"{PROFILE}/follow", data={"csrf_token": token + "x"},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 403
    assert not (await app[RELATIONSHIPS].relationship(alice.id, remote_bruno.id)).requested
