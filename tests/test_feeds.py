"""Atom and RSS feeds: well-formed, public posts only, escaped content, absolute links."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from conftest import create_user

from xnode.feeds import ATOM_NS, FeedSource, atom_feed, clean, rss_feed
from xnode.posts.service import Draft
from xnode.store import accounts as account_store
from xnode.web.state import ACCOUNTS, DB, POSTS

A = f"{{{ATOM_NS}}}"


async def fetch(client, path: str, content_type: str) -> tuple[bytes, ET.Element]:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == content_type
    body = await response.read()
    return body, ET.fromstring(body)


def atom_entries(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{A}entry")


def rss_items(root: ET.Element) -> list[ET.Element]:
    return root.findall("channel/item")


@pytest.fixture
async def posts(app):
    """One post of each kind by alice, plus one of bob's that she boosts."""
    alice = (await create_user(app, "alice")).account
    bob = (await create_user(app, "bob")).account
    publish = app[POSTS].publish
    made = {
        v: await publish(alice, Draft(f"zqx{v}marker @bob", visibility=v))
        for v in ("public", "unlisted", "followers", "direct")
    }
    deleted = await publish(alice, Draft("zqxdeletedmarker"))
    await app[POSTS].delete(alice.id, deleted.id)
    boosted = await publish(bob, Draft("zqxboostedmarker"))
    await app[POSTS].boost(alice, boosted.id)
    made["script"] = await publish(alice, Draft("zqxscript <script>alert(1)</script> & more"))
    return made


async def test_atom_feed_has_public_posts_only(client, posts):
    body, root = await fetch(client, "/@alice/feed.atom", "application/atom+xml")
    assert root.tag == f"{A}feed"
    entries = atom_entries(root)
    assert len(entries) == 2
    text = body.decode()
    assert "zqxpublicmarker" in text
    for hidden in ("unlisted", "followers", "direct", "deleted", "boosted"):
        assert f"zqx{hidden}marker" not in text, hidden
    public = next(e for e in entries if "zqxpublicmarker" in e.findtext(f"{A}content", ""))
    post_id = posts["public"].id
    link = public.find(f"{A}link[@rel='alternate']")
    assert link is not None and link.get("href") == f"http://xnode.test/@alice/{post_id}"
    assert public.findtext(f"{A}id") == posts["public"].uri
    assert public.find(f"{A}content").get("type") == "html"
    assert public.findtext(f"{A}title").startswith("zqxpublicmarker")
    assert root.find(f"{A}link[@rel='self']").get("href") == "http://xnode.test/@alice/feed.atom"
    assert root.findtext(f"{A}id") == "http://xnode.test/@alice"


async def test_rss_feed_has_public_posts_only(client, posts):
    body, root = await fetch(client, "/@alice/feed.rss", "application/rss+xml")
    assert root.tag == "rss" and root.get("version") == "2.0"
    items = rss_items(root)
    assert len(items) == 2
    text = body.decode()
    assert "zqxpublicmarker" in text
    for hidden in ("unlisted", "followers", "direct", "deleted", "boosted"):
        assert f"zqx{hidden}marker" not in text, hidden
    public = next(i for i in items if "zqxpublicmarker" in i.findtext("description", ""))
    url = f"http://xnode.test/@alice/{posts['public'].id}"
    assert public.findtext("link") == url
    assert public.findtext("guid") == url
    assert root.findtext("channel/link") == "http://xnode.test/@alice"
    assert root.find(f"channel/{A}link").get("href") == "http://xnode.test/@alice/feed.rss"


@pytest.mark.parametrize(
    ("path", "content_type", "content_path"),
    [("/@alice/feed.atom", "application/atom+xml", f"{A}entry/{A}content"),
     ("/@alice/feed.rss", "application/rss+xml", "channel/item/description")],
)
async def test_script_in_a_post_stays_escaped(client, posts, path, content_type, content_path):
    body, root = await fetch(client, path, content_type)
    assert b"<script" not in body
    contents = [e.text or "" for e in root.findall(content_path)]
    script = next(c for c in contents if "zqxscript" in c)
    # The feed carries the post's (already escaped) HTML as text, escaped once more.
    assert script == posts["script"].content_html
    assert "&lt;script&gt;" in script and "<script" not in script


