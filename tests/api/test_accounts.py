"""Accounts through the client API: credentials, profiles, statuses, followers, and the
relationship actions (follow requests, blocks, timed mutes), driven with Mastodon.py
where it can and with plain requests for the edge cases."""

from __future__ import annotations

import io
import re
from typing import Any

import aiohttp
from conftest import create_user
from PIL import Image

from api.conftest import in_thread, mastodon_for, token_for
from api.mastodon_schema import assert_entity
from xnode.posts.service import Draft, ImageUpload
from xnode.web.state import (
    ACCOUNTS,
    NOTIFICATIONS,
    POSTS,
    PROFILES,
    RELATIONSHIPS,
    TIMELINES,
)

_LINK = re.compile(r'<([^>]+)>; rel="(next|prev)"')


def _png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _form(fields: dict[str, str], **files: bytes) -> aiohttp.FormData:
    """A multipart form with these text fields and files."""
    form = aiohttp.FormData(fields)
    for name, data in files.items():
        form.add_field(name, data, filename=f"{name}.png", content_type="image/png")
    return form


def _links(response: Any) -> dict[str, str]:
    """The Link header's next/prev URLs, as paths with their query."""
    found = {}
    for url, rel in _LINK.findall(response.headers.get("Link", "")):
        found[rel] = url.removeprefix("http://xnode.test")
    return found


async def _post(app, user, text: str, **kwargs: Any) -> int:
    return (await app[POSTS].publish(user.account, Draft(text, **kwargs))).id


# --- credentials -----------------------------------------------------------------------


async def test_verify_and_update_credentials_with_mastodon_py(client, app):
    alice = await create_user(app, "alice")
    masto = await mastodon_for(client, await token_for(app, alice))
    me = await in_thread(masto.account_verify_credentials)
    assert int(me.id) == alice.id and me.username == "alice" and me.acct == "alice"
    assert me.source.privacy == "public" and me.source.follow_requests_count == 0
    assert me.bot is False and me.locked is False

    updated = await in_thread(
        masto.account_update_credentials,
        display_name="Alice A.", note="Hello <world>", locked=True, bot=True,
        fields=[("Site", "https://alice.example"), ("Pronouns", "she/her")],
        avatar=_png((120, 120)), avatar_mime_type="image/png",
    )  # fmt: skip
    assert updated.display_name == "Alice A."
    assert updated.source.note == "Hello <world>"
    assert "Hello &lt;world&gt;" in updated.note
    assert updated.locked is True and updated.bot is True
    assert [(f.name, f.value) for f in updated.source.fields] == [
        ("Site", "https://alice.example"), ("Pronouns", "she/her")]
    assert updated.avatar.startswith("http://xnode.test/media/")
    served = await client.get(updated.avatar.removeprefix("http://xnode.test"))
    assert served.status == 200 and served.content_type.startswith("image/")

    # What was not sent stays; fields can be emptied.
    again = await in_thread(masto.account_update_credentials, locked=False, bot=False, fields=[])
    assert again.display_name == "Alice A." and again.avatar == updated.avatar
    assert again.locked is False and again.bot is False
    # Mastodon.py sends no field for an empty list: the fields stay.
    assert len(again.fields) == 2
    stored = await app[RELATIONSHIPS].live_account(alice.id)
    assert stored.display_name == "Alice A." and stored.actor_type == "Person"


