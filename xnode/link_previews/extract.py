"""Reading a page's ``<head>`` for a preview card, and finding the link a post previews.

Pure functions over text, with the standard library's ``html.parser``: no
network, no database. Everything a page says is untrusted: text is unescaped
once, stripped of control characters, squeezed and cut to a bound (templates
escape it again when they show it); URLs are kept only when they are absolute
http(s) URLs of a sane length.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from xnode.link_previews.models import PagePreview
from xnode.text import strip_control_chars

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 400
MAX_SITE_NAME_CHARS = 100
MAX_URL_CHARS = 2048
MAX_IMAGE_SIDE = 20_000
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# Where a page may name its own encoding: <meta charset="…"> or the http-equiv form.
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
_FEED_CHUNK_CHARS = 16 * 1024


def clean_text(value: str | None, limit: int) -> str:
    """Untrusted text as one line: no control characters, spaces squeezed, at most ``limit``."""
    if not value:
        return ""
    # Line breaks become spaces first (they are control characters, and would vanish).
    text = " ".join(strip_control_chars(" ".join(value.split())).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def clean_url(value: str | None, base: str | None = None) -> str | None:
    """An absolute http(s) URL (resolved against ``base``), or None for anything else.

    ``javascript:``, ``data:`` and other schemes, URLs without a host, with
    credentials, with spaces or control characters, or longer than
    :data:`MAX_URL_CHARS` are refused. The fragment is dropped: it names a
    place in the page, never a different page.
    """
    if not value:
        return None
    value = value.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlsplit(absolute)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or port == 0:
        return None
    url = urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", parts.query, ""))
    return url if len(url) <= MAX_URL_CHARS else None


def same_site(first: str, second: str) -> bool:
    """Whether two URLs are on the same host, ``www.`` aside."""

    def host(url: str) -> str:
        return (urlsplit(url).hostname or "").removeprefix("www.")

    return host(first) == host(second) != ""


# --- a post's link -------------------------------------------------------------------


class _LinkFinder(HTMLParser):
    """Collects ``(href, classes, text)`` for each link of a post's HTML, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, set[str], str]] = []
        self._open: tuple[str, set[str], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            found = dict(attrs)
            classes = set((found.get("class") or "").split()) | {
                f"rel-{r}" for r in (found.get("rel") or "").split()
            }
            self._open = (found.get("href") or "", classes, [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[2].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            href, classes, text = self._open
            self.links.append((href, classes, "".join(text).strip()))
            self._open = None


def first_link(content_html: str, skip: Collection[str] = ()) -> str | None:
    """The first link of a post that is worth a card: not a mention or hashtag.

    Mastodon marks mentions ``class="u-url mention"`` and hashtags
    ``class="mention hashtag" rel="tag"``, and so do we; servers that mark
    neither still write the link text as ``@name`` or ``#tag``. ``skip`` holds
    further URLs that are not pages to preview (the mentioned people's profiles).
    """
    finder = _LinkFinder()
    finder.feed(content_html)
    finder.close()
    skipped = {clean_url(url) for url in skip} - {None}
    for href, classes, text in finder.links:
        if classes & {"mention", "hashtag", "rel-tag"} or text.startswith(("@", "#")):
            continue
        url = clean_url(href)
        if url is not None and url not in skipped:
            return url
    return None


# --- a page's head -------------------------------------------------------------------


def decode_page(body: bytes, content_type: str) -> str:
    """An HTML body as text, in the encoding its header or its ``<meta>`` names (else UTF-8)."""
    candidates = []
    match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]{1,40})", content_type, re.I)
    if match:
        candidates.append(match[1])
    if body.startswith(codecs.BOM_UTF8):
        candidates.insert(0, "utf-8-sig")
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        candidates.append(meta[1].decode("ascii"))
    for name in candidates:
        try:
            if codecs.lookup(name).name in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):
                continue  # a page cannot be ASCII-compatible HTML and these at once
            return body.decode(name, "replace")
        except (LookupError, UnicodeError):
            continue
    return body.decode("utf-8", "replace")


class _HeadReader(HTMLParser):
    """Reads the ``<meta>`` tags, ``<title>`` and canonical link of a page's head.

    Stops at ``</head>`` or ``<body>``: only the head describes the page, and
    anything after it is time spent on the page's content.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self.done = False
        self._title_parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag == "body":
            self.done = True
        elif tag == "meta":
            found = {name: value or "" for name, value in attrs}
            key = (found.get("property") or found.get("name") or "").strip().lower()
            if key and "content" in found:
                self.meta.setdefault(key, found["content"])  # the first one counts
        elif tag == "title" and self.title is None and self._title_parts is None:
            self._title_parts = []

    def handle_data(self, data: str) -> None:
        if self._title_parts is not None:
            self._title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title_parts is not None:
            self.title = "".join(self._title_parts)
            self._title_parts = None
        elif tag == "head":
            self.done = True

    def finish(self) -> None:
        """Keep a title the page was cut off inside of."""
        if self.title is None and self._title_parts is not None:
            self.title = "".join(self._title_parts)
            self._title_parts = None


def _dimension(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    number = int(value.strip())
    return number if 0 < number <= MAX_IMAGE_SIDE else None


def read_head(text: str) -> _HeadReader:
    """Parse a page until its head ends (fed in pieces, so a page without one stops early)."""
    reader = _HeadReader()
    for start in range(0, len(text), _FEED_CHUNK_CHARS):
        reader.feed(text[start : start + _FEED_CHUNK_CHARS])
        if reader.done:
            break
    reader.finish()
    return reader


def parse_page(text: str, page_url: str) -> PagePreview | None:
    """The preview a page's head makes, or None when it names no title at all.

    OpenGraph first, then the Twitter card, then plain HTML (``<title>``,
    ``<meta name="description">``). ``og:url`` names the card's link only when
    it is on the page's own site: a page must not make a card that says one
    address and leads to another.
    """
    head = read_head(text)
    meta = head.meta

    def first(*keys: str) -> str | None:
        for key in keys:
            if meta.get(key, "").strip():
                return meta[key]
        return None

    title = clean_text(first("og:title", "twitter:title") or head.title, MAX_TITLE_CHARS)
    if not title:
        return None
    own_url = clean_url(first("og:url"), page_url)
    url = own_url if own_url is not None and same_site(own_url, page_url) else page_url
    image = clean_url(
        first("og:image", "og:image:url", "og:image:secure_url", "twitter:image",
              "twitter:image:src"),
        page_url,
    )  # fmt: skip
    return PagePreview(
        url=url,
        title=title,
        description=clean_text(
            first("og:description", "twitter:description", "description"), MAX_DESCRIPTION_CHARS
        ),
        site_name=clean_text(first("og:site_name"), MAX_SITE_NAME_CHARS),
        image_url=image,
        image_width=_dimension(meta.get("og:image:width")) if image else None,
        image_height=_dimension(meta.get("og:image:height")) if image else None,
    )
