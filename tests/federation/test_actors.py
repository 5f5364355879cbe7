"""Remote documents: actors (``federation.actors``), activities and posts (``.objects``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from federation.actors import InvalidActor, Multikey, PublicKey, parse_actor
from federation.objects import (
    InvalidActivity,
    InvalidObject,
    parse_activity,
    parse_collection,
    parse_note,
)

ACTOR = "https://remote.example/users/bob"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"


def make_actor(**overrides: Any) -> dict[str, Any]:
    """A Mastodon-shaped actor document; ``None`` values remove a key."""
    doc: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": ACTOR,
        "type": "Person",
        "preferredUsername": "bob",
        "name": "Bob",
        "summary": "<p>hi <script>x</script></p>",
        "url": "https://remote.example/@bob",
        "inbox": ACTOR + "/inbox",
        "outbox": ACTOR + "/outbox",
        "followers": ACTOR + "/followers",
        "following": ACTOR + "/following",
        "featured": ACTOR + "/collections/featured",
        "endpoints": {"sharedInbox": "https://remote.example/inbox"},
        "manuallyApprovesFollowers": True,
        "discoverable": False,
        "publicKey": {"id": ACTOR + "#main-key", "owner": ACTOR, "publicKeyPem": PEM},
        "icon": {"type": "Image", "mediaType": "image/png", "url": "https://remote.example/a.png"},
        "image": {"type": "Image", "url": "https://remote.example/h.png"},
        "attachment": [{"type": "PropertyValue", "name": "Web", "value": "<a href='x'>x</a>"}],
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def make_note(**overrides: Any) -> dict[str, Any]:
    """A Mastodon-shaped public Note."""
    doc: dict[str, Any] = {
        "id": "https://remote.example/users/bob/statuses/1",
        "type": "Note",
        "attributedTo": ACTOR,
        "content": "<p>hello</p>",
        "to": [PUBLIC],
        "cc": [ACTOR + "/followers"],
        "published": "2024-05-01T12:00:00Z",
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def make_activity(kind: str = "Create", obj: Any = None, **overrides: Any) -> dict[str, Any]:
    """An activity by ``ACTOR`` wrapping ``obj`` (a Note by default)."""
    doc: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": ACTOR + "/statuses/1/activity",
        "type": kind,
        "actor": ACTOR,
        "object": make_note() if obj is None else obj,
        "to": [PUBLIC],
        "cc": [ACTOR + "/followers"],
    }
    doc.update(overrides)
    return doc


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "Note"}
    for _ in range(depth):
        value = {"type": "Note", "object": value}
    return value


# --- actors: the happy path ----------------------------------------------------


def test_mastodon_actor_is_parsed_completely():
    actor = parse_actor(make_actor(), expected_id=ACTOR)
    assert actor.id == ACTOR
    assert actor.type == "Person"
    assert actor.preferred_username == "bob"
    assert actor.summary == "<p>hi <script>x</script></p>"  # unsanitised on purpose
    assert actor.inbox == ACTOR + "/inbox"
    assert actor.shared_inbox == actor.delivery_inbox == "https://remote.example/inbox"
    assert actor.public_key == PublicKey(ACTOR + "#main-key", ACTOR, PEM)
    assert actor.key(ACTOR + "#main-key") == actor.public_key
    assert actor.icon_url == "https://remote.example/a.png"
    assert actor.image_url == "https://remote.example/h.png"
    assert [(f.name, f.value) for f in actor.fields] == [("Web", "<a href='x'>x</a>")]
    assert actor.manually_approves_followers is True
    assert actor.discoverable is False
    assert actor.featured == ACTOR + "/collections/featured"
    assert actor.url == "https://remote.example/@bob"


def test_public_key_as_list_and_without_owner():
    keys = [
        {"id": ACTOR + "#main-key", "publicKeyPem": PEM},  # Bridgy Fed omits owner
        {"id": ACTOR + "#other", "owner": ACTOR, "publicKeyPem": PEM},
        ACTOR + "#iri-only",  # nothing to verify with: skipped
    ]
    actor = parse_actor(make_actor(publicKey=keys))
    assert [key.id for key in actor.public_keys] == [ACTOR + "#main-key", ACTOR + "#other"]
    assert all(key.owner == ACTOR for key in actor.public_keys)


def test_no_public_key_is_allowed():
    assert parse_actor(make_actor(publicKey=None)).public_key is None


def test_assertion_method_multikeys():
    multikey = {
        "id": ACTOR + "#ed25519-key",
        "type": "Multikey",
        "controller": ACTOR,
        "publicKeyMultibase": "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
    }
    actor = parse_actor(make_actor(assertionMethod=[multikey, {"type": "Other"}]))
    assert actor.assertion_methods == (
        Multikey(ACTOR + "#ed25519-key", ACTOR, multikey["publicKeyMultibase"]),
    )
    assert actor.key(ACTOR + "#ed25519-key") == actor.assertion_methods[0]


@pytest.mark.parametrize(
    ("icon", "expected"),
    [
        ("https://remote.example/i.png", "https://remote.example/i.png"),
        ([{"type": "Image", "url": "https://remote.example/1.png"},
          {"type": "Image", "url": "https://remote.example/2.png"}], "https://remote.example/1.png"),
        ({"type": "Image", "url": {"type": "Link", "href": "https://remote.example/l.png"}},
         "https://remote.example/l.png"),
        ({"type": "Image"}, None),
        (42, None),
    ],
)  # fmt: skip
def test_icon_shapes(icon, expected):
    assert parse_actor(make_actor(icon=icon)).icon_url == expected


def test_profile_url_prefers_the_html_link():
    links = [
        {"type": "Link", "mediaType": "text/x-zot+json", "href": "https://remote.example/zot"},
        {"type": "Link", "mediaType": "text/html", "href": "https://remote.example/@bob"},
    ]
    assert parse_actor(make_actor(url=links)).url == "https://remote.example/@bob"


@pytest.mark.parametrize(
    ("attachment", "names"),
    [
        ({"type": "PropertyValue", "name": "k", "value": "v"}, ["k"]),  # Takahē: single object
        ({"haha": "random nonsense"}, []),
        ([{"type": "Image", "url": "https://x/y"}, {"type": "PropertyValue", "name": 5}], []),
        ("text", []),
    ],
)
def test_profile_fields_are_robust(attachment, names):
    assert [f.name for f in parse_actor(make_actor(attachment=attachment)).fields] == names


def test_odd_values_from_real_servers():
    actor = parse_actor(
        make_actor(
            name=None,
            discoverable="true",  # a string, in Mastodon test data
            manuallyApprovesFollowers=None,
            alsoKnownAs=["example@elsewhere.com", "https://old.example/users/bob"],
            movedTo="https://new.example/users/bob",
        )
    )
    assert actor.name is None
    assert actor.discoverable is True
    assert actor.manually_approves_followers is False
    assert actor.also_known_as == ("https://old.example/users/bob",)
    assert actor.moved_to == "https://new.example/users/bob"


def test_shared_inbox_fallbacks():
    top_level = make_actor(endpoints=None, sharedInbox="https://remote.example/shared")
    assert parse_actor(top_level).shared_inbox == "https://remote.example/shared"
    endpoints_iri = make_actor(endpoints="https://remote.example/endpoints")  # Kroeg
    assert parse_actor(endpoints_iri).shared_inbox is None
    foreign = make_actor(endpoints={"sharedInbox": "https://elsewhere.example/inbox"})
    assert parse_actor(foreign).delivery_inbox == ACTOR + "/inbox"


def test_compact_iri_keys_go_through_json_ld():
    doc = make_actor(discoverable=None)
    doc["@context"] = [*doc["@context"], {"toot": "http://joinmastodon.org/ns#"}]
    doc["toot:discoverable"] = True
    assert parse_actor(doc).discoverable is True


# --- actors: refusals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"type": "Note"}, "not an actor type"),
        ({"type": None}, "not an actor type"),
        ({"id": "http://remote.example/users/bob"}, "https"),
        ({"id": "/users/bob"}, "https"),
        ({"id": None}, "https"),
        ({"id": ["https://remote.example/users/bob"]}, "https"),
        ({"inbox": None}, "inbox"),
        ({"inbox": 5}, "inbox"),
        ({"inbox": "https://elsewhere.example/inbox"}, "not on the host"),
        ({"publicKey": {"id": ACTOR + "#k", "owner": "https://remote.example/users/eve",
                        "publicKeyPem": PEM}}, "owned by"),
        ({"publicKey": {"id": "https://elsewhere.example/k", "owner": ACTOR,
                        "publicKeyPem": PEM}}, "not on the actor's host"),
        ({"assertionMethod": {"id": ACTOR + "#m", "type": "Multikey",
                              "controller": "https://remote.example/users/eve",
                              "publicKeyMultibase": "z6Mk"}}, "controlled by"),
        ({"publicKey": [{"id": ACTOR + f"#{i}", "publicKeyPem": PEM} for i in range(50)]},
         "too many"),
    ],
)  # fmt: skip
def test_invalid_actors_are_refused_with_a_reason(overrides, reason):
    with pytest.raises(InvalidActor) as caught:
        parse_actor(make_actor(**overrides))
    assert reason in caught.value.reason


def test_http_actor_needs_the_test_flag():
    doc = make_actor(
        id="http://remote.example/users/bob",
        inbox="http://remote.example/users/bob/inbox",
        publicKey=None,
    )
    with pytest.raises(InvalidActor):
        parse_actor(doc)
    assert parse_actor(doc, allow_http=True).id == "http://remote.example/users/bob"


def test_document_must_be_the_one_requested():
    with pytest.raises(InvalidActor, match="does not match"):
        parse_actor(make_actor(), expected_id="https://remote.example/users/alice")


@pytest.mark.parametrize(
    "doc", [None, "actor", 5, [], [make_actor()], {"type": "Person"}, nested(200)]
)
def test_hostile_documents_never_crash(doc):
    with pytest.raises(InvalidActor):
        parse_actor(doc)


def test_huge_documents_are_refused():
    with pytest.raises(InvalidActor):
        parse_actor(make_actor(alsoKnownAs=["https://x.example/a"] * 30_000))


# --- activities --------------------------------------------------------------------


def test_create_with_embedded_note():
    activity = parse_activity(make_activity())
    assert activity.type == "Create"
    assert activity.actor == ACTOR
    assert activity.object_id == "https://remote.example/users/bob/statuses/1"
    assert activity.object_type == "Note"
    assert activity.embedded_object_trusted
    assert activity.is_public
    note = parse_note(activity.embedded_object, default_author=activity.actor)
    assert note.content == "<p>hello</p>"
    assert note.published == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_scalar_addressing_and_embedded_actor_are_normalised():
    # Fedify/GoToSocial send scalars; Kroeg and Osada embed the actor.
    activity = parse_activity(
        make_activity(
            "Follow",
            "https://xnode.test/users/alice",
            actor={"id": ACTOR, "type": "Person"},
            to="https://xnode.test/users/alice",
            cc=None,
        )
    )
    assert activity.actor == ACTOR
    assert activity.to == ("https://xnode.test/users/alice",)
    assert activity.cc == ()
    assert activity.object == "https://xnode.test/users/alice"
    assert activity.embedded_object is None
    assert not activity.embedded_object_trusted


def test_flag_with_several_objects_keeps_them_all():
    objects = [ACTOR, "https://remote.example/users/bob/statuses/2"]
    activity = parse_activity(make_activity("Flag", objects))
    assert activity.object_ids == tuple(objects)


def test_embedded_object_from_another_server_is_not_trusted():
    foreign = make_note(id="https://other.example/notes/1", attributedTo="https://other.example/u")
    activity = parse_activity(make_activity("Announce", foreign))
    assert activity.embedded_object is not None
    assert not activity.embedded_object_trusted
    spoofed_author = make_note(attributedTo="https://other.example/u")
    assert not parse_activity(make_activity("Update", spoofed_author)).embedded_object_trusted


def test_public_addressing_spellings():
    for public in ("as:Public", "Public", PUBLIC):
        assert parse_activity(make_activity(to=public)).is_public
    assert not parse_activity(make_activity(to=[ACTOR + "/followers"], cc=[])).is_public


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (make_activity(type=None), "no type"),
        (make_activity(type=5), "no type"),
        (make_activity(actor=None), "no actor"),
        (make_activity(actor="bob"), "not an http(s) URL"),
        (make_activity(id="SCRUBBED_ID"), "not an http(s) URL"),
        (make_activity(id="https://elsewhere.example/activity/1"), "not on the actor's host"),
        (make_activity(to=["https://x.example/u"] * 6000), "more than"),
    ],
)
def test_invalid_activities_are_refused(doc, reason):
    with pytest.raises(InvalidActivity) as caught:
        parse_activity(doc)
    assert reason in caught.value.reason


def test_origin_check_can_be_relaxed_by_the_caller():
    doc = make_activity(id="https://elsewhere.example/activity/1")
    assert parse_activity(doc, require_same_origin=False).id == doc["id"]


@pytest.mark.parametrize("doc", [None, [], "x", nested(500), {"type": {"a": 1}, "actor": ACTOR}])
def test_hostile_activities_never_crash(doc):
    with pytest.raises(InvalidActivity):
        parse_activity(doc)


# --- posts ---------------------------------------------------------------------


def test_note_with_content_map_tags_attachments_and_cw():
    note = parse_note(
        make_note(
            content=None,
            contentMap={"es": "<p>hola</p>", "en": "<p>hi</p>"},
            summary="cw",
            sensitive=True,
            inReplyTo={"id": "https://other.example/notes/0", "type": "Note"},
            tag={"type": "Emoji", "name": ":blob:",
                 "icon": {"type": "Image", "url": "https://remote.example/blob.png"}},
            attachment=[
                {"type": "Document", "mediaType": "image/png", "name": None,
                 "url": "https://remote.example/1.png", "blurhash": "UABC", "width": 10},
                {"type": "Link", "href": "https://remote.example/page"},
                {"type": "Document", "url": None},
                "garbage",
            ],
        )
    )  # fmt: skip
    assert note.content == "<p>hola</p>"
    assert note.language == "es"
    assert note.content_map == {"es": "<p>hola</p>", "en": "<p>hi</p>"}
    assert note.summary == "cw" and note.sensitive
    assert note.in_reply_to == "https://other.example/notes/0"
    assert [(t.type, t.name, t.icon_url) for t in note.emojis] == [
        ("Emoji", ":blob:", "https://remote.example/blob.png")
    ]
    assert [(a.url, a.media_type, a.blurhash, a.width) for a in note.attachments] == [
        ("https://remote.example/1.png", "image/png", "UABC", 10),
        ("https://remote.example/page", None, None, None),
    ]


def test_mentions_hashtags_and_unknown_tags():
    note = parse_note(
        make_note(
            tag=[
                {"type": "Mention", "href": "https://xnode.test/users/alice", "name": "@alice"},
                {"type": "Hashtag", "href": "/tags/test", "name": "#Test"},
                {"type": "CommunityPostTag", "name": "x"},
                {"type": "Mention", "name": "@nohref"},
                7,
            ]
        )
    )
    assert note.mentions == ("https://xnode.test/users/alice",)
    assert note.hashtags == ("Test",)


def test_question_options_and_counts():
    note = parse_note(
        make_note(
            type="Question",
            oneOf=[
                {"type": "Note", "name": "Yes", "replies": {"type": "Collection", "totalItems": 3}},
                {"type": "Note", "name": "No", "replies": {"totalItems": -1}},
                {"type": "Note"},
            ],
            endTime="2024-05-02T12:00:00Z",
            votersCount=3,
        )
    )
    assert note.poll is not None
    assert [(o.name, o.votes) for o in note.poll.options] == [("Yes", 3), ("No", None)]
    assert not note.poll.multiple
    assert note.poll.voters_count == 3
    assert note.poll.end_time == datetime(2024, 5, 2, 12, tzinfo=UTC)


def test_peertube_style_attribution_and_url_links():
    note = parse_note(
        make_note(
            type="Video",
            attributedTo=[
                {"type": "Group", "id": "https://remote.example/video-channels/c"},
                {"type": "Person", "id": "https://remote.example/accounts/a"},
            ],
            url=[
                {"type": "Link", "mediaType": "application/x-mpegURL", "href": "https://remote.example/m3u8"},
                {"type": "Link", "mediaType": "text/html", "href": "https://remote.example/w/1"},
            ],
        )
    )  # fmt: skip
    assert note.attributed_to == "https://remote.example/accounts/a"
    assert note.url == "https://remote.example/w/1"


def test_quote_post_properties():
    for key in ("quoteUrl", "quoteUri", "quoteURL", "_misskey_quote"):
        assert parse_note(make_note(**{key: "https://q.example/n/1"})).quote_url == (
            "https://q.example/n/1"
        )


def test_missing_author_falls_back_to_the_activity_actor():
    with pytest.raises(InvalidObject):
        parse_note(make_note(attributedTo=None))
    assert parse_note(make_note(attributedTo=None), default_author=ACTOR).attributed_to == ACTOR


@pytest.mark.parametrize(
    "doc",
    [
        make_note(type="Tombstone"),
        make_note(type="Person"),
        make_note(id=None),
        make_note(id="not a url"),
        make_note(tag=[{"type": "Hashtag", "name": "#x"}] * 2000),
        make_note(attachment=[{"url": "https://x.example/a"}] * 500),
        nested(100),
        ["a", "list"],
    ],
)
def test_unusable_posts_are_refused(doc):
    with pytest.raises(InvalidObject):
        parse_note(doc)


def test_wrong_types_in_optional_fields_are_ignored():
    note = parse_note(
        make_note(content={"x": 1}, summary=5, sensitive="yes", published="yesterday",
                  inReplyTo=7, url=3, tag="nonsense", attachment={"a": "b"})
    )  # fmt: skip
    assert note.content == ""
    assert note.summary is None
    assert note.sensitive is False
    assert note.published is None
    assert note.in_reply_to is None
    assert note.url is None
    assert note.tags == ()
    assert note.attachments == ()


# --- collections ---------------------------------------------------------------


def test_collection_items_and_pages():
    collection = parse_collection(
        {
            "id": ACTOR + "/followers?page=1",
            "type": "OrderedCollectionPage",
            "totalItems": 2,
            "orderedItems": ["https://a.example/u/1", {"id": "https://a.example/u/2"}],
            "next": ACTOR + "/followers?page=2",
            "partOf": ACTOR + "/followers",
        }
    )
    assert collection.item_ids == ("https://a.example/u/1", "https://a.example/u/2")
    assert collection.next == ACTOR + "/followers?page=2"
    assert collection.part_of == ACTOR + "/followers"
    with pytest.raises(InvalidObject):
        parse_collection({"type": "Note"})
    with pytest.raises(InvalidObject):
        parse_collection({"type": "Collection", "items": ["https://a.example/u"] * 6000})
