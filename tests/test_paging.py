"""One paging rule for every list (xnode/store/paging.py), Mastodon's: ``min_id`` reads the
items just above it, upwards, still bounded by ``max_id`` when that is given too, and the
page comes back newest first; ``since_id`` gives the newest items above it instead.

Each list below gets five items; the same cursors must pick the same positions in all.
"""

from __future__ import annotations

import pytest
from conftest import create_user

from xnode.posts.service import Draft
from xnode.timelines import Cursor
from xnode.web.state import NOTIFICATIONS, POSTS, RELATIONSHIPS, TIMELINES

# (cursor as positions among the five items, 0 the oldest) -> positions expected, newest first
CASES = [
    ({"max_id": 4, "min_id": 0, "limit": 2}, [2, 1]),
    ({"max_id": 4, "since_id": 0, "limit": 2}, [3, 2]),
    ({"min_id": 1, "limit": 2}, [3, 2]),
    ({"max_id": 3, "limit": 2}, [2, 1]),
    ({"max_id": 4, "min_id": 1, "limit": 10}, [3, 2]),
]


@pytest.fixture
async def lists(app):
    """Five items in each list, as the ids each list is paged by, oldest first."""
    alice = (await create_user(app, "alice")).account
    fans = [(await create_user(app, f"fan{n}")).account for n in range(5)]
    posts = [await app[POSTS].publish(alice, Draft(f"post {n}")) for n in range(5)]
    for fan in fans:
        await app[RELATIONSHIPS].follow(fan.id, alice.id)
        await app[POSTS].like(fan.id, posts[0].id)
    follows = [follow_id for follow_id, _ in await app[RELATIONSHIPS].followers(alice.id)][::-1]
    likes = [like_id for like_id, _ in await app[POSTS].liked_by(alice.id, posts[0].id, Cursor())]
    notes = (await app[NOTIFICATIONS].listing(alice.id, {"follow"})).scanned[::-1]
    return alice, posts, follows, likes[::-1], notes


def _cursor(positions: dict[str, int], ids: list[int]) -> dict[str, int]:
    return {k: (v if k == "limit" else ids[v]) for k, v in positions.items()}


@pytest.mark.parametrize(("cursor", "expected"), CASES)
async def test_every_list_pages_by_the_same_rule(app, lists, cursor, expected):
    alice, posts, follows, likes, notes = lists
    post_ids = [p.id for p in posts]
    assert len(follows) == len(likes) == len(notes) == 5

    page = await app[TIMELINES].profile(alice.id, alice.id, Cursor(**_cursor(cursor, post_ids)))
    assert [v.post.id for v in page.items] == [post_ids[i] for i in expected], "profile"

    found = await app[RELATIONSHIPS].followers(alice.id, **_cursor(cursor, follows))
    assert [follow_id for follow_id, _ in found] == [follows[i] for i in expected], "followers"

    found = await app[POSTS].liked_by(alice.id, posts[0].id, Cursor(**_cursor(cursor, likes)))
    assert [like_id for like_id, _ in found] == [likes[i] for i in expected], "likers"

    listed = await app[NOTIFICATIONS].listing(alice.id, {"follow"}, **_cursor(cursor, notes))
    assert listed.scanned == [notes[i] for i in expected], "notifications"
