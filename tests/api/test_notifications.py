"""Notifications through the client API: Mastodon.py, pagination both ways, types,
dismiss and clear, unread counts, privacy and bad input."""

from __future__ import annotations

from conftest import create_user

from api.conftest import in_thread, mastodon_for, token_for
from xnode.api.notifications import notification_entities
from xnode.ids import new_id
from xnode.posts.service import Draft
from xnode.store import notifications as notification_store
from xnode.web.state import DB, NOTIFICATIONS, POSTS, RELATIONSHIPS


async def _busy_alice(app):
    """alice gets: a follow (bob), a mention and a reply (bob), a like and a boost (carol)."""
    alice, bob, carol = [await create_user(app, n) for n in ("alice", "bob", "carol")]
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    own = await app[POSTS].publish(alice.account, Draft("zqx my post"))
    await app[POSTS].publish(bob.account, Draft("hello @alice"))
    await app[POSTS].publish(bob.account, Draft("a reply", in_reply_to_id=own.id))
    await app[POSTS].like(carol.id, own.id)
    await app[POSTS].boost(carol.account, own.id)
    return alice, bob, carol, own


async def test_mastodon_py_lists_types_and_pages_both_ways(client, app):
    alice, _bob, carol, own = await _busy_alice(app)
    masto = await mastodon_for(client, await token_for(app, alice, "read write"))
    items = await in_thread(masto.notifications)
    assert [n.type for n in items] == ["reblog", "favourite", "mention", "mention", "follow"]
    boost, like, reply, mention, follow = items
    assert boost.account.acct == "carol" and str(boost.status.id) == str(own.id)
    assert str(reply.status.in_reply_to_id) == str(own.id) and mention.account.acct == "bob"
    assert follow.status is None and follow.group_key == f"ungrouped-{follow.id}"
    # Pages of two, down to the end and back up.
    first = await in_thread(masto.notifications, limit=2)
    second = await in_thread(masto.fetch_next, first)
    third = await in_thread(masto.fetch_next, second)
    assert [n.id for n in [*first, *second, *third]] == [n.id for n in items]
    back = await in_thread(masto.fetch_previous, third)
    assert [n.id for n in back] == [n.id for n in second]
    assert [n.id for n in await in_thread(masto.notifications, since_id=reply.id)] == [
        boost.id, like.id]
    assert [n.id for n in await in_thread(masto.notifications, min_id=follow.id, limit=1)] == [
        mention.id]
    # Filters: types, exclude_types, account_id.
    mentions = await in_thread(masto.notifications, types=["mention"])
    assert [n.id for n in mentions] == [reply.id, mention.id]
    rest = await in_thread(masto.notifications, exclude_types=["mention", "follow"])
    assert [n.type for n in rest] == ["reblog", "favourite"]
    assert [n.id for n in await in_thread(masto.notifications, account_id=str(carol.id))] == [
        boost.id, like.id]
    # One by id, then dismiss and clear.
    assert (await in_thread(masto.notifications, id=like.id)).type == "favourite"
    await in_thread(masto.notifications_dismiss, like.id)
    assert like.id not in [n.id for n in await in_thread(masto.notifications)]
    assert (await in_thread(masto.notifications_unread_count)).count == 4
    await in_thread(masto.notifications_clear)
    assert await in_thread(masto.notifications) == []


async def test_entities_for_the_streaming_helper(client, app):
    alice, *_ = await _busy_alice(app)
    page = await app[NOTIFICATIONS].listing(alice.id, {"like", "follow"})
    found = await notification_entities(app, alice.id, page.items)
    assert [e["type"] for e in found] == ["favourite", "follow"]


async def test_missed_calls_stay_out_of_the_api(client, app, api_as):
    alice, bob = await create_user(app, "alice"), await create_user(app, "bob")
    call_id = new_id()
    async with app[DB].transaction() as conn:
        await notification_store.insert_notification(
            conn, call_id, recipient_id=alice.id, kind="missed_call", from_id=bob.id,
            post_id=None, now=1.0,
        )  # fmt: skip
    api = await api_as(alice, "read write")
    assert await api.get("/api/v1/notifications") == []
    await api.get(f"/api/v1/notifications/{call_id}", expect=404)
    await api.post(f"/api/v1/notifications/{call_id}/dismiss", expect=404)
    assert (await api.get("/api/v1/notifications/unread_count"))["count"] == 0
    await api.post("/api/v1/notifications/clear")
    # The web page still has it: clearing in an app removes only what apps show.
    items, _ = await app[NOTIFICATIONS].page(alice.id)
    assert [n.kind for n in items] == ["missed_call"]


