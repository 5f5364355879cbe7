"""Media uploads through the client API: processed at once, owned by the uploader."""

from __future__ import annotations

from conftest import create_user

from api.test_statuses import upload


async def test_upload_show_and_update(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice)
    media = await api.post("/api/v2/media", data=upload(description="alt", focus="0.1,-0.9"))
    assert api.last.status == 200  # processed synchronously: never 202
    assert media["type"] == "image" and media["url"] and media["preview_url"]
    assert media["description"] == "alt"
    assert media["meta"]["focus"] == {"x": 0.1, "y": -0.9}
    assert media["meta"]["original"]["width"] == 32
    shown = await api.get(f"/api/v1/media/{media['id']}")
    assert shown == media
    changed = await api.put(f"/api/v1/media/{media['id']}", json={"description": "better"})
    assert changed["description"] == "better" and changed["meta"]["focus"]["x"] == 0.1
    changed = await api.put(f"/api/v1/media/{media['id']}", data={"focus": ""})
    assert "focus" not in changed["meta"] and changed["description"] == "better"
    old = await api.post("/api/v1/media", data=upload())
    assert old["description"] is None
    # The file is served where the entity says.
    response = await client.get(media["url"].removeprefix("http://xnode.test"))
    assert response.status == 200 and response.content_type.startswith("image/")


async def test_refusals(client, app, api_as):
    alice = await create_user(app, "alice")
    bob = await create_user(app, "bob")
    api = await api_as(alice)
    mine = await api.post("/api/v2/media", data=upload())
    bob_api = await api_as(bob)
    await bob_api.get(f"/api/v1/media/{mine['id']}", expect=404)
    await bob_api.put(f"/api/v1/media/{mine['id']}", json={"description": "x"}, expect=404)
    for path in ("/api/v1/media/abc", "/api/v1/media/1"):
        assert await api.get(path, expect=404) == {"error": "Record not found"}
    await api.post("/api/v2/media", data={"description": "no file"}, expect=422)
    await api.post("/api/v2/media", data=upload(b"not an image"), expect=422)
    await api.post("/api/v2/media", data=upload(b""), expect=422)
    for focus in ("2,0", "a,b", "0.5", "nan,nan", "inf,0"):
        await api.post("/api/v2/media", data=upload(focus=focus), expect=422)
    await api.post("/api/v2/media", data=upload(description="x" * 1501), expect=422)
    await api.put(f"/api/v1/media/{mine['id']}", json={"description": ["x"] * 3}, expect=422)
    await api.put(f"/api/v1/media/{mine['id']}", json={"focus": 3}, expect=422)
    await (await api_as(alice, "read")).post("/api/v2/media", data=upload(), expect=403)
    await (await api_as(None)).post("/api/v2/media", data=upload(), expect=422)
    await (await api_as(None, token=False)).post("/api/v2/media", data=upload(), expect=401)


async def test_uploads_never_attached_are_kept_a_day(client, app, api_as, clock):
    alice = await create_user(app, "alice")
    api = await api_as(alice)
    stale = await api.post("/api/v2/media", data=upload())
    attached = await api.post("/api/v2/media", data=upload())
    await api.post("/api/v1/statuses", json={"status": "x", "media_ids": [attached["id"]]})
    clock.advance(24 * 3600 + 1)
    fresh = await api.post("/api/v2/media", data=upload())
    await api.get(f"/api/v1/media/{stale['id']}", expect=404)
    await api.get(f"/api/v1/media/{attached['id']}")
    await api.get(f"/api/v1/media/{fresh['id']}")
