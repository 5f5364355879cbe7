"""Discovery documents: WebFinger handles and JRDs, host-meta, and NodeInfo."""

from __future__ import annotations

import pytest

from federation import nodeinfo, webfinger
from federation.webfinger import Handle, parse_handle, parse_jrd, resolve_actor_url


def jrd(subject: str | None, self_href: str | None, self_type: str = webfinger.ACTIVITY_JSON):
    """A minimal remote JRD."""
    doc: dict = {"links": []}
    if subject is not None:
        doc["subject"] = subject
    if self_href is not None:
        doc["links"].append({"rel": "self", "type": self_type, "href": self_href})
    return parse_jrd(doc)


# --- handles -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "username", "host"),
    [
        ("alice@example.com", "alice", "example.com"),
        ("@alice@Example.COM", "alice", "example.com"),
        ("acct:Alice@example.com", "Alice", "example.com"),
        ("ACCT:bob@example.com", "bob", "example.com"),
        (" bob@example.com ", "bob", "example.com"),
        ("bob@bücher.example", "bob", "xn--bcher-kva.example"),
        ("bob@xn--bcher-kva.example", "bob", "xn--bcher-kva.example"),
        ("dev@localhost:3000", "dev", "localhost:3000"),
        ("dev@127.0.0.1:9002", "dev", "127.0.0.1:9002"),
        ("dev@[::1]:8443", "dev", "[::1]:8443"),
        ("first.last-x_y@example.com", "first.last-x_y", "example.com"),
        ("x@example.com.", "x", "example.com"),
    ],
)
def test_parse_handle_accepts(text, username, host):
    handle = parse_handle(text)
    assert (handle.username, handle.host) == (username, host)


@pytest.mark.parametrize(
    "text",
    [
        "", "alice", "@alice", "alice@", "@@example.com", "a@b@c.example", "a b@example.com",
        "a@exa mple.com", "a@example.com/path", "a@example.com?x", "a/b@example.com",
        "a@-bad.example", "a@bad-.example", "a@example..com", "a@1.2.3", "a@example.com:0",
        "a@example.com:65536", "a@example.com:x", "a@::1", "a@[nonsense]", "a@" + "x" * 300,
        "a\n@example.com", "http://example.com/@alice",
    ],
)  # fmt: skip
def test_parse_handle_refuses_garbage(text):
    with pytest.raises(webfinger.InvalidHandle):
        parse_handle(text)


def test_handle_forms():
    handle = parse_handle("@alice@example.com:8443")
    assert handle.acct == "acct:alice@example.com:8443"
    assert str(handle) == "alice@example.com:8443"
    assert handle.hostname == "example.com"


def test_webfinger_url_default_and_host_meta_template():
    handle = parse_handle("alice@example.com")
    assert webfinger.webfinger_url(handle) == (
        "https://example.com/.well-known/webfinger?resource=acct:alice@example.com"
    )
    template = "https://social.example.com/.well-known/webfinger?resource={uri}"
    assert webfinger.webfinger_url(handle, template=template) == (
        "https://social.example.com/.well-known/webfinger?resource=acct%3Aalice%40example.com"
    )


# --- our own JRD ---------------------------------------------------------------


def test_build_jrd_for_a_local_actor_round_trips():
    handle = Handle("alice", "xnode.test")
    doc = webfinger.build_jrd(
        handle=handle,
        actor_url="https://xnode.test/users/alice",
        profile_url="https://xnode.test/@alice",
    )
    assert doc["subject"] == "acct:alice@xnode.test"
    assert doc["aliases"] == ["https://xnode.test/users/alice", "https://xnode.test/@alice"]
    assert {"rel": "self", "type": "application/activity+json",
            "href": "https://xnode.test/users/alice"} in doc["links"]  # fmt: skip
    parsed = parse_jrd(doc)
    assert webfinger.find_profile_url(parsed) == "https://xnode.test/@alice"
    resolution = resolve_actor_url(parsed, served_by="xnode.test")
    assert resolution == webfinger.Resolution(handle, "https://xnode.test/users/alice", True)


