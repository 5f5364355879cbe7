"""The calls vocabulary (federation/calls.py, docs/calls-over-activitypub.md) read by a real
JSON-LD processor (pyld), inline and by URL, offline."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from federation import jsonld
from federation.calls import (
    CALLS_CONTEXT,
    CALLS_CONTEXT_URL,
    CALLS_NAMESPACE,
    actor_supports_calls,
    context_document,
)

AS = "https://www.w3.org/ns/activitystreams#"


def invite(context: Any) -> dict[str, Any]:
    return {
        "@context": context,
        "id": "https://a.example/calls/1/invite",
        "type": "Invite",
        "actor": "https://a.example/users/alice",
        "to": ["https://b.example/users/bob"],
        "object": {
            "id": "https://a.example/calls/1",
            "type": "Call",
            "attributedTo": "https://a.example/users/alice",
            "participants": ["https://a.example/users/alice", "https://b.example/users/bob"],
            "media": ["audio", "video"],
        },
        "target": "https://b.example/users/bob",
        "sdpType": "offer",
        "sdp": "v=0\r\n",
    }


def test_the_bundled_context_is_the_one_in_code():
    text = resources.files("federation.contexts").joinpath("xnode-calls-v1.json").read_text()
    assert json.loads(text) == context_document()
    assert jsonld.load_bundled_context(CALLS_CONTEXT_URL) == context_document()


def test_an_invite_expands_to_the_calls_namespace_inline_and_by_url():
    (inline,) = jsonld.expand(invite(CALLS_CONTEXT))
    (by_url,) = jsonld.expand(invite(["https://www.w3.org/ns/activitystreams", CALLS_CONTEXT_URL]))
    assert inline == by_url
    assert inline["@type"] == [AS + "Invite"]
    assert inline[CALLS_NAMESPACE + "sdpType"] == [{"@value": "offer"}]
    (call,) = inline[AS + "object"]
    assert call["@type"] == [CALLS_NAMESPACE + "Call"]
    assert {p["@id"] for p in call[CALLS_NAMESPACE + "participants"]} == {
        "https://a.example/users/alice", "https://b.example/users/bob",
    }  # fmt: skip
    assert sorted(m["@value"] for m in call[CALLS_NAMESPACE + "media"]) == ["audio", "video"]


def test_without_the_vocabulary_the_call_terms_are_dropped():
    # What a server that does not know the protocol reads: nothing of the call.
    (plain,) = jsonld.expand(invite("https://www.w3.org/ns/activitystreams"))
    assert not any(key.startswith(CALLS_NAMESPACE) for key in plain)


def test_only_a_literal_true_says_an_actor_takes_calls():
    assert actor_supports_calls({"supportsCalls": True})
    for value in ("true", 1, None, False, [True]):
        assert not actor_supports_calls({"supportsCalls": value})
    assert not actor_supports_calls({})