async def test_privacy_scopes_and_hidden_posts(client, app, api_as):
    alice, bob, _carol, own = await _busy_alice(app)
    mine = await (await api_as(alice, "read")).get("/api/v1/notifications")
    other = await api_as(bob, "read write")
    for item in mine:
        await other.get(f"/api/v1/notifications/{item['id']}", expect=404)
        await other.post(f"/api/v1/notifications/{item['id']}/dismiss", expect=404)
    assert len(await (await api_as(alice, "read")).get("/api/v1/notifications")) == 5
    # read:statuses alone may not read notifications; read:notifications may not write.
    await (await api_as(alice, "read:statuses")).get("/api/v1/notifications", expect=403)
    narrow = await api_as(alice, "read:notifications")
    await narrow.post("/api/v1/notifications/clear", expect=403)
    await (await api_as(None, token=False)).get("/api/v1/notifications", expect=401)
    await (await api_as(None, "read")).get("/api/v1/notifications", expect=422)  # app token
    # Notifications about a post alice can no longer see (the like and boost of her
    # deleted post) are left out.
    await app[POSTS].delete(alice.id, own.id)
    assert [n["type"] for n in await narrow.get("/api/v1/notifications")] == [
        "mention", "mention", "follow"]


async def test_bad_input_is_a_clear_4xx(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read write")
    for path in ("/api/v1/notifications/abc", "/api/v1/notifications/99999999999999999999",
                 "/api/v1/notifications?max_id=x", "/api/v1/notifications?limit=lots",
                 "/api/v1/notifications?types[]=<script>", "/api/v1/notifications?account_id=-1",
                 "/api/v1/notifications/unread_count?limit=0"):  # fmt: skip
        body = await api.get(path, expect=None)
        assert api.last.status in (404, 422), (path, api.last.status, body)
    await api.get("/api/v1/notifications/12345", expect=404)
    await api.post("/api/v1/notifications/12345/dismiss", expect=404)
    # Huge limits are lowered; types the node never writes match nothing.
    assert await api.get("/api/v1/notifications?limit=100000") == []
    assert await api.get("/api/v1/notifications?types[]=poll&types[]=quote") == []
    assert (await api.get("/api/v1/notifications/unread_count?limit=5000"))["count"] == 0
    await api.get("/api/v1/notifications/")  # the trailing-slash twin


async def test_markers_set_get_and_mark_notifications_read(client, app, api_as):
    alice, bob, _carol, own = await _busy_alice(app)
    masto = await mastodon_for(client, await token_for(app, alice, "read write"))
    assert await in_thread(masto.markers_get, ["home", "notifications"]) == {}
    items = await in_thread(masto.notifications)
    middle = items[2]  # the reply: the two older ones get read
    got = await in_thread(masto.markers_set, ["home", "notifications"], [own.id, middle.id])
    assert str(got["home"].last_read_id) == str(own.id) and got["home"].version == 1
    assert str(got["notifications"].last_read_id) == str(middle.id)
    assert (await in_thread(masto.notifications_unread_count)).count == 2
    # Moving a marker raises its version; setting the same position does not.
    api = await api_as(alice, "read write")
    moved = await api.post("/api/v1/markers", json={"home": {"last_read_id": str(items[0].id)}})
    assert moved["home"]["version"] == 2 and set(moved) == {"home"}
    same = await api.post("/api/v1/markers", data={"home[last_read_id]": str(items[0].id)})
    assert same["home"]["version"] == 2
    both = await api.get("/api/v1/markers?timeline[]=home&timeline[]=notifications")
    assert both["home"]["last_read_id"] == str(items[0].id)
    assert both["notifications"]["updated_at"].endswith("Z")
    assert set(await api.get("/api/v1/markers?timeline[]=notifications")) == {"notifications"}
    assert await api.get("/api/v1/markers") == {}
    # Someone else's markers are their own.
    assert await (await api_as(bob, "read")).get(
        "/api/v1/markers?timeline[]=home&timeline[]=notifications") == {}
    # Scopes as Mastodon's: read:statuses / write:statuses.
    await (await api_as(alice, "read:notifications")).get("/api/v1/markers", expect=403)
    await (await api_as(alice, "read")).post("/api/v1/markers", expect=403)
    # Bad input.
    await api.post("/api/v1/markers", json={"home": {"last_read_id": "x"}}, expect=422)
    await api.post("/api/v1/markers", json={"home": {}}, expect=422)
    await api.post("/api/v1/markers", json={"home": "12"}, expect=422)
    await api.post("/api/v1/markers", json={"home": {"last_read_id": ["1"]}}, expect=422)
    assert await api.post("/api/v1/markers", json={"elsewhere": {"last_read_id": "1"}}) == {}
