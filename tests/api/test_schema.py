"""Every entity the API returns, checked against Mastodon's documented fields and types
(tests/api/mastodon_schema.py reads them from Mastodon.py's entity definitions)."""

from __future__ import annotations

import io

import aiohttp
from conftest import create_user
from PIL import Image

from api.mastodon_schema import assert_entity, check_entity


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_checker_catches_what_it_should():
    good = {"name": "tag", "url": "http://x.test/tags/tag"}
    assert check_entity("Tag", good) == []
    assert check_entity("Tag", {"name": "tag"})  # missing url
    assert check_entity("Tag", {**good, "made_up": 1})  # undocumented field
    assert check_entity("Tag", {**good, "name": 3})  # wrong type
    assert check_entity("Marker", {"last_read_id": 5, "version": 1,
                                   "updated_at": "2026-01-01T00:00:00.000Z"})  # id not a string


async def test_every_entity_matches_mastodons_documentation(client, app, api_as):
    alice = await create_user(app, "alice", admin=True)  # the instance's contact
    bob = await create_user(app, "bob")
    a = await api_as(alice)
    b = await api_as(bob)
    anonymous = await api_as(None, token=False)

    assert_entity("Instance", await anonymous.get("/api/v1/instance"))
    assert_entity("InstanceV2", await anonymous.get("/api/v2/instance"))
    assert_entity("Application", await a.get("/api/v1/apps/verify_credentials"))

    me = await a.get("/api/v1/accounts/verify_credentials")
    assert_entity("Account", me)
    assert_entity("Account", await b.get(f"/api/v1/accounts/{alice.id}"))
    relationship = await b.post(f"/api/v1/accounts/{alice.id}/follow")
    assert_entity("Relationship", relationship)
    for item in await b.get("/api/v1/accounts/relationships", params={"id[]": str(alice.id)}):
        assert_entity("Relationship", item)

    form = aiohttp.FormData()
    form.add_field("file", _png(), filename="red.png", content_type="image/png")
    form.add_field("description", "a red rectangle")
    media = await a.post("/api/v2/media", data=form)
    assert_entity("MediaAttachment", media)
    status = await a.post("/api/v1/statuses", json={
        "status": "Hello #world https://example.invalid/", "media_ids": [media["id"]],
    })  # fmt: skip
    assert_entity("Status", status)
    reply = await b.post("/api/v1/statuses", json={
        "status": "@alice hi", "in_reply_to_id": status["id"],
    })  # fmt: skip
    assert_entity("Status", reply)
    assert reply["in_reply_to_account_id"] == str(alice.id)
    context = await a.get(f"/api/v1/statuses/{status['id']}/context")
    assert_entity("Context", context)
    edited = await a.put(f"/api/v1/statuses/{status['id']}", json={"status": "Hello again"})
    assert_entity("Status", edited)
    for version in await a.get(f"/api/v1/statuses/{status['id']}/history"):
        assert_entity("StatusEdit", version)
    assert_entity("StatusSource", await a.get(f"/api/v1/statuses/{status['id']}/source"))
    boost = await b.post(f"/api/v1/statuses/{status['id']}/reblog")
    assert_entity("Status", boost)
    await b.post(f"/api/v1/statuses/{status['id']}/favourite")
    for item in await b.get("/api/v1/timelines/home"):
        assert_entity("Status", item)

    notifications = await a.get("/api/v1/notifications")
    assert notifications, "alice was followed, mentioned, boosted and favourited"
    for item in notifications:
        assert_entity("Notification", item)

    await b.post("/api/v1/statuses", json={"status": "@alice secret", "visibility": "direct"})
    conversations = await a.get("/api/v1/conversations")
    assert conversations
    for item in conversations:
        assert_entity("Conversation", item)

    markers = await a.post("/api/v1/markers", json={"home": {"last_read_id": status["id"]}})
    assert_entity("Marker", markers["home"])

    found = await a.get("/api/v2/search", params={"q": "bob"})
    assert_entity("SearchV2", found)
    assert_entity("Tag", await a.get("/api/v1/tags/world"))


async def test_token_entity_as_mastodon_documents_it(client, api_as):
    api = await api_as(None, token=False)
    registered = await api.post("/api/v1/apps", json={
        "client_name": "bot", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read"})
    token = await api.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": registered["client_id"],
        "client_secret": registered["client_secret"], "scope": "read"})  # fmt: skip
    # Mastodon's Token: access_token, token_type "Bearer", scope, created_at (seconds).
    assert set(token) == {"access_token", "token_type", "scope", "created_at"}
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    assert isinstance(token["access_token"], str) and isinstance(token["created_at"], int)