async def test_update_credentials_by_json_and_refusals(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read write")
    # A hash keyed by index: the order sent counts, not the numbers.
    body = await api.patch("/api/v1/accounts/update_credentials", json={
        "fields_attributes": {"7": {"name": "first", "value": "1"},
                              "2": {"name": "second", "value": "2"}},
        "hide_collections": True, "discoverable": False,
        "source": {"privacy": "public", "sensitive": False},
    })  # fmt: skip
    assert [f["name"] for f in body["fields"]] == ["first", "second"]
    assert body["hide_collections"] is True and body["discoverable"] is False
    # A JSON list of fields is read too; an empty hash empties them.
    body = await api.patch("/api/v1/accounts/update_credentials",
                           json={"fields_attributes": [{"name": "only", "value": "one"}]})
    assert [f["name"] for f in body["fields"]] == ["only"]
    body = await api.patch("/api/v1/accounts/update_credentials", json={"fields_attributes": {}})
    assert body["fields"] == []

    # Settings the node does not keep are refused, not dropped.
    for source in ({"privacy": "private"}, {"sensitive": True}, {"language": "de"}):
        await api.patch("/api/v1/accounts/update_credentials", json={"source": source},
                        expect=422)
    await api.patch("/api/v1/accounts/update_credentials", data={"source[privacy]": "unlisted"},
                    expect=422)
    # Bad input changes nothing.
    before = await api.get("/api/v1/accounts/verify_credentials")
    await api.patch("/api/v1/accounts/update_credentials",
                    data={"display_name": "x" * 500}, expect=422)
    await api.patch("/api/v1/accounts/update_credentials",
                    data=_form({"display_name": "New"}, avatar=b"not an image"), expect=422)
    await api.patch("/api/v1/accounts/update_credentials", json={"locked": "perhaps"},
                    expect=422)
    await api.patch("/api/v1/accounts/update_credentials",
                    json={"fields_attributes": ["not an object"]}, expect=422)
    fields = {str(i): {"name": f"n{i}", "value": "v"} for i in range(5)}
    await api.patch("/api/v1/accounts/update_credentials", json={"fields_attributes": fields},
                    expect=422)
    assert await api.get("/api/v1/accounts/verify_credentials") == before

    # A header upload through a multipart form.
    body = await api.patch("/api/v1/accounts/update_credentials",
                           data=_form({"note": "Hi"}, header=_png((300, 100))))
    assert body["header"].startswith("http://xnode.test/media/") and body["source"]["note"] == "Hi"


async def test_credentials_need_the_right_scope(client, app, api_as):
    alice = await create_user(app, "alice")
    profile_only = await api_as(alice, "profile")
    assert (await profile_only.get("/api/v1/accounts/verify_credentials"))["id"] == str(alice.id)
    write_only = await api_as(alice, "write")
    await write_only.get("/api/v1/accounts/verify_credentials", expect=403)
    read_only = await api_as(alice, "read")
    await read_only.patch("/api/v1/accounts/update_credentials", json={"note": "x"}, expect=403)
    app_token = await api_as(None, "read")
    await app_token.get("/api/v1/accounts/verify_credentials", expect=422)
    anonymous = await api_as(None, token=False)
    await anonymous.get("/api/v1/accounts/verify_credentials", expect=401)


# --- accounts ----------------------------------------------------------------------------


async def test_account_lookup_and_unknown_accounts(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    anonymous = await api_as(None, token=False)
    body = await anonymous.get(f"/api/v1/accounts/{alice.id}")
    assert body["username"] == "alice" and body["url"] == "http://xnode.test/@alice"
    assert (await anonymous.get("/api/v1/accounts/lookup", params={"acct": "@Alice"}))[
        "id"] == str(alice.id)
    found = await anonymous.get("/api/v1/accounts/lookup",
                                params={"acct": "alice@xnode.test"})
    assert found["id"] == str(alice.id)
    both = await anonymous.get("/api/v1/accounts", params=[
        ("id[]", str(bob.id)), ("id[]", "12345"), ("id[]", str(alice.id))])
    assert [a["username"] for a in both] == ["bob", "alice"]

    not_found = {"error": "Record not found"}
    for path in ("/api/v1/accounts/12345", "/api/v1/accounts/abc", "/api/v1/accounts/-1",
                 "/api/v1/accounts/99999999999999999999999", "/api/v1/accounts/12345/statuses",
                 "/api/v1/accounts/abc/followers", "/api/v1/accounts/0/following"):
        assert await anonymous.get(path, expect=404) == not_found
    assert await anonymous.get("/api/v1/accounts/lookup", params={"acct": "nobody"},
                               expect=404) == not_found
    await anonymous.get("/api/v1/accounts/lookup", params={"acct": "bob@elsewhere.example"},
                        expect=404)
    await anonymous.get("/api/v1/accounts/lookup", expect=422)

    # Suspended and not yet approved accounts are nobody.
    await app[ACCOUNTS].set_suspended(bob.id, True)
    assert await anonymous.get(f"/api/v1/accounts/{bob.id}", expect=404) == not_found
    await anonymous.get("/api/v1/accounts/lookup", params={"acct": "bob"}, expect=404)
    api = await api_as(alice)
    await api.post(f"/api/v1/accounts/{bob.id}/follow", expect=404)
    assert await api.get("/api/v1/accounts/relationships", params={"id[]": str(bob.id)}) == []


async def test_statuses_of_an_account_with_filters(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    plain = await _post(app, alice, "plain #Topic")
    bobs = await _post(app, bob, "bob speaks")
    reply_to_bob = await _post(app, alice, "@bob answer", in_reply_to_id=bobs)
    thread = await _post(app, alice, "more of mine", in_reply_to_id=plain)
    media = await _post(app, alice, "a picture", images=[ImageUpload(_png(), "blue")])
    sensitive = await _post(app, alice, "careful", sensitive=True, summary="cw")
    await app[POSTS].boost(alice.account, bobs)
    await app[POSTS].pin(alice.id, media)
    direct = await _post(app, alice, "@bob psst", visibility="direct")

    masto = await mastodon_for(client, await token_for(app, bob))

    async def ids(**kwargs: Any) -> list[int]:
        found = await in_thread(masto.account_statuses, alice.id, **kwargs)
        return [int(s.reblog.id if s.reblog else s.id) for s in found]

    everything = await ids()
    assert everything[0] == bobs  # the boost is the newest
    assert set(everything) == {plain, reply_to_bob, thread, media, sensitive, bobs}
    assert direct not in everything
    assert set(await ids(exclude_replies=True)) == {plain, thread, media, sensitive, bobs}
    assert bobs not in await ids(exclude_reblogs=True)
    assert await ids(only_media=True) == [media]
    assert await ids(pinned=True) == [media]
    assert await ids(tagged="topic") == [plain]
    api = await api_as(bob)
    found = await api.get(f"/api/v1/accounts/{alice.id}/statuses",
                          params={"exclude_sensitive": "true", "tagged": "#"})
    assert found == []
    found = await api.get(f"/api/v1/accounts/{alice.id}/statuses",
                          params={"exclude_sensitive": "true"})
    assert sensitive not in [int(s["id"]) for s in found]

    # Paging by the Link header, two at a time, visits each once.
    seen: list[str] = []
    path: str | None = f"/api/v1/accounts/{alice.id}/statuses?limit=2"
    while path:
        page = await api.get(path)
        seen += [s["id"] for s in page]
        path = _links(api.last).get("next") if page else None
    assert len(seen) == len(set(seen)) == 6

    # Bad parameters are 422, a huge limit is lowered to the maximum.
    for params in ({"limit": "many"}, {"max_id": "x"}, {"only_media": "maybe"}):
        await api.get(f"/api/v1/accounts/{alice.id}/statuses", params=params, expect=422)
    await api.get(f"/api/v1/accounts/{alice.id}/statuses", params={"limit": "99999999"})


async def test_followers_only_statuses_stay_with_followers(client, app, api_as):
    alice = await create_user(app, "alice")
    follower = await create_user(app, "follower")
    stranger = await create_user(app, "stranger")
    public = await _post(app, alice, "for all")
    private = await _post(app, alice, "for followers", visibility="followers")
    await _post(app, alice, "@follower direct", visibility="direct")
    await app[RELATIONSHIPS].follow(follower.id, alice.id)

    async def seen_by(user) -> set[int]:
        api = await api_as(user, "read") if user else await api_as(None, token=False)
        return {int(s["id"]) for s in await api.get(f"/api/v1/accounts/{alice.id}/statuses")}

    assert await seen_by(follower) == {public, private}
    assert await seen_by(stranger) == {public}
    assert await seen_by(None) == {public}
    assert await seen_by(alice) == {public, private}  # direct posts are not statuses here
    # A stranger is not let in by asking for the pinned list or a page in the middle.
    api = await api_as(stranger, "read")
    page = await api.get(f"/api/v1/accounts/{alice.id}/statuses",
                         params={"max_id": str(private + 1)})
    assert [int(s["id"]) for s in page] == [public]


# --- relationships -------------------------------------------------------------------


async def test_follow_a_locked_account_and_authorize_the_request(client, app):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    carol = await create_user(app, "carol")
    await app[PROFILES].update_profile(bob.id, "Bob", "", [], locked=True, discoverable=True)
    alice_masto = await mastodon_for(client, await token_for(app, alice))
    bob_masto = await mastodon_for(client, await token_for(app, bob))
    carol_masto = await mastodon_for(client, await token_for(app, carol))

    rel = await in_thread(alice_masto.account_follow, bob.id, reblogs=False, notify=True)
    assert rel.requested is True and rel.following is False
    assert rel.showing_reblogs is True and rel.notifying is False  # what the node does
    await in_thread(carol_masto.account_follow, bob.id)
    assert (await in_thread(bob_masto.account_verify_credentials)).source[
        "follow_requests_count"] == 2
    waiting = await in_thread(bob_masto.follow_requests)
    assert [a.username for a in waiting] == ["carol", "alice"]
    [rel] = await in_thread(bob_masto.account_relationships, alice.id)
    assert rel.requested_by is True and rel.followed_by is False

    rel = await in_thread(bob_masto.follow_request_authorize, alice.id)
    assert rel.followed_by is True and rel.requested_by is False
    rel = await in_thread(bob_masto.follow_request_reject, carol.id)
    assert rel.followed_by is False and rel.requested_by is False
    [rel] = await in_thread(alice_masto.account_relationships, bob.id)
    assert rel.following is True and rel.requested is False
    assert [a.username for a in await in_thread(alice_masto.account_following, alice.id)] == [
        "bob"]
    assert await in_thread(bob_masto.follow_requests) == []

    api = await mastodon_for(client, await token_for(app, bob))
    from mastodon import MastodonNotFoundError

    try:
        await in_thread(api.follow_request_authorize, carol.id)
    except MastodonNotFoundError:
        pass
    else:
        raise AssertionError("a request that is gone cannot be authorized")

    rel = await in_thread(bob_masto.account_remove_from_followers, alice.id)
    assert rel.followed_by is False
    rel = await in_thread(alice_masto.account_follow, bob.id)
    assert rel.requested is True
    rel = await in_thread(alice_masto.account_unfollow, bob.id)
    assert rel.requested is False and rel.following is False


async def test_block_and_mute_with_a_duration(client, app, api_as, clock):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    bobs = await _post(app, bob, "hello from bob")
    masto = await mastodon_for(client, await token_for(app, alice))

    async def home() -> list[int]:
        return [v.post.id for v in (await app[TIMELINES].home(alice.id)).items]

    async def unread() -> int:
        return await app[NOTIFICATIONS].unread_count(alice.id)

    rel = await in_thread(masto.account_mute, bob.id, duration=60)
    assert rel.muting is True and rel.muting_notifications is True
    muted = await in_thread(masto.mutes)
    assert [a.username for a in muted] == ["bob"] and muted[0].mute_expires_at is not None
    assert bobs not in await home()
    before = await unread()
    await _post(app, bob, "@alice are you there?")
    assert await unread() == before  # a mute hides notifications too

    clock.advance(61)
    [rel] = await in_thread(masto.account_relationships, bob.id)
    assert rel.muting is False  # over, even before the purge
    assert await in_thread(masto.mutes) == []
    assert await app[RELATIONSHIPS].purge_expired_mutes() == 1
    assert bobs in await home()
    await _post(app, bob, "@alice hello again")
    assert await unread() == before + 1
    assert await app[RELATIONSHIPS].purge_expired_mutes() == 0

    # Without a duration a mute lasts; muting again sets a new end; unmute ends it.
    await in_thread(masto.account_mute, bob.id)
    clock.advance(10**7)
    [rel] = await in_thread(masto.account_relationships, bob.id)
    assert rel.muting is True and (await in_thread(masto.mutes))[0].mute_expires_at is None
    await in_thread(masto.account_mute, bob.id, duration=5)
    assert (await in_thread(masto.mutes))[0].mute_expires_at is not None
    rel = await in_thread(masto.account_unmute, bob.id)
    assert rel.muting is False

    rel = await in_thread(masto.account_block, bob.id)
    assert rel.blocking is True and rel.following is False and rel.followed_by is False
    assert [a.username for a in await in_thread(masto.blocks)] == ["bob"]
    bob_api = await api_as(bob, "read")
    [rel_of_bob] = await bob_api.get("/api/v1/accounts/relationships",
                                     params={"id[]": str(alice.id)})
    assert rel_of_bob["blocked_by"] is True
    bob_writes = await api_as(bob, "write")
    await bob_writes.post(f"/api/v1/accounts/{alice.id}/follow", expect=403)
    rel = await in_thread(masto.account_unblock, bob.id)
    assert rel.blocking is False and await in_thread(masto.blocks) == []

    api = await api_as(alice)
    for duration in ("-5", "soon", str(10**12)):
        await api.post(f"/api/v1/accounts/{bob.id}/mute", json={"duration": duration},
                       expect=422)
    await api.post(f"/api/v1/accounts/{alice.id}/mute", expect=409)  # not oneself


async def test_relationships_of_several_accounts(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    carol = await create_user(app, "carol")
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    api = await api_as(alice, "read")
    found = await api.get("/api/v1/accounts/relationships", params=[
        ("id[]", str(bob.id)), ("id[]", str(carol.id)), ("id[]", "424242"),
        ("id[]", str(bob.id))])  # fmt: skip
    assert [(r["id"], r["following"], r["followed_by"]) for r in found] == [
        (str(bob.id), True, False), (str(carol.id), False, True)]
    for item in found:
        assert_entity("Relationship", item)
    # Mastodon.py's own call, one id and several.
    masto = await mastodon_for(client, await token_for(app, alice))
    found = await in_thread(masto.account_relationships, [bob.id, carol.id])
    assert [int(r.id) for r in found] == [bob.id, carol.id]
    assert await api.get("/api/v1/accounts/relationships") == []
    await api.get("/api/v1/accounts/relationships", params={"id[]": "bob"}, expect=422)
    await api.get("/api/v1/accounts/relationships",
                  params=[("id[]", str(i)) for i in range(1, 200)], expect=422)


async def test_followers_pages_both_ways_and_hidden_networks(client, app, api_as):
    alice = await create_user(app, "alice")
    followers = [await create_user(app, f"fan{i}") for i in range(5)]
    for fan in followers:
        await app[RELATIONSHIPS].follow(fan.id, alice.id)
    masto = await mastodon_for(client, await token_for(app, alice))
    first = await in_thread(masto.account_followers, alice.id, limit=2)
    assert [a.username for a in first] == ["fan4", "fan3"]
    second = await in_thread(masto.fetch_next, first)
    assert [a.username for a in second] == ["fan2", "fan1"]
    third = await in_thread(masto.fetch_next, second)
    assert [a.username for a in third] == ["fan0"]
    back = await in_thread(masto.fetch_previous, third)
    assert [a.username for a in back] == ["fan2", "fan1"]

    api = await api_as(None, token=False)
    page = await api.get(f"/api/v1/accounts/{alice.id}/followers", params={"limit": "2"})
    links = _links(api.last)
    assert set(links) == {"next", "prev"} and "limit=2" in links["next"]
    assert await api.get(links["prev"]) == []  # nothing newer than the newest
    older = await api.get(links["next"])
    assert [a["username"] for a in page + older] == ["fan4", "fan3", "fan2", "fan1"]
    assert [a["username"] for a in await api.get(_links(api.last)["prev"])] == ["fan4", "fan3"]
    everyone = await api.get(f"/api/v1/accounts/{alice.id}/followers",
                             params={"limit": "1000"})
    assert len(everyone) == 5
    following = await api.get(f"/api/v1/accounts/{followers[0].id}/following")
    assert [a["username"] for a in following] == ["alice"]
    assert following[0]["followers_count"] == 5

    await app[PROFILES].update_profile(alice.id, "", "", [], locked=False, discoverable=True,
                                       hide_network=True)
    assert await api.get(f"/api/v1/accounts/{alice.id}/followers") == []
    fan_api = await api_as(followers[0], "read")
    assert await fan_api.get(f"/api/v1/accounts/{alice.id}/followers") == []
    own = await api_as(alice, "read")
    assert len(await own.get(f"/api/v1/accounts/{alice.id}/followers")) == 5


async def test_familiar_followers_and_empty_lists(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    carol = await create_user(app, "carol")
    dave = await create_user(app, "dave")
    rels = app[RELATIONSHIPS]
    await rels.follow(alice.id, bob.id)
    await rels.follow(alice.id, dave.id)
    await rels.follow(bob.id, carol.id)
    await rels.follow(dave.id, carol.id)
    await app[PROFILES].update_profile(dave.id, "", "", [], locked=False, discoverable=True,
                                       hide_network=True)
    api = await api_as(alice, "read")
    found = await api.get("/api/v1/accounts/familiar_followers",
                          params=[("id[]", str(carol.id)), ("id[]", str(bob.id))])
    # Dave hides whom he follows, so he is not shown as following carol.
    assert [(f["id"], [a["username"] for a in f["accounts"]]) for f in found] == [
        (str(carol.id), ["bob"]), (str(bob.id), [])]

    for path in ("/api/v1/featured_tags", "/api/v1/endorsements", "/api/v1/domain_blocks",
                 f"/api/v1/accounts/{bob.id}/featured_tags", f"/api/v1/accounts/{bob.id}/lists",
                 "/api/v1/blocks", "/api/v1/mutes", "/api/v1/follow_requests"):
        assert await api.get(path) == []
    await api.get("/api/v1/accounts/777/featured_tags", expect=404)


async def test_scopes_of_the_relationship_actions(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    read_only = await api_as(alice, "read")
    for action in ("follow", "unfollow", "block", "mute", "remove_from_followers"):
        await read_only.post(f"/api/v1/accounts/{bob.id}/{action}", expect=403)
    await read_only.post(f"/api/v1/follow_requests/{bob.id}/authorize", expect=403)
    follows_only = await api_as(alice, "write:follows")
    assert (await follows_only.post(f"/api/v1/accounts/{bob.id}/follow"))["following"]
    await follows_only.post(f"/api/v1/accounts/{bob.id}/block", expect=403)
    await follows_only.get("/api/v1/blocks", expect=403)
    legacy = await api_as(alice, "follow")  # Mastodon's old bundle of relationship scopes
    assert (await legacy.post(f"/api/v1/accounts/{bob.id}/mute"))["muting"]
    assert await legacy.get("/api/v1/mutes")
    anonymous = await api_as(None, token=False)
    await anonymous.post(f"/api/v1/accounts/{bob.id}/follow", expect=401)
    await anonymous.get("/api/v1/follow_requests", expect=401)
    app_token = await api_as(None, "read write follow")
    await app_token.post(f"/api/v1/accounts/{bob.id}/follow", expect=422)
    # Bad ids on actions: not found, never a crash.
    api = await api_as(alice)
    for path in ("/api/v1/accounts/abc/follow", "/api/v1/accounts/123456/block",
                 "/api/v1/follow_requests/xyz/reject", "/api/v1/follow_requests/5/authorize"):
        assert await api.post(path, expect=404) == {"error": "Record not found"}
    await api.post(f"/api/v1/accounts/{bob.id}/follow", json={"reblogs": "sometimes"},
                   expect=422)
    # A trailing slash works as on Mastodon.
    assert (await api.get(f"/api/v1/accounts/{bob.id}/"))["id"] == str(bob.id)


async def test_a_bot_account_federates_as_a_service_actor(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read write")
    actor_headers = {"Accept": "application/activity+json"}
    assert (await (await client.get("/users/alice", headers=actor_headers)).json())[
        "type"] == "Person"  # fmt: skip
    updated = await api.patch("/api/v1/accounts/update_credentials", json={"bot": True})
    assert updated["bot"] is True
    actor = await (await client.get("/users/alice", headers=actor_headers)).json()
    assert actor["type"] == "Service"
