"""Instance endpoints and app registration through the API."""

from __future__ import annotations

from conftest import create_user

from api.conftest import in_thread, mastodon_for


async def test_instance_v1_and_v2_describe_the_node(client, app, api_as):
    api = await api_as(None, token=False)
    v1 = await api.get("/api/v1/instance")
    v2 = await api.get("/api/v2/instance")
    assert v1["uri"] == "xnode.test" and v2["domain"] == "xnode.test"
    assert v1["version"].startswith("4.") and "compatible; xnode" in v1["version"]
    assert v2["configuration"]["statuses"]["max_characters"] == 5000
    assert v1["registrations"] is True  # the test node's registration is open
    assert api.last.headers["Access-Control-Allow-Origin"] == "*"


async def test_mastodon_py_reads_the_instance_and_registers_an_app(client, app):
    await create_user(app, "alice")
    masto = await mastodon_for(client, None)
    info = await in_thread(masto.instance)
    assert info.domain == "xnode.test"
    assert await in_thread(masto.verify_minimum_version, "4.0.0", cached=True)
    from mastodon import Mastodon

    from api.conftest import base_url

    client_id, secret = await in_thread(
        Mastodon.create_app, "Bot", api_base_url=base_url(client), scopes=["read", "write"]
    )
    assert client_id and secret


async def test_app_registration_refuses_bad_input(client, api_as):
    api = await api_as(None, token=False)
    await api.post("/api/v1/apps", json={"client_name": "x"}, expect=422)
    await api.post("/api/v1/apps", json={"client_name": "x", "redirect_uris": "not a uri"},
                   expect=422)
    await api.post("/api/v1/apps", json={"client_name": "x", "redirect_uris":
                   "urn:ietf:wg:oauth:2.0:oob", "scopes": "read nonsense"}, expect=422)
    await api.post("/api/v1/apps", data=b"{not json", headers={"Content-Type":
                   "application/json"}, expect=422)
    body = await api.post("/api/v1/apps", json={"client_name": "ok", "redirect_uris":
                          "myapp://callback", "scopes": "read write:statuses"})
    assert body["scopes"] == ["read", "write:statuses"]
    assert body["redirect_uris"] == ["myapp://callback"]


async def test_verify_app_credentials_and_invalid_tokens(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read")
    assert (await api.get("/api/v1/apps/verify_credentials"))["name"] == "Test app"
    api.token = "nonsense"
    body = await api.get("/api/v1/instance", expect=401)
    assert body == {"error": "The access token is invalid"}
    anonymous = await api_as(None, token=False)
    await anonymous.get("/api/v1/apps/verify_credentials", expect=401)


async def test_features_the_node_lacks_answer_empty_lists(client, app, api_as):
    alice = await create_user(app, "alice")
    api = await api_as(alice, "read")
    for path in ("/api/v1/lists", "/api/v2/filters", "/api/v1/trends/tags",
                 "/api/v1/custom_emojis", "/api/v1/scheduled_statuses/"):
        assert await api.get(path) == []
    assert (await api.get("/api/v1/timelines/list/1", expect=404)) == {
        "error": "Record not found"}