# --- remote JRDs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "media_type",
    [
        "application/activity+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
        "application/ld+json;profile=https://www.w3.org/ns/activitystreams",
        'Application/LD+JSON; profile="https://www.w3.org/ns/activitystreams other"',
    ],
)
def test_self_link_media_types(media_type):
    parsed = jrd("acct:a@x.example", "https://x.example/u/a", media_type)
    assert webfinger.find_actor_url(parsed) == "https://x.example/u/a"


@pytest.mark.parametrize(
    "media_type", ["text/html", "application/ld+json", "application/json", None]
)
def test_other_self_links_are_not_actors(media_type):
    parsed = jrd("acct:a@x.example", "https://x.example/u", media_type)
    assert webfinger.find_actor_url(parsed) is None


def test_http_actor_links_need_the_flag():
    parsed = jrd("acct:a@x.example", "http://x.example/u/a")
    assert webfinger.find_actor_url(parsed) is None
    assert webfinger.find_actor_url(parsed, allow_http=True) == "http://x.example/u/a"


def test_parse_jrd_skips_malformed_links_and_refuses_non_jrds():
    parsed = parse_jrd(
        {
            "subject": "acct:a@x.example",
            "links": [5, {"href": "no rel"}, {"rel": "self", "template": None}],
            "aliases": ["https://x.example/u", 3],
        }
    )
    assert [link.rel for link in parsed.links] == ["self"]
    assert parsed.aliases == ("https://x.example/u",)
    for bad in ([], "x", {"links": {}}, {"aliases": "x"}, {"subject": 5},
                {"links": [{"rel": "x"}] * 1000}):  # fmt: skip
        with pytest.raises(webfinger.InvalidJrd):
            parse_jrd(bad)


def test_subject_on_another_domain_is_refused():
    # Akkoma's imposter fixture: served by bad.com, claims an account elsewhere.
    parsed = jrd("acct:oopsie@notwhereitshouldbe.com", "https://bad.com/webfingertest")
    with pytest.raises(webfinger.WebFingerMismatch):
        resolve_actor_url(parsed, served_by="bad.com")


def test_subject_without_host_is_refused():
    with pytest.raises(webfinger.WebFingerMismatch):
        resolve_actor_url(jrd("acct:kaniini", "https://gerzilla.de/u"), served_by="gerzilla.de")


def test_delegated_lookup_returns_the_canonical_handle():
    # snowdusk@sdf.org is delegated (host-meta) to mastodon.sdf.org, which vouches
    # for snowdusk@mastodon.sdf.org.
    parsed = jrd("acct:snowdusk@mastodon.sdf.org", "https://mastodon.sdf.org/users/snowdusk")
    resolution = resolve_actor_url(
        parsed, served_by="mastodon.sdf.org", requested=parse_handle("snowdusk@sdf.org")
    )
    assert str(resolution.handle) == "snowdusk@mastodon.sdf.org"
    assert resolution.same_origin


def test_missing_subject_only_vouches_for_the_requested_handle_on_its_own_host():
    parsed = jrd(None, "https://mastodon.social/users/emelie")
    requested = parse_handle("emelie@mastodon.social")
    assert resolve_actor_url(parsed, served_by="mastodon.social", requested=requested).handle == (
        requested
    )
    with pytest.raises(webfinger.WebFingerMismatch):
        resolve_actor_url(parsed, served_by="mastodon.social")
    with pytest.raises(webfinger.WebFingerMismatch):
        resolve_actor_url(parsed, served_by="evil.example", requested=requested)


def test_split_domain_actor_is_flagged_for_confirmation():
    parsed = jrd("acct:alice@example.com", "https://social.example.com/users/alice")
    resolution = resolve_actor_url(parsed, served_by="example.com")
    assert resolution.actor_url == "https://social.example.com/users/alice"
    assert not resolution.same_origin


def test_jrd_without_activitypub_link_is_refused():
    with pytest.raises(webfinger.NoActorLink):
        resolve_actor_url(jrd("acct:a@x.example", None), served_by="x.example")


# --- host-meta -----------------------------------------------------------------


def test_host_meta_round_trip():
    xml = webfinger.build_host_meta("https://xnode.test/")
    assert 'rel="lrdd"' in xml
    assert webfinger.parse_host_meta(xml) == (
        "https://xnode.test/.well-known/webfinger?resource={uri}"
    )
    assert webfinger.parse_host_meta(xml.encode()) == webfinger.parse_host_meta(xml)


