"""Atom and RSS feeds of public posts, an account's or a hashtag's (pure: posts in, XML out).

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
    """What a feed is of (an account's posts, a hashtag's) and where the node lives."""

    base_url: str
    page_url: str  # the HTML page the feed mirrors
    feed_url: str  # the feed's own address, without ``.atom`` / ``.rss``
    title: str
    description: str
    author: Account | None = None  # whose feed it is (None: posts by many)
    updated_floor: float = 0.0  # the feed changed at least this recently

    @classmethod
    def for_account(cls, account: Account, base_url: str, domain: str) -> FeedSource:
        """A local account's public posts."""
        handle = f"@{account.username}@{domain}"
        return cls(
            base_url=base_url,
            page_url=f"{base_url}/@{account.username}",
            feed_url=f"{base_url}/@{account.username}/feed",
            title=f"{account.name_for_display} ({handle})",
            description=html_to_text(account.bio_html) or f"Public posts by {handle}",
            author=account,
            updated_floor=account.updated_at,
        )

    @classmethod
    def for_tag(cls, tag: str, base_url: str, domain: str) -> FeedSource:
        """Public posts with a hashtag, from here and from the servers the node knows."""
        return cls(
            base_url=base_url,
            page_url=f"{base_url}/tags/{tag}",
            feed_url=f"{base_url}/tags/{tag}",
            title=f"#{tag} on {domain}",
            description=f"Public posts tagged #{tag} that {domain} knows of",
        )

    @property
    def atom_url(self) -> str:
        """The Atom feed's address."""
        return f"{self.feed_url}.atom"

    @property
    def rss_url(self) -> str:
        """The RSS feed's address."""
        return f"{self.feed_url}.rss"


def clean(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry removed."""
    return _NOT_XML.sub("", text)


def absolute(base_url: str, url: str) -> str:
    """An absolute URL for a node-relative path (others pass through)."""
    return base_url + url if url.startswith("/") else url


def post_url(source: FeedSource, view: PostView) -> str:
    """The public page of a post, absolute (a remote post's page on its own server)."""
    if view.author.is_local:
        return f"{source.base_url}/@{view.author.username}/{view.post.id}"
    return view.post.url or view.post.uri or f"{source.base_url}/posts/{view.post.id}"


def author_url(source: FeedSource, author: Account) -> str:
    """An author's profile, absolute: here for local people, their own server's otherwise."""
    if author.is_local:
        return f"{source.base_url}/@{author.username}"
    return author.url or author.uri or source.base_url


def entry_title(view: PostView) -> str:
    """A short title: the article's title, else the content warning, else the text."""
    post = view.post
    if post.kind == "article" and post.title:
        return post.title
    if post.summary:
        return post.summary
    text = " ".join(html_to_text(post.content_html).split())
    if not text:
        return f"Post by @{view.author.acct}"
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
    return max([*times, source.updated_floor])


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
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def atom_feed(source: FeedSource, posts: Sequence[PostView]) -> bytes:
    """An Atom 1.0 document of ``posts`` (newest first)."""
    # Plain names under an xmlns attribute: ElementTree's default_namespace
    # option refuses the (rightly) unqualified attribute names Atom uses.
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _add(feed, "id", source.page_url)
    _add(feed, "title", source.title)
    _add(feed, "subtitle", source.description)
    _add(feed, "updated", _rfc3339(_updated(source, posts)))
    _add(feed, "link", rel="alternate", type="text/html", href=source.page_url)
    _add(feed, "link", rel="self", type=ATOM_TYPE, href=source.atom_url)
    _add(feed, "generator", "xnode")
    if source.author is not None:
        author = _add(feed, "author")
        _add(author, "name", source.author.name_for_display)
        _add(author, "uri", source.page_url)
    for view in posts:
        post = view.post
        url = post_url(source, view)
        entry = _add(feed, "entry")
        _add(entry, "id", post.uri or url)
        _add(entry, "title", entry_title(view))
        if source.author is None:  # Atom wants an author for every entry of a shared feed
            author = _add(entry, "author")
            _add(author, "name", f"{view.author.name_for_display} (@{view.author.acct})")
            _add(author, "uri", author_url(source, view.author))
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
    _add(channel, "link", source.page_url)
    _add(channel, "description", source.description)
    _add(channel, "lastBuildDate", _rfc822(_updated(source, posts)))
    _add(channel, "generator", "xnode")
    _add(channel, f"{{{ATOM_NS}}}link", rel="self", type=RSS_TYPE, href=source.rss_url)
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
