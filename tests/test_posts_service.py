"""The post, relationship, timeline, notification and search services (no HTTP)."""

from __future__ import annotations

import pytest
from conftest import create_user

from xnode.errors import Conflict, Forbidden, InvalidInput, NotFound
from xnode.posts.service import Draft, Gone
from xnode.timelines import Cursor
from xnode.web.state import NOTIFICATIONS, POSTS, RELATIONSHIPS, SEARCH, TIMELINES


@pytest.fixture
async def people(app):
    alice = (await create_user(app, "alice")).account
    bob = (await create_user(app, "bob")).account
    carol = (await create_user(app, "carol")).account
    return alice, bob, carol


async def test_publish_renders_mentions_tags_and_links(app, people):
    alice, bob, _ = people
    post = await app[POSTS].publish(
        alice, Draft("Hi @bob, see https://example.org #Launch <b>x</b>")
    )
    assert 'href="http://xnode.test/@bob"' in post.content_html
    assert 'href="http://xnode.test/tags/launch"' in post.content_html
    assert "&lt;b&gt;x&lt;/b&gt;" in post.content_html
    view = await app[POSTS].view(bob.id, post.id)
    assert [m.username for m in view.mentions] == ["bob"]
    assert view.tags == ("launch",)
    notes, _ = await app[NOTIFICATIONS].page(bob.id)
    assert [(n.kind, n.from_account.username) for n in notes] == [("mention", "alice")]


async def test_limits(app, people):
    alice, _, _ = people
    with pytest.raises(InvalidInput, match="5,000"):
        await app[POSTS].publish(alice, Draft("x" * 5001))
    with pytest.raises(InvalidInput):
        await app[POSTS].publish(alice, Draft("   "))
    with pytest.raises(InvalidInput):
        await app[POSTS].publish(alice, Draft("hi", visibility="everyone"))
    with pytest.raises(InvalidInput, match="title"):
        await app[POSTS].publish(alice, Draft("body", kind="article"))
    article = await app[POSTS].publish(
        alice, Draft("# Head\n\n" + "word " * 15000, kind="article", title="Long read",
                     source_format="markdown")
    )
    assert "<h1>Head</h1>" in article.content_html


async def test_followers_only_and_direct_visibility(app, people):
    alice, bob, carol = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    private = await app[POSTS].publish(alice, Draft("for followers", visibility="followers"))
    direct = await app[POSTS].publish(alice, Draft("psst @carol", visibility="direct"))
    assert (await app[POSTS].view(bob.id, private.id)).post.id == private.id
    for viewer in (carol.id, None):
        with pytest.raises(NotFound):
            await app[POSTS].view(viewer, private.id)
    assert (await app[POSTS].view(carol.id, direct.id)).post.id == direct.id
    for viewer in (bob.id, None):
        with pytest.raises(NotFound):
            await app[POSTS].view(viewer, direct.id)


async def test_home_timeline_fans_out_on_read(app, people):
    alice, bob, carol = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    first = await app[POSTS].publish(alice, Draft("one"))
    await app[POSTS].publish(carol, Draft("not followed"))
    second = await app[POSTS].publish(alice, Draft("two", visibility="followers"))
    await app[POSTS].publish(alice, Draft("dm @carol", visibility="direct"))
    own = await app[POSTS].publish(bob, Draft("mine"))
    page = await app[TIMELINES].home(bob.id)
    assert [v.post.id for v in page.items] == [own.id, second.id, first.id]
    older = await app[TIMELINES].home(bob.id, Cursor(max_id=second.id))
    assert [v.post.id for v in older.items] == [first.id]
    newer = await app[TIMELINES].home(bob.id, Cursor(min_id=first.id, limit=1))
    assert [v.post.id for v in newer.items] == [second.id]
    await app[RELATIONSHIPS].set_mute(bob.id, alice.id, True)
    assert [v.post.id for v in (await app[TIMELINES].home(bob.id)).items] == [own.id]


