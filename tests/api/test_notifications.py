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
    assert follow.status is None and follow.group_key.startswith("follow-d")
    assert mention.group_key == f"ungrouped-{mention.id}"
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
    found = await notification_entities(app, page.items)
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
    # No notification filtering: only "accept" can be chosen; no requests to act on.
    await api.patch("/api/v2/notifications/policy", json={"for_not_following": "filter"},
                    expect=422)  # fmt: skip
    await api.patch("/api/v2/notifications/policy", json={"for_new_accounts": "x"}, expect=422)
    assert (await api.patch("/api/v2/notifications/policy", json={
        "for_not_followers": "accept"}))["for_not_followers"] == "accept"  # fmt: skip
    await api.get("/api/v1/notifications/requests/1", expect=404)
    await api.post("/api/v1/notifications/requests/1/accept", expect=404)


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


async def test_grouped_notifications_v2(client, app, api_as):
    alice, bob, carol, own = await _busy_alice(app)
    dave = await create_user(app, "dave")
    await app[POSTS].like(bob.id, own.id)
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    api = await api_as(alice, "read write")
    found = await api.get("/api/v2/notifications")
    groups = found["notification_groups"]
    assert [(g["type"], g["notifications_count"]) for g in groups] == [
        ("follow", 2), ("favourite", 2), ("reblog", 1), ("mention", 1), ("mention", 1)]
    follows, likes = groups[0], groups[1]
    assert follows["sample_account_ids"] == [str(carol.id), str(bob.id)]
    assert likes["status_id"] == str(own.id) and "status_id" not in follows
    assert likes["page_max_id"] >= likes["page_min_id"]
    assert sorted(a["acct"] for a in found["accounts"]) == ["bob", "carol"]
    assert {s["id"] for s in found["statuses"]} >= {str(own.id)}
    # The same keys in v1 entities, one group by key, its accounts, its dismissal.
    v1 = await api.get("/api/v1/notifications?types[]=favourite")
    assert {n["group_key"] for n in v1} == {likes["group_key"]}
    one = await api.get(f"/api/v2/notifications/{likes['group_key']}")
    assert one["notification_groups"][0]["notifications_count"] == 2
    assert "page_min_id" not in one["notification_groups"][0]
    people = await api.get(f"/api/v2/notifications/{likes['group_key']}/accounts")
    assert [a["acct"] for a in people] == ["bob", "carol"]
    assert (await api.get("/api/v2/notifications/unread_count"))["count"] == 5
    # grouped_types: only favourites grouped; follows come one by one.
    partly = await api.get("/api/v2/notifications?grouped_types[]=favourite")
    assert [g["type"] for g in partly["notification_groups"]] == [
        "follow", "favourite", "reblog", "mention", "mention", "follow"]
    assert partly["notification_groups"][0]["group_key"].startswith("ungrouped-")
    # Pages of notifications, with Link headers.
    await api.get("/api/v2/notifications?limit=2")
    assert 'rel="next"' in api.last.headers["Link"]
    assert await api.post(f"/api/v2/notifications/{likes['group_key']}/dismiss") == {}
    await api.get(f"/api/v2/notifications/{likes['group_key']}", expect=404)
    # Someone else's groups and keys that are not keys are 404; bad types 422.
    other = await api_as(dave, "read write")
    await other.get(f"/api/v2/notifications/{follows['group_key']}", expect=404)
    await other.post(f"/api/v2/notifications/{follows['group_key']}/dismiss", expect=404)
    await other.get("/api/v2/notifications/nonsense-1", expect=404)
    await api.get("/api/v2/notifications?grouped_types[]=%3Cb%3E", expect=422)
    assert (await other.get("/api/v2/notifications"))["notification_groups"] == []


async def test_mastodon_py_grouped_notifications_policy_and_requests(client, app):
    alice, bob, _carol, own = await _busy_alice(app)
    await app[POSTS].like(bob.id, own.id)
    masto = await mastodon_for(client, await token_for(app, alice, "read write"))
    found = await in_thread(masto.grouped_notifications)
    likes = next(g for g in found.notification_groups if g.type == "favourite")
    assert likes.notifications_count == 2 and str(likes.status_id) == str(own.id)
    one = await in_thread(masto.grouped_notification, likes.group_key)
    assert one.notification_groups[0].group_key == likes.group_key
    people = await in_thread(masto.grouped_notification_accounts, likes.group_key)
    assert [a.acct for a in people] == ["bob", "carol"]
    assert await in_thread(masto.unread_grouped_notifications_count) == 5
    await in_thread(masto.dismiss_grouped_notification, likes.group_key)
    assert "favourite" not in [g.type for g in (
        await in_thread(masto.grouped_notifications)).notification_groups]
    # The node filters no notifications: an accepting policy, no requests.
    policy = await in_thread(masto.notifications_policy)
    assert policy.for_not_following == "accept" and policy.summary.pending_requests_count == 0
    assert await in_thread(masto.notification_requests) == []
