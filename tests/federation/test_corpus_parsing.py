"""Every document of the shared ActivityPub corpus through the matching parser.

Each file must either parse or be refused with the parser's typed error, never
crash; the files refused are exactly the ones listed in ``EXPECTED_REFUSALS``
(the corpus README's negative cases plus test-edited fixtures our origin rules
reject), and the README's robustness cases get their specific checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from federation import nodeinfo, webfinger
from federation.actors import InvalidActor, RemoteActor, parse_actor
from federation.jsonld import JsonLdError
from federation.objects import (
    NOTE_TYPES,
    InvalidObject,
    ParsedActivity,
    ParsedNote,
    origin_of,
    parse_activity,
    parse_collection,
    parse_note,
    type_of,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "activitypub"
if not CORPUS.is_dir():
    pytest.skip(f"ActivityPub corpus not found at {CORPUS}", allow_module_level=True)

FILES = sorted(path.relative_to(CORPUS).as_posix() for path in CORPUS.glob("*/*.json"))
TYPED_ERRORS = (
    InvalidActor,
    InvalidObject,
    webfinger.WebFingerError,
    nodeinfo.NodeInfoError,
    JsonLdError,
)
# Files per folder, as the corpus README counts them.
FOLDER_SIZES = {"actors": 57, "notes": 79, "direct": 10, "social": 64, "collections": 14,
                "webfinger": 15, "nodeinfo": 10}  # fmt: skip

# file -> a fragment of the refusal reason.
EXPECTED_REFUSALS = {
    # README negative case: publicKey owned by /actor/2 inside /actor/21.
    "actors/gnusocial-group.json": "owned by",
    # README negative case: actor on another host than the activity id.
    "social/misskey-like-reaction-edited.json": "not on the actor's host",
    # Rebased's test data moved these ids to another host than the actor's
    # (mobilizon.mkljczk.pl vs mobilizon.org): the same rule refuses them.
    "social/mobilizon-join-event.json": "not on the actor's host",
    "social/mobilizon-accept-join.json": "not on the actor's host",
    # The snapshot tool scrubbed the id to ``SCRUBBED_ID``.
    "direct/mbin-create-chatmessage-snapshot.json": "not an http(s) URL",
    # README negative case: subject on another domain than the serving host.
    "webfinger/imposter-other-domain.json": "not vouched for",
    # README robustness case: ``acct:kaniini`` has no host.
    "webfinger/hubzilla-subject-without-host.json": "is not an account",
    # Pre-ActivityPub GNU social: no ActivityPub self link to follow.
    "webfinger/gnusocial-escaped-slashes.json": "no ActivityPub self link",
}
# WebFinger answers without a subject vouch only for the handle asked for.
REQUESTED_HANDLES = {"webfinger/mastodon-2019.json": "emelie@mastodon.social"}


def load(relative: str) -> Any:
    """A corpus document, unwrapped from the ``{headers, body}`` HTTP captures."""
    doc = json.loads((CORPUS / relative).read_text(encoding="utf-8"))
    if isinstance(doc, dict) and set(doc) >= {"headers", "body"}:
        body = doc["body"]
        doc = json.loads(body) if isinstance(body, str) else body
    return doc


def parse_webfinger(relative: str, doc: Any) -> webfinger.Resolution:
    """Parse a JRD and resolve it as if served by the host its own links point at."""
    jrd = webfinger.parse_jrd(doc)
    urls = [*jrd.aliases, *(link.href for link in jrd.links if link.href)]
    served_by = origin_of(next((url for url in urls if url.startswith("http")), None))
    assert served_by, f"{relative}: no host to attribute the JRD to"
    requested = REQUESTED_HANDLES.get(relative)
    return webfinger.resolve_actor_url(
        jrd,
        served_by=served_by,
        requested=webfinger.parse_handle(requested) if requested else None,
        allow_http=True,
    )


def parse_document(relative: str, doc: Any) -> Any:
    """Run a corpus document through the parser its folder calls for."""
    folder = relative.split("/", 1)[0]
    if folder == "actors":
        # Several fixtures use the http:// test domains of their original suites.
        return parse_actor(doc, allow_http=True)
    if folder == "collections":
        return parse_collection(doc)
    if folder == "webfinger":
        return parse_webfinger(relative, doc)
    if folder == "nodeinfo":
        if "links" in doc:
            return nodeinfo.parse_well_known(doc)
        return nodeinfo.parse_nodeinfo(doc)
    if type_of(doc) in NOTE_TYPES:
        return parse_note(doc)
    activity = parse_activity(doc)
    embedded = activity.embedded_object
    if embedded is not None and type_of(embedded) in NOTE_TYPES:
        parse_note(embedded, default_author=activity.actor)
    return activity


def outcome(relative: str) -> tuple[Any, Exception | None]:
    try:
        return parse_document(relative, load(relative)), None
    except TYPED_ERRORS as exc:
        return None, exc


def test_corpus_is_complete():
    counts: dict[str, int] = {}
    for relative in FILES:
        folder = relative.split("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    assert counts == FOLDER_SIZES


@pytest.mark.parametrize("relative", FILES)
def test_every_document_parses_or_is_refused_with_a_typed_error(relative):
    parsed, error = outcome(relative)  # any other exception fails the test
    if relative in EXPECTED_REFUSALS:
        assert error is not None, f"{relative} should have been refused"
        assert EXPECTED_REFUSALS[relative] in str(error)
    else:
        assert error is None, f"{relative} refused: {error}"
        assert parsed is not None


# --- the README's robustness cases -------------------------------------------------


def actor(relative: str) -> RemoteActor:
    return parse_actor(load(relative), allow_http=True)


def test_mojibake_display_name_is_stored_as_given():
    raw = load("actors/pleroma-person-mojibake-name.json")
    assert actor("actors/pleroma-person-mojibake-name.json").name == raw["name"]


def test_nonsense_attachment_yields_no_fields():
    assert actor("actors/takahe-person-nonsense-attachment.json").fields == ()
    assert len(actor("actors/takahe-person.json").fields) == 1  # single object, not a list


def test_actor_without_key_and_with_a_non_uri_alias():
    parsed = actor("actors/microblogpub-person-no-key.json")
    assert parsed.public_key is None
    assert parsed.also_known_as == ()


def test_double_slash_key_id_is_kept_as_sent():
    parsed = actor("actors/lotide-person.json")
    assert parsed.public_key is not None
    assert parsed.public_key.id == "https://narwhal.city//users/3#main-key"


def test_pkcs1_keys_and_key_ids_equal_to_the_actor_id_are_accepted():
    misskey = actor("actors/misskey-person-pkcs1-key.json")
    assert misskey.public_key and "BEGIN RSA PUBLIC KEY" in misskey.public_key.pem
    hubzilla = actor("actors/hubzilla-person-2021.json")
    assert hubzilla.public_key and hubzilla.public_key.id == hubzilla.id


def test_embedded_foreign_note_in_a_boost_is_not_trusted():
    activity = parse_activity(load("social/mastodon-announce-embedded-foreign-note.json"))
    assert activity.embedded_object is not None
    assert not activity.embedded_object_trusted
    own = parse_activity(load("social/mastodon-announce-followers-only-embedded.json"))
    assert own.embedded_object_trusted


def test_chat_message_script_is_kept_for_the_node_to_sanitise():
    doc = load("direct/pleroma-create-chatmessage-no-context.json")
    activity = parse_activity(doc)
    note = parse_note(activity.embedded_object, default_author=activity.actor)
    assert note.type == "ChatMessage"
    assert note.content == doc["object"]["content"]
    assert "<script" in note.content
    assert not note.is_public
    assert [tag.type for tag in note.tags] == ["Emoji"]


def test_placeholder_reply_targets_are_not_replies():
    activity = parse_activity(load("notes/gotosocial-create-note-reply.json"))
    note = parse_note(activity.embedded_object, default_author=activity.actor)
    assert note.in_reply_to is None


def test_signed_documents_parse_for_shape():
    # Verifying these (and failing for the tampered ones) is federation.signatures'
    # job; the parser must simply accept and ignore ``signature``/``proof``.
    for relative in (
        "notes/mastodon-create-note-ldsig-2018.json",
        "notes/mastodon-inbox-post-http-capture.json",
        "notes/mitra-create-note-fep8b32-proof.json",
    ):
        assert isinstance(parse_document(relative, load(relative)), ParsedActivity)


# --- shape variations ------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "notes/gotosocial-create-note-reply.json",
        "notes/kroeg-create-note-inline-actor.json",
        "notes/lotide-create-page-scalar-addressing.json",
        "social/lotide-follow-scalar-to.json",
    ],
)
def test_scalar_addressing_becomes_tuples(relative):
    activity = parse_activity(load(relative))
    assert isinstance(activity.to, tuple) and len(activity.to) == 1


def test_content_map_only_and_two_languages():
    for relative in (
        "notes/mastodon-create-note-contentmap-only.json",
        "notes/mastodon-create-note-contentmap-two-languages.json",
    ):
        doc = load(relative)
        note = parse_note(doc["object"], default_author=doc["actor"])
        assert note.content and note.content in doc["object"]["contentMap"].values()


def test_inline_actor_objects_become_iris():
    prismo = parse_activity(load("notes/prismo-create-article.json"))
    assert prismo.actor.startswith("https://prismo.news/")
    kroeg = parse_activity(load("social/kroeg-announce-inline-actor.json"))
    assert kroeg.actor == "https://puckipedia.com/"


def test_poll_counts_from_mastodon():
    doc = load("notes/mastodon-create-question-poll.json")
    note = parse_note(doc["object"], default_author=doc["actor"])
    assert note.poll is not None
    assert len(note.poll.options) == len(doc["object"]["oneOf"])
    assert sum(option.votes or 0 for option in note.poll.options) == sum(
        option["replies"]["totalItems"] for option in doc["object"]["oneOf"]
    )


def test_nodeinfo_versions():
    assert nodeinfo.pick_nodeinfo_url(load("nodeinfo/mobilizon-well-known-1.1-only.json")) is None
    assert nodeinfo.pick_nodeinfo_url(load("nodeinfo/wildebeest-well-known.json")).endswith("2.1")
    mobilizon = nodeinfo.parse_nodeinfo(load("nodeinfo/mobilizon-2.1.json"))
    assert mobilizon.software_name == "mobilizon"
    assert mobilizon.speaks_activitypub


def test_pleroma_lists_two_self_links_and_either_works():
    resolution = parse_webfinger("webfinger/pleroma.json", load("webfinger/pleroma.json"))
    assert resolution.actor_url == "https://pleroma.soykaf.com/users/lain"


def test_note_fields_from_a_real_mastodon_status():
    doc = load("notes/mastodon-note-image-likes-shares.json")
    note = parse_note(doc)
    assert isinstance(note, ParsedNote)
    assert note.attachments and note.attachments[0].blurhash
    assert note.language == "en"
    assert note.published is not None and note.published.tzinfo is not None