async def test_boosts_show_in_followers_home_and_notify(app, people):
    alice, bob, carol = people
    await app[RELATIONSHIPS].follow(carol.id, bob.id)
    post = await app[POSTS].publish(alice, Draft("boost me"))
    await app[POSTS].boost(bob, post.id)
    page = await app[TIMELINES].home(carol.id)
    assert page.items[0].post.id == post.id and page.items[0].booster.id == bob.id
    notes, _ = await app[NOTIFICATIONS].page(alice.id)
    assert notes[0].kind == "boost"
    private = await app[POSTS].publish(alice, Draft("no", visibility="followers"))
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    with pytest.raises(Forbidden):
        await app[POSTS].boost(bob, private.id)
    await app[POSTS].boost(bob, post.id, on=False)
    assert (await app[TIMELINES].home(carol.id)).items == []


async def test_blocks_hide_both_ways_and_remove_follows(app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    post = await app[POSTS].publish(alice, Draft("hello"))
    await app[RELATIONSHIPS].block(alice.id, bob.id)
    with pytest.raises(NotFound):
        await app[POSTS].view(bob.id, post.id)
    relation = await app[RELATIONSHIPS].relationship(bob.id, alice.id)
    assert relation.blocked_by and not relation.following
    with pytest.raises(Forbidden):
        await app[RELATIONSHIPS].follow(bob.id, alice.id)
    assert (await app[TIMELINES].local(bob.id)).items == []


async def test_locked_account_requests(app, people):
    alice, bob, _ = people
    await app[POSTS].db.execute("UPDATE accounts SET locked = 1 WHERE id = ?", (alice.id,))
    assert await app[RELATIONSHIPS].follow(bob.id, alice.id) == "pending"
    notes, _ = await app[NOTIFICATIONS].page(alice.id)
    assert notes[0].kind == "follow_request"
    await app[RELATIONSHIPS].accept_request(alice.id, bob.id)
    assert (await app[RELATIONSHIPS].relationship(bob.id, alice.id)).following
    with pytest.raises(NotFound):
        await app[RELATIONSHIPS].accept_request(alice.id, bob.id)
    with pytest.raises(Conflict):
        await app[RELATIONSHIPS].follow(alice.id, alice.id)


async def test_thread_edit_history_and_delete(app, people):
    alice, bob, _ = people
    root = await app[POSTS].publish(alice, Draft("root"))
    reply = await app[POSTS].publish(bob, Draft("reply", in_reply_to_id=root.id))
    deeper = await app[POSTS].publish(alice, Draft("deeper", in_reply_to_id=reply.id))
    thread = await app[POSTS].thread(None, reply.id)
    assert [v.post.id for v in thread.ancestors] == [root.id]
    assert [(v.post.id, depth) for v, depth in thread.descendants] == [(deeper.id, 1)]
    assert reply.context == root.context
    await app[POSTS].edit(bob.id, reply.id, source="reply (fixed)", summary="", sensitive=False)
    history = await app[POSTS].edit_history(None, reply.id)
    assert [h.source for h in history] == ["reply"]
    with pytest.raises(Forbidden):
        await app[POSTS].edit(alice.id, reply.id, source="hijack", summary="", sensitive=False)
    await app[POSTS].delete(bob.id, reply.id)
    with pytest.raises(Gone):
        await app[POSTS].view(None, reply.id)
    thread = await app[POSTS].thread(None, root.id)
    assert [v.post.is_deleted for v, _ in thread.descendants] == [True, False]
    assert (await app[POSTS].view(None, root.id)).post.replies_count == 0


async def test_search_respects_visibility_and_skips_direct(app, people):
    alice, bob, _ = people
    await app[POSTS].publish(alice, Draft("zebra crossing in public"))
    await app[POSTS].publish(alice, Draft("zebra for followers", visibility="followers"))
    await app[POSTS].publish(alice, Draft("zebra secret @bob", visibility="direct"))
    found = await app[SEARCH].search(None, "zebra")
    assert [v.post.source for v in found.posts] == ["zebra crossing in public"]
    as_bob = await app[SEARCH].search(bob.id, "zebr")
    assert "zebra secret @bob" not in [v.post.source for v in as_bob.posts]
    assert [a.username for a in (await app[SEARCH].search(None, "@alice")).accounts] == ["alice"]
    assert (await app[SEARCH].search(None, 'x" OR ("')).posts == []
