"""Statuses through the client API: Mastodon.py for the paths apps take, the raw API
for the edges (idempotency, other people's media, privacy, scopes, malformed input)."""

from __future__ import annotations

import io

import pytest
from aiohttp import FormData
from conftest import create_user
from PIL import Image

from api.conftest import in_thread, mastodon_for, token_for
from api.mastodon_schema import assert_entity
from xnode.posts.service import Draft
from xnode.web.state import POSTS, RELATIONSHIPS


def upload(data: bytes | None = None, **fields: str) -> FormData:
    """A multipart upload of an image (a PNG unless ``data`` says otherwise)."""
    form = FormData()
    form.add_field("file", io.BytesIO(png() if data is None else data), filename="image.png",
                   content_type="image/png")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def png(size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small PNG image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def people(app):
    """alice and bob (bob follows alice), carol (follows nobody)."""
    users = [await create_user(app, name) for name in ("alice", "bob", "carol")]
    await app[RELATIONSHIPS].follow(users[1].id, users[0].id)
    return users


# --- Mastodon.py: the paths apps take -------------------------------------------------


async def test_post_with_media_reply_favourite_reblog_context(client, app, people):
    alice, bob, _ = people
    masto_a = await mastodon_for(client, await token_for(app, alice))
    masto_b = await mastodon_for(client, await token_for(app, bob))
    media = await in_thread(masto_a.media_post, io.BytesIO(png()), mime_type="image/png",
                            description="A red square", focus=(0.5, -0.25))
    assert media.type == "image" and media.url.startswith("http://xnode.test/media/")
    assert media.description == "A red square"
    assert media.meta.focus.x == 0.5 and media.meta.focus.y == -0.25
    status = await in_thread(masto_a.status_post, "Hello #fediverse", media_ids=[media],
                             spoiler_text="colours", sensitive=True, language="en")
    assert "Hello" in status.content and status.visibility == "public"
    assert status.spoiler_text == "colours" and status.sensitive is True
    assert status.language == "en"
    assert [m.id for m in status.media_attachments] == [media.id]
    assert status.media_attachments[0].description == "A red square"
    assert [t.name for t in status.tags] == ["fediverse"]

    reply = await in_thread(masto_b.status_post, "@alice nice", in_reply_to_id=status.id)
    assert reply.in_reply_to_id == status.id
    assert str(reply.in_reply_to_account_id) == str(alice.account.id)

    liked = await in_thread(masto_b.status_favourite, status.id)
    assert liked.favourited is True and liked.favourites_count == 1
    boost = await in_thread(masto_b.status_reblog, status.id)
    assert boost.reblog.id == status.id and boost.account.acct == "bob"
    assert boost.reblog.reblogged is True and boost.id != status.id
    assert [a.acct for a in await in_thread(masto_a.status_favourited_by, status.id)] == ["bob"]
    assert [a.acct for a in await in_thread(masto_a.status_reblogged_by, status.id)] == ["bob"]

    context = await in_thread(masto_a.status_context, status.id)
    assert context.ancestors == [] and [s.id for s in context.descendants] == [reply.id]
    context = await in_thread(masto_a.status_context, reply.id)
    assert [s.id for s in context.ancestors] == [status.id] and context.descendants == []

    shown = await in_thread(masto_a.status, status.id)
    assert shown.replies_count == 1 and shown.reblogs_count == 1
    undone = await in_thread(masto_b.status_unreblog, status.id)
    assert undone.id == status.id and undone.reblogged is False
    undone = await in_thread(masto_b.status_unfavourite, status.id)
    assert undone.favourited is False and undone.favourites_count == 0
    both = await in_thread(masto_a.statuses, [status.id, reply.id])
    assert [s.id for s in both] == [status.id, reply.id]


async def test_media_only_status_and_media_update(client, app, people):
    alice = people[0]
    masto = await mastodon_for(client, await token_for(app, alice))
    media = await in_thread(masto.media_post, io.BytesIO(png()), mime_type="image/png")
    assert media.description is None and media.meta.get("focus") is None
    media = await in_thread(masto.media_update, media.id, description="Later alt text",
                            focus=(-1, 1))
    assert media.description == "Later alt text" and media.meta.focus.x == -1
    status = await in_thread(masto.status_post, "", media_ids=[media.id])
    assert status.content == "" and len(status.media_attachments) == 1
    # Attached media can still be described (apps fix alt text after posting).
    await in_thread(masto.media_update, media.id, description="Fixed alt text")
    shown = await in_thread(masto.status, status.id)
    assert shown.media_attachments[0].description == "Fixed alt text"


async def test_edit_history_source_and_delete_for_redraft(client, app, people, api_as):
    alice = people[0]
    masto = await mastodon_for(client, await token_for(app, alice))
    status = await in_thread(masto.status_post, "first words")
    assert (await in_thread(masto.status_history, status.id))[0].content == "<p>first words</p>"
    media = await in_thread(masto.media_post, io.BytesIO(png()), mime_type="image/png")
    # Mastodon.py sends media_ids from media_attributes (with both, it fails itself).
    edited = await in_thread(masto.status_update, status.id, "second words",
                             spoiler_text="cw",
                             media_attributes=[{"id": media.id, "description": "alt",
                                                "focus": "0.5,0.5"}])
    assert "second words" in edited.content and edited.edited_at is not None
    assert edited.spoiler_text == "cw" and len(edited.media_attachments) == 1
    shown = (await in_thread(masto.status, status.id)).media_attachments[0]
    assert shown.description == "alt" and shown.meta.focus.x == 0.5
    history = await in_thread(masto.status_history, status.id)
    assert ["first" in h.content for h in history] == [True, False]
    assert history[-1].spoiler_text == "cw"
    source = await in_thread(masto.status_source, status.id)
    assert source.text == "second words" and source.spoiler_text == "cw"
    # Removing the image by sending the whole new set (an empty list: JSON only, as a
    # form cannot say it).
    api = await api_as(alice)
    edited = await api.put(f"/api/v1/statuses/{status.id}",
                           json={"status": "third words", "media_ids": []})
    assert edited["media_attachments"] == [] and edited["spoiler_text"] == "cw"
    deleted = await in_thread(masto.status_delete, status.id)
    assert deleted.id == status.id and deleted.text == "third words"
    from mastodon.errors import MastodonNotFoundError

    with pytest.raises(MastodonNotFoundError):
        await in_thread(masto.status, status.id)


async def test_pin_own_status_only(client, app, people, api_as):
    alice, bob, _ = people
    api = await api_as(alice)
    mine = await api.post("/api/v1/statuses", json={"status": "pin me"})
    pinned = await api.post(f"/api/v1/statuses/{mine['id']}/pin")
    assert pinned["pinned"] is True
    assert (await api.post(f"/api/v1/statuses/{mine['id']}/unpin"))["pinned"] is False
    theirs = await app[POSTS].publish(bob.account, Draft("bob's"))
    body = await api.post(f"/api/v1/statuses/{theirs.id}/pin", expect=422)
    assert body["error"]
    marked = await api.post(f"/api/v1/statuses/{theirs.id}/bookmark")
    assert marked["bookmarked"] is True
    assert (await api.post(f"/api/v1/statuses/{theirs.id}/unbookmark"))["bookmarked"] is False


# --- the edges ------------------------------------------------------------------------


async def test_idempotency_key_posts_once(client, app, people, api_as, clock):
    alice = people[0]
    api = await api_as(alice)
    headers = {"Idempotency-Key": "draft-123"}
    first = await api.post("/api/v1/statuses", json={"status": "only once"}, headers=headers)
    again = await api.post("/api/v1/statuses", json={"status": "only once"}, headers=headers)
    assert first["id"] == again["id"]
    other = await api.post("/api/v1/statuses", json={"status": "only once"},
                           headers={"Idempotency-Key": "draft-456"})
    assert other["id"] != first["id"]
    # Another person's same key is their own.
    bob_api = await api_as(people[1])
    bobs = await bob_api.post("/api/v1/statuses", json={"status": "b"}, headers=headers)
    assert bobs["id"] != first["id"]
    # A day later the key is free again.
    clock.advance(24 * 3600 + 1)
    later = await api.post("/api/v1/statuses", json={"status": "only once"}, headers=headers)
    assert later["id"] != first["id"]
    statuses = await api.get(f"/api/v1/accounts/{alice.account.id}/statuses", expect=None)
    if api.last.status == 200:  # the accounts endpoints are another helper's
        assert len(statuses) == 3


async def test_media_ids_must_be_own_unattached_uploads(client, app, people, api_as):
    alice, bob, _ = people
    api = await api_as(alice)
    bob_api = await api_as(bob)
    bobs = await bob_api.post("/api/v2/media", data=upload())
    body = await api.post("/api/v1/statuses", json={"status": "x", "media_ids": [bobs["id"]]},
                          expect=422)
    assert "media" in body["error"].lower()
    await api.get(f"/api/v1/media/{bobs['id']}", expect=404)
    await api.put(f"/api/v1/media/{bobs['id']}", json={"description": "mine now"}, expect=404)
    mine = await api.post("/api/v1/media", data=upload())
    await api.post("/api/v1/statuses", json={"status": "x", "media_ids": [mine["id"]]})
    # Already attached: not an upload waiting any more.
    await api.post("/api/v1/statuses", json={"status": "y", "media_ids": [mine["id"]]},
                   expect=422)
    five = [(await api.post("/api/v2/media", data=upload()))["id"] for _ in range(5)]
    await api.post("/api/v1/statuses", json={"status": "z", "media_ids": five}, expect=422)
    await api.post("/api/v1/statuses", json={"status": "", "media_ids": []}, expect=422)
    await api.post("/api/v1/statuses", json={"status": "a", "media_ids": [five[0], five[0]]},
                   expect=422)


async def test_private_and_direct_statuses_stay_hidden(client, app, people, api_as):
    alice, bob, carol = people
    posts = app[POSTS]
    public = await posts.publish(alice.account, Draft("public root"))
    followers = await posts.publish(
        alice.account, Draft("for followers", visibility="followers", in_reply_to_id=public.id)
    )
    direct = await posts.publish(alice.account, Draft("@bob secret", visibility="direct"))
    anonymous = await api_as(None, token=False)
    carol_api = await api_as(carol)
    bob_api = await api_as(bob)
    for caller in (anonymous, carol_api):
        for hidden in (followers, direct):
            body = await caller.get(f"/api/v1/statuses/{hidden.id}", expect=404)
            assert body == {"error": "Record not found"}
            await caller.get(f"/api/v1/statuses/{hidden.id}/context", expect=404)
            await caller.get(f"/api/v1/statuses/{hidden.id}/history", expect=404)
            await caller.get(f"/api/v1/statuses/{hidden.id}/favourited_by", expect=404)
        context = await caller.get(f"/api/v1/statuses/{public.id}/context")
        assert context["descendants"] == []
        many = await caller.get(
            f"/api/v1/statuses?id[]={public.id}&id[]={followers.id}&id[]={direct.id}"
        )
        assert [s["id"] for s in many] == [str(public.id)]
        for path in ("/api/v1/timelines/public", "/api/v1/timelines/public?local=true"):
            shown = [s["id"] for s in await caller.get(path)]
            assert shown == [str(public.id)], path
    await carol_api.post(f"/api/v1/statuses/{followers.id}/favourite", expect=404)
    await carol_api.post(f"/api/v1/statuses/{direct.id}/reblog", expect=404)
    # bob follows alice and is addressed by the direct post.
    assert (await bob_api.get(f"/api/v1/statuses/{followers.id}"))["visibility"] == "private"
    assert (await bob_api.get(f"/api/v1/statuses/{direct.id}"))["visibility"] == "direct"
    context = await bob_api.get(f"/api/v1/statuses/{public.id}/context")
    assert [s["id"] for s in context["descendants"]] == [str(followers.id)]
    # Followers-only posts cannot be boosted (Mastodon: 403).
    await bob_api.post(f"/api/v1/statuses/{followers.id}/reblog", expect=403)
    # Someone else's status cannot be deleted or edited.
    await bob_api.delete(f"/api/v1/statuses/{public.id}", expect=404)
    await bob_api.put(f"/api/v1/statuses/{public.id}", json={"status": "mine"}, expect=403)


async def test_visibility_mapping_and_direct_posts(client, app, people, api_as):
    alice, _, carol = people
    api = await api_as(alice)
    private = await api.post("/api/v1/statuses", json={"status": "fo", "visibility": "private"})
    assert private["visibility"] == "private"
    unlisted = await api.post("/api/v1/statuses", data={"status": "u", "visibility": "unlisted"})
    assert unlisted["visibility"] == "unlisted"
    direct = await api.post("/api/v1/statuses", json={"status": "@bob hi", "visibility": "direct"})
    assert direct["visibility"] == "direct"
    assert [m["acct"] for m in direct["mentions"]] == ["bob"]
    await (await api_as(carol)).get(f"/api/v1/statuses/{direct['id']}", expect=404)
    body = await api.post("/api/v1/statuses", json={"status": "x", "visibility": "secret"},
                          expect=422)
    assert "visibility" in body["error"].lower()


async def test_scopes_and_tokens(client, app, people, api_as):
    alice = people[0]
    reader = await api_as(alice, "read")
    await reader.post("/api/v1/statuses", json={"status": "no"}, expect=403)
    app_only = await api_as(None, "read write")
    body = await app_only.post("/api/v1/statuses", json={"status": "no"}, expect=422)
    assert body == {"error": "This method requires an authenticated user"}
    anonymous = await api_as(None, token=False)
    await anonymous.post("/api/v1/statuses", json={"status": "no"}, expect=401)
    granular = await api_as(alice, "write:statuses read:statuses")
    posted = await granular.post("/api/v1/statuses", json={"status": "yes"})
    await granular.post(f"/api/v1/statuses/{posted['id']}/favourite", expect=403)
    await granular.post("/api/v2/media", data=upload(), expect=403)


async def test_malformed_input_is_a_clear_4xx(client, app, people, api_as):
    alice = people[0]
    api = await api_as(alice)
    post = await api.post("/api/v1/statuses", json={"status": "target"})
    bad_bodies = [
        {"status": "x", "sensitive": "maybe"},
        {"status": "x", "media_ids": "x"},
        {"status": "x", "media_ids": [{"id": 1}]},
        {"status": "x", "in_reply_to_id": "abc"},
        {"status": ["a", "b"]},
        {"status": {"text": "x"}},
        {"status": "x" * 5001},
        {"status": ""},
        {"status": "   "},
        {"status": "x", "poll": {"options": ["a", "b"], "expires_in": 300}},
        {"status": "x", "scheduled_at": "2030-01-01T00:00:00Z"},
    ]
    for body in bad_bodies:
        answer = await api.post("/api/v1/statuses", json=body, expect=None)
        assert 400 <= api.last.status < 500, (body, answer)
        assert "error" in answer
    await api.post("/api/v1/statuses", json={"status": "x", "in_reply_to_id": "999"},
                   expect=404)
    await api.post("/api/v1/statuses", data=b"[1, 2]",
                   headers={"Content-Type": "application/json"}, expect=422)
    for path in ("/api/v1/statuses/abc", "/api/v1/statuses/99999999999999999999999",
                 "/api/v1/statuses/-1", "/api/v1/statuses/0"):
        await api.get(path, expect=404)
    await api.get(f"/api/v1/statuses/{post['id']}/favourited_by?limit=100000")
    await api.get(f"/api/v1/statuses/{post['id']}/favourited_by?limit=abc", expect=422)
    await api.get(f"/api/v1/statuses/{post['id']}/favourited_by?max_id=x", expect=422)
    await api.get("/api/v1/statuses?id[]=x", expect=422)
    await api.put(f"/api/v1/statuses/{post['id']}", json={"sensitive": 3.5}, expect=422)
    await api.put(f"/api/v1/statuses/{post['id']}", json={"media_ids": ["1", "y"]}, expect=422)
    await api.put(f"/api/v1/statuses/{post['id']}", json={"status": ""}, expect=422)
    # The language is kept when well formed, ignored (as Mastodon does) when not.
    kept = await api.post("/api/v1/statuses", json={"status": "x", "language": "pt-BR"})
    assert kept["language"] == "pt-BR"
    dropped = await api.post("/api/v1/statuses", json={"status": "y", "language": "<b>"})
    assert dropped["language"] is None


async def test_trailing_slash_and_anonymous_reads(client, app, people, api_as):
    alice = people[0]
    post = await app[POSTS].publish(alice.account, Draft("hello world"))
    anonymous = await api_as(None, token=False)
    shown = await anonymous.get(f"/api/v1/statuses/{post.id}/")
    assert shown["favourited"] is False and shown["account"]["acct"] == "alice"
    history = await anonymous.get(f"/api/v1/statuses/{post.id}/history")
    assert len(history) == 1 and history[0]["content"] == "<p>hello world</p>"
    await anonymous.get(f"/api/v1/statuses/{post.id}/source", expect=401)


async def test_articles_lead_with_their_title(client, app, people, api_as):
    alice = people[0]
    article = await app[POSTS].publish(
        alice.account, Draft("Long text", kind="article", title="A <title>")
    )
    shown = await (await api_as(None, token=False)).get(f"/api/v1/statuses/{article.id}")
    assert shown["content"].startswith("<p><strong>A &lt;title&gt;</strong></p>")


async def test_idempotency_key_holds_under_concurrent_retries(client, app, people, api_as):
    import asyncio

    api = await api_as(people[0])
    headers = {"Idempotency-Key": "same-draft"}
    answers = await asyncio.gather(*(
        api.post("/api/v1/statuses", json={"status": "racing"}, headers=headers)
        for _ in range(5)
    ))  # fmt: skip
    assert len({a["id"] for a in answers}) == 1
    rows = await app[POSTS].db.fetchvalue("SELECT COUNT(*) FROM posts WHERE source = 'racing'")
    assert rows == 1


async def test_entities_match_mastodons_documentation(client, app, people, api_as):
    alice, bob, _ = people
    a, b = await api_as(alice), await api_as(bob)
    media = await a.post("/api/v2/media", data=upload(description="alt", focus="0,0"))
    assert_entity("MediaAttachment", media)
    status = await a.post("/api/v1/statuses", json={
        "status": "Hello #world", "media_ids": [media["id"]], "spoiler_text": "cw",
        "language": "en",
    })  # fmt: skip
    assert_entity("Status", status)
    reply = await b.post("/api/v1/statuses", json={"status": "hi", "in_reply_to_id": status["id"]})
    assert_entity("Status", reply)
    assert_entity("Context", await a.get(f"/api/v1/statuses/{status['id']}/context"))
    assert_entity("Status", await b.post(f"/api/v1/statuses/{status['id']}/reblog"))
    assert_entity("Status", await b.post(f"/api/v1/statuses/{status['id']}/favourite"))
    for who in ("favourited_by", "reblogged_by"):
        for account in await a.get(f"/api/v1/statuses/{status['id']}/{who}"):
            assert_entity("Account", account)
    assert_entity("Status", await a.put(f"/api/v1/statuses/{status['id']}",
                                        json={"status": "Hello again"}))
    for version in await a.get(f"/api/v1/statuses/{status['id']}/history"):
        assert_entity("StatusEdit", version)
    assert_entity("StatusSource", await a.get(f"/api/v1/statuses/{status['id']}/source"))
    for path in ("/api/v1/timelines/home", "/api/v1/favourites", "/api/v1/timelines/public"):
        for item in await b.get(path):
            assert_entity("Status", item)
    deleted = await a.delete(f"/api/v1/statuses/{status['id']}")
    assert_entity("Status", deleted)
    assert deleted["text"] == "Hello again"


async def test_a_boosts_own_id(client, app, people, api_as):
    alice, bob, _ = people
    original = await app[POSTS].publish(alice.account, Draft("boost me"))
    api = await api_as(bob)
    boost = await api.post(f"/api/v1/statuses/{original.id}/reblog")
    shown = await api.get(f"/api/v1/statuses/{boost['id']}")
    assert shown["id"] == boost["id"] and shown["reblog"]["id"] == str(original.id)
    # Acting on the boost's id acts on the original, as Mastodon does.
    liked = await api.post(f"/api/v1/statuses/{boost['id']}/favourite")
    assert liked["id"] == str(original.id) and liked["favourited"] is True
    again = await api.post(f"/api/v1/statuses/{boost['id']}/reblog")
    assert again["id"] == boost["id"]
    # Deleting one's boost by its id undoes it; someone else's is not theirs to delete.
    await (await api_as(alice)).delete(f"/api/v1/statuses/{boost['id']}", expect=404)
    gone = await api.delete(f"/api/v1/statuses/{boost['id']}")
    assert gone["id"] == boost["id"]
    await api.get(f"/api/v1/statuses/{boost['id']}", expect=404)
    assert (await api.get(f"/api/v1/statuses/{original.id}"))["reblogged"] is False


async def test_delete_and_redraft_reuses_the_images(client, app, people, api_as):
    api = await api_as(people[0])
    media = await api.post("/api/v2/media", data=upload(description="kept"))
    status = await api.post("/api/v1/statuses", json={"status": "v1", "media_ids": [media["id"]]})
    deleted = await api.delete(f"/api/v1/statuses/{status['id']}")
    assert deleted["text"] == "v1" and deleted["media_attachments"][0]["id"] == media["id"]
    assert (await api.get(f"/api/v1/media/{media['id']}"))["description"] == "kept"
    redraft = await api.post("/api/v1/statuses", json={
        "status": deleted["text"], "media_ids": [m["id"] for m in deleted["media_attachments"]],
    })  # fmt: skip
    assert [m["id"] for m in redraft["media_attachments"]] == [media["id"]]
    # Asked to, the images go with the status.
    await api.delete(f"/api/v1/statuses/{redraft['id']}?delete_media=true")
    await api.get(f"/api/v1/media/{media['id']}", expect=404)
    await api.post("/api/v1/statuses", json={"status": "v3", "media_ids": [media["id"]]},
                   expect=422)
