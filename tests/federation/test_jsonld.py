"""Bundled contexts, the offline loader, the shape helpers and the JSON-LD fallback."""

from __future__ import annotations

import socket

import pytest

from federation import jsonld

AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"

MASTODON_ACTOR = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        {
            "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
            "toot": "http://joinmastodon.org/ns#",
            "featured": {"@id": "toot:featured", "@type": "@id"},
            "discoverable": "toot:discoverable",
            "schema": "http://schema.org#",
            "PropertyValue": "schema:PropertyValue",
            "value": "schema:value",
        },
    ],
    "id": "https://mastodon.example/users/alice",
    "type": "Person",
    "preferredUsername": "alice",
    "name": "Alice",
    "inbox": "https://mastodon.example/users/alice/inbox",
    "featured": "https://mastodon.example/users/alice/collections/featured",
    "discoverable": True,
    "manuallyApprovesFollowers": False,
    "attachment": [{"type": "PropertyValue", "name": "Site", "value": "<a>x</a>"}],
    "publicKey": {
        "id": "https://mastodon.example/users/alice#main-key",
        "owner": "https://mastodon.example/users/alice",
        "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    },
}


@pytest.fixture
def no_network(monkeypatch):
    """Make any DNS lookup or socket connection fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# --- the loader ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        jsonld.AS_CONTEXT,
        jsonld.SECURITY_V1,
        jsonld.DATA_INTEGRITY_V1,
        jsonld.DATA_INTEGRITY_V2,
        jsonld.MULTIKEY_V1,
        jsonld.IDENTITY_V1,
        jsonld.WEBFINGER_CONTEXT,
        jsonld.LITEPUB_CONTEXT,
    ],
)
def test_loader_serves_every_bundled_context(url, no_network):
    remote = jsonld.document_loader(url, {})
    assert remote["documentUrl"] == url
    assert "@context" in remote["document"]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://www.w3.org/ns/activitystreams", "activitystreams.json"),
        ("https://www.w3.org/ns/activitystreams/", "activitystreams.json"),
        ("https://www.w3.org/ns/activitystreams#", "activitystreams.json"),
        ("http://w3id.org/security/v1", "security-v1.json"),
        ("https://patch.cx/schemas/litepub-0.1.jsonld", "litepub-0.1.json"),
        ("https://evil.example/context.jsonld", None),
        ("https://w3id.org/security/v1?x=1", None),
        ("ftp://w3id.org/security/v1", None),
        ("", None),
    ],
)
def test_context_url_variants(url, name):
    assert jsonld.bundled_context_name(url) == name


def test_activitystreams_context_is_the_current_published_one():
    context = jsonld.load_bundled_context(jsonld.AS_CONTEXT)["@context"]
    assert context["as"] == AS
    for term in ("sharedInbox", "Public", "alsoKnownAs", "endpoints", "orderedItems"):
        assert term in context


def test_loader_returns_a_fresh_copy_each_time():
    first = jsonld.load_bundled_context(jsonld.SECURITY_V1)
    first["@context"]["sec"] = "tampered"
    assert jsonld.load_bundled_context(jsonld.SECURITY_V1)["@context"]["sec"] == SEC


def test_unknown_context_is_refused_without_network(no_network):
    with pytest.raises(jsonld.UnknownContext) as caught:
        jsonld.document_loader("https://attacker.example/ctx", {})
    assert caught.value.url == "https://attacker.example/ctx"
    with pytest.raises(jsonld.UnknownContext):
        jsonld.expand({"@context": "https://attacker.example/ctx", "type": "Note"})


def test_mastodon_actor_expands_offline(no_network):
    (expanded,) = jsonld.expand(MASTODON_ACTOR)
    assert expanded["@id"] == "https://mastodon.example/users/alice"
    assert expanded["@type"] == [AS + "Person"]
    assert expanded[AS + "preferredUsername"] == [{"@value": "alice"}]
    assert expanded["http://www.w3.org/ns/ldp#inbox"] == [
        {"@id": "https://mastodon.example/users/alice/inbox"}
    ]
    (key,) = expanded[SEC + "publicKey"]
    assert key[SEC + "owner"] == [{"@id": "https://mastodon.example/users/alice"}]
    assert expanded["http://joinmastodon.org/ns#discoverable"] == [{"@value": True}]


def test_compact_round_trip(no_network):
    compacted = jsonld.compact(jsonld.expand(MASTODON_ACTOR), jsonld.AS_CONTEXT)
    assert compacted["preferredUsername"] == "alice"
    assert compacted["inbox"] == "https://mastodon.example/users/alice/inbox"


# --- limits --------------------------------------------------------------------


def test_deep_nesting_is_refused_before_processing():
    doc: dict = {"@context": jsonld.AS_CONTEXT, "type": "Note"}
    cursor = doc
    for _ in range(100):
        cursor["object"] = {"type": "Note"}
        cursor = cursor["object"]
    with pytest.raises(jsonld.DocumentTooComplex):
        jsonld.normalise_with_jsonld(doc)


def test_huge_arrays_are_refused_before_processing():
    doc = {"type": "Note", "to": ["https://x.example/u"] * 20_000}
    with pytest.raises(jsonld.DocumentTooComplex):
        jsonld.normalise_with_jsonld(doc)


def test_parse_json_guards_depth_size_and_syntax():
    assert jsonld.parse_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    with pytest.raises(jsonld.DocumentTooComplex):
        jsonld.parse_json(b"[" * 100_000 + b"]" * 100_000, max_bytes=10**6)
    with pytest.raises(jsonld.DocumentTooComplex):
        jsonld.parse_json(b"[" * 40 + b"]" * 40)
    with pytest.raises(jsonld.InvalidJson):
        jsonld.parse_json(b"{nope")
    with pytest.raises(jsonld.InvalidJson):
        jsonld.parse_json(b"\xff\xfe\x00garbage")
    with pytest.raises(jsonld.InvalidJson):
        jsonld.parse_json(b"[" + b"1," * 100 + b"1]", max_bytes=50)


# --- shape helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, []), ("a", ["a"]), (["a", "b"], ["a", "b"]), ({"id": "a"}, [{"id": "a"}]), ([], [])],
)
def test_as_list(value, expected):
    assert jsonld.as_list(value) == expected


def test_first():
    assert jsonld.first(["a", "b"]) == "a"
    assert jsonld.first("a") == "a"
    assert jsonld.first([]) is None
    assert jsonld.first(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example/u", "https://a.example/u"),
        ({"id": "https://a.example/u", "type": "Person"}, "https://a.example/u"),
        ({"@id": "https://a.example/u"}, "https://a.example/u"),
        ([{"type": "Person", "id": "https://a.example/u"}, "https://b.example"], "https://a.example/u"),
        ({"type": "Person"}, None),
        ("   ", None),
        (5, None),
        (None, None),
    ],
)
def test_id_of(value, expected):
    assert jsonld.id_of(value) == expected


def test_ids_of_flattens_dedupes_and_skips_junk():
    value = ["https://a/x", {"id": "https://a/y"}, "https://a/x", 7, {"name": "no id"}]
    assert jsonld.ids_of(value) == ["https://a/x", "https://a/y"]
    assert jsonld.ids_of("https://a/x") == ["https://a/x"]
    assert jsonld.ids_of(None) == []


def test_language_map_value_prefers_plain_then_requested_language():
    both = {"content": "plain", "contentMap": {"en": "map"}}
    assert jsonld.language_map_value(both, "content") == "plain"
    only_map = {"contentMap": {"es": "hola", "en": "hello"}}
    assert jsonld.language_map_value(only_map, "content") == "hola"
    assert jsonld.language_map_value(only_map, "content", ("en",)) == "hello"
    assert jsonld.language_map_value({"contentMap": {"und": "x", "fr": "y"}}, "content") == "x"
    assert jsonld.language_map_value({"content": 5, "contentMap": "bad"}, "content") is None
    assert jsonld.language_map_value({}, "summary") is None


@pytest.mark.parametrize(
    "addressing",
    [
        "https://www.w3.org/ns/activitystreams#Public",
        ["https://x.example/u/followers", "as:Public"],
        "Public",
        [{"id": "https://www.w3.org/ns/activitystreams#Public"}],
    ],
)
def test_is_public_accepts_every_spelling(addressing):
    assert jsonld.is_public(addressing)


@pytest.mark.parametrize(
    "addressing", [None, [], "https://x.example/u/followers", ["https://x.example/Public"]]
)
def test_is_public_refuses_everything_else(addressing):
    assert not jsonld.is_public(addressing)


# --- the fallback ---------------------------------------------------------------


def test_prefixed_keys_and_iri_types_come_out_standard(no_network):
    doc = {
        "@context": [jsonld.AS_CONTEXT, {"toot": "http://joinmastodon.org/ns#"}],
        "id": "https://x.example/notes/1",
        "type": "as:Note",
        "https://www.w3.org/ns/activitystreams#content": "hello",
        "as:to": {"id": "https://www.w3.org/ns/activitystreams#Public"},
        "toot:discoverable": True,
    }
    assert jsonld.needs_normalisation(doc)
    normalised = jsonld.normalise_with_jsonld(doc)
    assert normalised["type"] == "Note"
    assert normalised["content"] == "hello"
    assert normalised["discoverable"] is True
    assert jsonld.is_public(normalised["to"])


def test_only_terms_we_read_trigger_the_fallback():
    doc = {"@context": jsonld.AS_CONTEXT, "type": "Note", "diaspora:guid": "x"}
    assert jsonld.needs_normalisation(doc)
    assert not jsonld.needs_normalisation(doc, terms={"content"})
    assert not jsonld.needs_normalisation({"type": "Note", "as:content": "x"})  # no @context


def test_unbundled_contexts_are_dropped_not_fetched_and_do_not_poison_the_cache(no_network):
    doc = {
        "@context": [jsonld.AS_CONTEXT, "https://unknown.example/ns"],
        "id": "https://x.example/notes/1",
        "type": "Note",
        "content": "hi",
    }
    assert jsonld.normalise_with_jsonld(doc)["content"] == "hi"
    # pyld caches contexts process-wide; the lenient pass must not make the
    # strict loader accept the unknown URL afterwards.
    with pytest.raises(jsonld.UnknownContext):
        jsonld.expand(doc)


def test_undefined_terms_keep_their_plain_names(no_network):
    doc = {
        "@context": jsonld.AS_CONTEXT,
        "id": "https://x.example/u",
        "type": "Person",
        "as:name": "x",
        "attachment": {"type": "PropertyValue", "name": "k", "value": "v"},
    }
    normalised = jsonld.normalise_with_jsonld(doc)
    assert normalised["attachment"]["type"] == "PropertyValue"
    assert normalised["attachment"]["value"] == "v"


def test_invalid_json_ld_is_a_typed_error(no_network):
    with pytest.raises(jsonld.JsonLdError):
        jsonld.normalise_with_jsonld({"@context": jsonld.AS_CONTEXT, "id": None, "type": "Note"})
    with pytest.raises(jsonld.JsonLdError):
        jsonld.normalise_with_jsonld(["not", "an", "object"])  # type: ignore[arg-type]