def test_host_meta_json_form():
    doc = '{"links": [{"rel": "lrdd", "template": "https://a.example/wf?resource={uri}"}]}'
    assert webfinger.parse_host_meta(doc) == "https://a.example/wf?resource={uri}"


@pytest.mark.parametrize(
    "text",
    [
        "<not xml",
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0"></XRD>',
        '<XRD><Link rel="lrdd" template="javascript:{uri}"/></XRD>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><XRD>&a;</XRD>',
        '{"links": []}',
        '{"links": [{"rel": "lrdd", "template": "javascript:{uri}"}]}',
        '{"links": [{"rel": "lrdd", "template": "/relative?resource={uri}"}]}',
        "{broken",
        "<XRD>" + " " * 70_000 + "</XRD>",
    ],
)
def test_host_meta_refusals(text):
    with pytest.raises(webfinger.InvalidHostMeta):
        webfinger.parse_host_meta(text)


# --- NodeInfo --------------------------------------------------------------------


def test_well_known_nodeinfo_points_at_21():
    doc = nodeinfo.build_well_known("https://xnode.test/")
    assert doc == {
        "links": [
            {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                "href": "https://xnode.test/nodeinfo/2.1",
            }
        ]
    }
    assert nodeinfo.pick_nodeinfo_url(doc) == "https://xnode.test/nodeinfo/2.1"


def test_nodeinfo_21_document_follows_the_schema_and_round_trips():
    usage = nodeinfo.Usage(users_total=3, users_active_month=2, users_active_halfyear=3,
                           local_posts=10)  # fmt: skip
    doc = nodeinfo.build_nodeinfo(
        software_name="xnode", software_version="0.1.0", open_registrations=False,
        usage=usage, metadata={"nodeName": "Test"},
    )  # fmt: skip
    assert set(doc) == {"version", "software", "protocols", "services", "openRegistrations",
                        "usage", "metadata"}  # fmt: skip
    assert doc["version"] == "2.1"
    assert doc["protocols"] == ["activitypub"]
    assert doc["services"] == {"inbound": [], "outbound": []}
    assert doc["usage"] == {
        "users": {"total": 3, "activeMonth": 2, "activeHalfyear": 3}, "localPosts": 10
    }  # fmt: skip
    parsed = nodeinfo.parse_nodeinfo(doc)
    assert parsed.software_name == "xnode"
    assert parsed.usage == usage
    assert parsed.speaks_activitypub
    assert parsed.metadata == {"nodeName": "Test"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"software_name": "XNode"},
        {"software_name": "x node"},
        {"software_name": "xnode\n"},
        {"usage": nodeinfo.Usage(users_total=-1)},
        {"usage": nodeinfo.Usage(local_posts=True)},  # type: ignore[arg-type]
    ],
)
def test_build_nodeinfo_refuses_invalid_values(kwargs):
    values = {"software_name": "xnode", "software_version": "1", "open_registrations": True,
              "usage": nodeinfo.Usage()}  # fmt: skip
    values.update(kwargs)
    with pytest.raises(nodeinfo.NodeInfoError):
        nodeinfo.build_nodeinfo(**values)


def test_well_known_prefers_21_then_20_and_ignores_other_links():
    doc = {
        "links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "https://a/2.0"},
            {"rel": "https://www.w3.org/ns/activitystreams#Application", "href": "https://a/x"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": "https://a/2.1"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": "javascript:x"},
        ]
    }
    assert nodeinfo.pick_nodeinfo_url(doc) == "https://a/2.1"
    only_old = {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/1.1",
                           "href": "https://a/1.1"}]}  # fmt: skip
    assert nodeinfo.pick_nodeinfo_url(only_old) is None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"version": "1.0"},
        {"version": "2.1", "software": "x", "protocols": []},
        {"version": "2.1", "software": {"name": "", "version": "1"}, "protocols": []},
        {"version": "2.1", "software": {"name": "x", "version": 1}, "protocols": []},
        {"version": "2.1", "software": {"name": "x", "version": "1"}, "protocols": "activitypub"},
    ],
)
def test_parse_nodeinfo_refusals(doc):
    with pytest.raises(nodeinfo.NodeInfoError):
        nodeinfo.parse_nodeinfo(doc)