async def test_newest_twenty(client, app):
    alice = (await create_user(app, "alice")).account
    made = [await app[POSTS].publish(alice, Draft(f"zqxn{i:02d}")) for i in range(23)]
    _, root = await fetch(client, "/@alice/feed.atom", "application/atom+xml")
    ids = [e.findtext(f"{A}id") for e in atom_entries(root)]
    assert ids == [p.uri for p in reversed(made)][:20]


async def test_gone_and_missing_accounts(client, app):
    await create_user(app, "alice")
    suspended = (await create_user(app, "sam")).account
    await app[ACCOUNTS].set_suspended(suspended.id, True)
    deleted = (await create_user(app, "dora")).account
    await app[ACCOUNTS].delete_user(deleted.id)
    for ext in ("atom", "rss"):
        assert (await client.get(f"/@nobody/feed.{ext}")).status == 404
        assert (await client.get(f"/@sam/feed.{ext}")).status == 404
        assert (await client.get(f"/@dora/feed.{ext}")).status == 410
        assert (await client.get(f"/@alice/feed.{ext}")).status == 200


async def test_profile_links_its_feeds(client, app):
    await create_user(app, "alice")
    page = await (await client.get("/@alice")).text()
    assert ('<link rel="alternate" type="application/atom+xml"' in page
            and 'href="/@alice/feed.atom">' in page)


async def test_builder_drops_characters_xml_cannot_carry(app):
    alice = (await create_user(app, "alice")).account
    post = await app[POSTS].publish(alice, Draft("fine text"))
    view = (await app[POSTS].hydrate(None, [post]))[0]
    odd = dataclasses.replace(
        view,
        post=dataclasses.replace(view.post, content_html="<p>a\x0bb\x00c</p>", summary="w\x1b"),
    )
    account = await account_store.get_account(app[DB], alice.id)
    source = FeedSource.for_account(account, "http://xnode.test", "xnode.test")
    for build in (atom_feed, rss_feed):
        root = ET.fromstring(build(source, [odd]))
        assert "abc" in ET.tostring(root, encoding="unicode")
    assert clean("a\x00b\ud800c\n\td") == "abc\n\td"


# --- hashtag feeds --------------------------------------------------------------------------


async def test_hashtag_feeds_have_the_tags_public_posts(client, app):
    alice = (await create_user(app, "alice")).account
    bob = (await create_user(app, "bob")).account
    await app[POSTS].publish(alice, Draft("hello #introductions zqxpublic"))
    await app[POSTS].publish(bob, Draft("me too #Introductions zqxbob"))
    await app[POSTS].publish(alice, Draft("#introductions zqxhidden", visibility="followers"))
    await app[POSTS].publish(alice, Draft("no tag zqxuntagged"))
    body, root = await fetch(client, "/tags/introductions.atom", "application/atom+xml")
    entries = atom_entries(root)
    assert len(entries) == 2
    assert b"zqxpublic" in body and b"zqxbob" in body
    assert b"zqxhidden" not in body and b"zqxuntagged" not in body
    # A feed of many people's posts names each entry's author.
    authors = {e.find(f"{A}author/{A}name").text for e in entries}
    assert authors == {"alice (@alice)", "bob (@bob)"}
    self_link = root.find(f"{A}link[@rel='self']").get("href")
    assert self_link == "http://xnode.test/tags/introductions.atom"
    body, root = await fetch(client, "/tags/introductions.rss", "application/rss+xml")
    assert len(rss_items(root)) == 2


async def test_a_tag_with_a_dot_is_a_feed_or_nothing(client, app):
    # Not the page of a tag called "introductions.rss" (issue 15).
    response = await client.get("/tags/introductions.rss")
    assert response.status == 200 and response.content_type == "application/rss+xml"
    assert (await client.get("/tags/introductions.json")).status == 404
    assert (await client.get("/tags/introductions.rss.rss")).status == 404
    redirect = await client.get("/tags/Introductions.atom", allow_redirects=False)
    assert redirect.status == 302 and redirect.headers["Location"] == "/tags/introductions.atom"
