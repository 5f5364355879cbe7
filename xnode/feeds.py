"""Atom and RSS feeds of an account's public posts (pure: posts in, XML bytes out).

Everything goes through ElementTree, which escapes text and attributes, so a
post's HTML ends up as escaped character data and cannot break out of the
document. Characters XML 1.0 forbids (most control characters) are dropped
first: a single one would make the whole feed unparseable.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from xnode.accounts.models import Account
from xnode.posts.content import html_to_text
from xnode.posts.models import PostView

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"
RSS_TYPE = "application/rss+xml"
TITLE_CHARS = 80
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# RSS carries one Atom element (its own address); the prefix is the usual one.
ET.register_namespace("atom", ATOM_NS)


@dataclass(frozen=True)
class FeedSource:
    """Whose feed it is and where the node lives."""

    account: Account
    base_url: str
    domain: str

    @property
    def profile_url(self) -> str:
        """The account's HTML profile."""
        return f"{self.base_url}/@{self.account.username}"

    @property
    def title(self) -> str:
        """The feed's title: name and full handle."""
        return f"{self.account.name_for_display} (@{self.account.username}@{self.domain})"

    @property
    def description(self) -> str:
        """The bio as plain text, or a plain sentence when there is none."""
        bio = html_to_text(self.account.bio_html)
        return bio or f"Public posts by @{self.account.username}@{self.domain}"


def clean(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry removed."""
    return _NOT_XML.sub("", text)


def absolute(base_url: str, url: str) -> str:
    """An absolute URL for a node-relative path (others pass through)."""
    return base_url + url if url.startswith("/") else url


def post_url(source: FeedSource, view: PostView) -> str:
    """The public page of a post, absolute."""
    return f"{source.base_url}/@{view.author.username}/{view.post.id}"


def entry_title(view: PostView) -> str:
    """A short title: the article's title, else the content warning, else the text."""
    post = view.post
    if post.kind == "article" and post.title:
        return post.title
    if post.summary:
        return post.summary
    text = " ".join(html_to_text(post.content_html).split())
    if not text:
        return f"Post by @{view.author.username}"
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def entry_html(source: FeedSource, view: PostView) -> str:
    """The post as an HTML fragment: warning, content and images with absolute links."""
    post = view.post
    parts = []
    if post.summary:
        parts.append(f"<p><strong>Content warning:</strong> {html.escape(post.summary)}</p>")
    # content_html was sanitised when the post was rendered; it is escaped again below.
    parts.append(post.content_html)
    for media in view.media:
        full = absolute(source.base_url, media.url or "")
        thumb = absolute(source.base_url, media.thumbnail_url or full)
        parts.append(
            f'<p><a href="{html.escape(full)}"><img src="{html.escape(thumb)}"'
            f' alt="{html.escape(media.description)}"></a></p>'
        )
    return "".join(parts)


def _updated(source: FeedSource, posts: Sequence[PostView]) -> float:
    times = [v.post.edited_at or v.post.created_at for v in posts]
    return max([*times, source.account.updated_at])


def _rfc3339(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _rfc822(value: float) -> str:
    return format_datetime(datetime.fromtimestamp(value, UTC), usegmt=True)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: clean(v) for k, v in attrs.items()})
    if text is not None:
        element.text = clean(text)
    return element


def _serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def atom_feed(source: FeedSource, posts: Sequence[PostView]) -> bytes:
    """An Atom 1.0 document of ``posts`` (newest first)."""
    # Plain names under an xmlns attribute: ElementTree's default_namespace
    # option refuses the (rightly) unqualified attribute names Atom uses.
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _add(feed, "id", source.profile_url)
    _add(feed, "title", source.title)
    _add(feed, "subtitle", source.description)
    _add(feed, "updated", _rfc3339(_updated(source, posts)))
    _add(feed, "link", rel="alternate", type="text/html", href=source.profile_url)
    _add(feed, "link", rel="self", type=ATOM_TYPE, href=f"{source.profile_url}/feed.atom")
    _add(feed, "generator", "xnode")
    author = _add(feed, "author")
    _add(author, "name", source.account.name_for_display)
    _add(author, "uri", source.profile_url)
    for view in posts:
        post = view.post
        url = post_url(source, view)
        entry = _add(feed, "entry")
        _add(entry, "id", post.uri or url)
        _add(entry, "title", entry_title(view))
        _add(entry, "link", rel="alternate", type="text/html", href=url)
        _add(entry, "published", _rfc3339(post.created_at))
        _add(entry, "updated", _rfc3339(post.edited_at or post.created_at))
        _add(entry, "content", entry_html(source, view), type="html")
        for tag in view.tags:
            _add(entry, "category", term=tag)
        for media in view.media:
            _add(
                entry, "link", rel="enclosure", type=media.content_type,
                href=absolute(source.base_url, media.url or ""),
            )
    return _serialise(feed)


def rss_feed(source: FeedSource, posts: Sequence[PostView]) -> bytes:
    """An RSS 2.0 document of ``posts`` (newest first)."""
    rss = ET.Element("rss", version="2.0")
    channel = _add(rss, "channel")
    _add(channel, "title", source.title)
    _add(channel, "link", source.profile_url)
    _add(channel, "description", source.description)
    _add(channel, "lastBuildDate", _rfc822(_updated(source, posts)))
    _add(channel, "generator", "xnode")
    _add(
        channel, f"{{{ATOM_NS}}}link", rel="self", type=RSS_TYPE,
        href=f"{source.profile_url}/feed.rss",
    )
    for view in posts:
        url = post_url(source, view)
        item = _add(channel, "item")
        _add(item, "title", entry_title(view))
        _add(item, "link", url)
        _add(item, "guid", url, isPermaLink="true")
        _add(item, "pubDate", _rfc822(view.post.created_at))
        _add(item, "description", entry_html(source, view))
        for tag in view.tags:
            _add(item, "category", tag)
    return _serialise(rss)
