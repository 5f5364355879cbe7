"""Call support is advertised (actor documents, NodeInfo) and learnt from other servers'
actors, so nothing is ever sent to a server that would not understand it."""

from __future__ import annotations

import json

import aiohttp
from live_nodes import nodes  # noqa: F401 (the fixture)

from federation import jsonld
from federation.actors import parse_actor
from federation.calls import CALLS_NAMESPACE, CALLS_PROTOCOL


async def test_our_actors_say_they_take_calls_in_a_way_json_ld_reads(nodes):  # noqa: F811
    a, _ = nodes
    await a.user("alice")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{a.domain}/users/alice",
                            headers={"Accept": "application/activity+json"}) as response:
            actor = json.loads(await response.read())
        async with http.get(f"http://{a.domain}/nodeinfo/2.1") as response:
            info = json.loads(await response.read())
        async with http.get(f"http://{a.domain}/ns/calls/v1") as response:
            assert response.content_type == "application/ld+json"
            served_context = json.loads(await response.read())
    assert actor["supportsCalls"] is True
    (expanded,) = jsonld.expand(actor)
    assert expanded[CALLS_NAMESPACE + "supportsCalls"] == [{"@value": True}]
    assert info["metadata"]["calls"] == {"protocol": CALLS_PROTOCOL, "maxParticipants": 4}
    assert served_context == jsonld.load_bundled_context(CALLS_PROTOCOL)


async def test_a_remote_actor_s_call_support_is_stored_when_it_is_fetched(nodes):  # noqa: F811
    a, b = nodes
    await b.user("bob")
    bob = await a.remote(f"@bob@{b.domain}")
    assert bob.supports_calls is True


def test_an_actor_without_the_term_does_not_take_calls():
    mastodon_like = {
        "@context": ["https://www.w3.org/ns/activitystreams",
                     {"toot": "http://joinmastodon.org/ns#"}],
        "id": "https://social.example/users/ana", "type": "Person",
        "preferredUsername": "ana", "inbox": "https://social.example/users/ana/inbox",
    }  # fmt: skip
    assert parse_actor(mastodon_like).supports_calls is False
    term = {"supportsCalls": "https://w3id.org/xnode/calls#supportsCalls"}
    sloppy = {**mastodon_like, "supportsCalls": "true",
              "@context": ["https://www.w3.org/ns/activitystreams", term]}  # fmt: skip
    assert parse_actor(sloppy).supports_calls is False
