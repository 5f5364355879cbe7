"""What hydration reads about a page of posts (xnode/store/hydration.py).

On PostgreSQL ``page_facts`` is one statement that stands for the aggregates' own reads;
here it must find exactly what those reads find, on the same database (the reads run as
on SQLite). On SQLite both sides are the reads, and the expected facts are checked alone.
"""

from __future__ import annotations

import io
from typing import Any

from conftest import create_user
from PIL import Image

from xnode.posts.models import Post
from xnode.posts.service import Draft, ImageUpload
from xnode.store import posts as post_store
from xnode.store.database import Database
from xnode.store.hydration import PageFacts, page_facts
from xnode.web.state import DB, POSTS, RELATIONSHIPS


class _Reads:
    """The database, seen as SQLite by ``page_facts``: it makes the aggregates' reads."""

    dialect = "sqlite"

    def __init__(self, db: Database) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _comparable(facts: PageFacts) -> dict[str, Any]:
    """The facts with the lists that have no order of their own sorted."""
    return {
        **facts.__dict__,
        "mentions": {k: sorted(v) for k, v in facts.mentions.items()},
        "tags": {k: sorted(v) for k, v in facts.tags.items()},
    }


async def test_page_facts_match_the_reads(app):
    db = app[DB]
    posts, relationships = app[POSTS], app[RELATIONSHIPS]
    alice, bob, carol, dave = [
        (await create_user(app, name)).account for name in ("alice", "bob", "carol", "dave")
    ]
    await relationships.follow(bob.id, alice.id)
    hello = await posts.publish(alice, Draft("hi @carol #Tea"))
    pictured = await posts.publish(alice, Draft("look", images=[ImageUpload(_png(), "red")]))
    question = await posts.publish(bob, Draft("a question"))
    answer = await posts.publish(alice, Draft("an answer", in_reply_to_id=question.id))
    rude = await posts.publish(dave, Draft("rude"))
    await relationships.block(bob.id, dave.id)
    await posts.boost(carol, hello.id)
    await posts.boost(carol, answer.id)  # a boosted reply: its parent is found too
    await posts.boost(bob, hello.id)
    await posts.like(bob.id, hello.id)
    await posts.bookmark(bob.id, pictured.id)
    await posts.pin(bob.id, question.id)
    boosts = [
        await post_store.boost_by(db, carol.id, hello.id),
        await post_store.boost_by(db, carol.id, answer.id),
    ]
    page: list[Post] = [b for b in boosts if b is not None]
    page += [pictured, question, rude]
    assert len(page) == 5

    for viewer in (bob.id, None):
        for previews in (True, False):
            found = await page_facts(db, viewer, page, previews=previews)
            reads = await page_facts(_Reads(db), viewer, page, previews=previews)
            assert _comparable(found) == _comparable(reads)

    facts = await page_facts(db, bob.id, page, previews=True)
    assert set(facts.originals) == {hello.id, answer.id}
    assert set(facts.authors) == {alice.id, bob.id, carol.id, dave.id}
    assert facts.mentions[hello.id] == [carol.id]
    # The answer mentions bob, whom it answers.
    assert set(facts.mentioned) == {carol.id, bob.id}
    assert facts.following == {alice.id}
    assert facts.blocked == {dave.id}
    assert [m.description for m in facts.media[pictured.id]] == ["red"]
    assert facts.tags[hello.id] == ["tea"]
    state = facts.states[hello.id]
    assert (state.liked, state.boosted, state.bookmarked, state.pinned) == (
        True, True, False, False
    )
    assert facts.states[pictured.id].bookmarked
    assert facts.states[question.id].pinned
    assert facts.parent_authors == {question.id: bob.id}
    anonymous = await page_facts(db, None, page, previews=True)
    assert (anonymous.states, anonymous.following, anonymous.blocked) == ({}, set(), set())
    assert await page_facts(db, bob.id, [], previews=True) == PageFacts()
