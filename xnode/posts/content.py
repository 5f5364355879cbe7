"""Turning what someone wrote into post HTML: links, @mentions, #hashtags, Markdown.

Pure functions. Rendering happens in two steps because mentions need the
database: :func:`extract_entities` finds the handles and tags in the source,
the caller resolves the handles to accounts, and :func:`render` builds the HTML
with those links. The HTML always goes through :func:`xnode.text.sanitize_html`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from xnode.text import sanitize_html

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# One pattern for everything that becomes a link, so they never overlap.
# Mentions and hashtags must not follow a word character (e-mail addresses,
# URL fragments), a slash or another @/#.
_ENTITY = re.compile(
    r"(?P<url>https?://[^\s<>\"'`]+)"
    r"|(?<![\w@#/])@(?P<user>[A-Za-z0-9_]{1,64})(?:@(?P<host>(?:[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
    r"|localhost|\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?))?"
    r"|(?<![\w@#/&])#(?P<tag>\w{1,100})",
    re.UNICODE,
)
_TRAILING = ".,;:!?'\"*"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Handle:
    """A mentioned ``@user`` (domain None: this node, or as written) or ``@user@host``."""

    username: str
    domain: str | None

    @property
    def key(self) -> str:
        """Lower-cased ``user`` or ``user@host``, for lookups."""
        text = self.username if self.domain is None else f"{self.username}@{self.domain}"
        return text.lower()


@dataclass(frozen=True)
class Entities:
    """What a post's source refers to."""

    handles: tuple[Handle, ...]
    tags: tuple[str, ...]


def normalize_tag(tag: str) -> str:
    """The canonical form of a hashtag: NFKC, case-folded, without ``#``."""
    return unicodedata.normalize("NFKC", tag.lstrip("#")).casefold()


def _trim_url(url: str) -> str:
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count(")") > url.count("("))):
        url = url[:-1]
    return url


def extract_entities(source: str) -> Entities:
    """Find the mentions and hashtags in a post's source (first occurrence order)."""
    handles: dict[str, Handle] = {}
    tags: dict[str, None] = {}
    for match in _ENTITY.finditer(source):
        if match["user"]:
            handle = Handle(match["user"], match["host"].lower() if match["host"] else None)
            handles.setdefault(handle.key, handle)
        elif match["tag"] and not match["tag"].isdigit():
            tags.setdefault(normalize_tag(match["tag"]), None)
    return Entities(tuple(handles.values()), tuple(tags))


@dataclass(frozen=True)
class LinkTargets:
    """Where mentions and hashtags link to.

    ``mentions`` maps :attr:`Handle.key` to a profile URL; a handle not in the
    map (unknown account) stays plain text.
    """

    mentions: Mapping[str, str]
    tag_url: Callable[[str], str]


def _entity_html(match: re.Match[str], targets: LinkTargets) -> tuple[str, int]:
    """HTML for one matched entity and how many source characters it consumed."""
    text = match.group(0)
    if match["url"]:
        url = _trim_url(text)
        escaped = html.escape(url)
        return f'<a href="{escaped}">{escaped}</a>', len(url)
    if match["user"]:
        handle = Handle(match["user"], match["host"].lower() if match["host"] else None)
        href = targets.mentions.get(handle.key)
        if href is None:
            return html.escape(text), len(text)
        return (
            f'<span class="h-card"><a class="u-url mention" href="{html.escape(href)}">'
            f"@<span>{html.escape(handle.username)}</span></a></span>",
            len(text),
        )
    tag = match["tag"]
    if tag.isdigit():
        return html.escape(text), len(text)
    href = html.escape(targets.tag_url(normalize_tag(tag)))
    return (
        f'<a class="mention hashtag" href="{href}" rel="tag">#<span>{html.escape(tag)}</span></a>',
        len(text),
    )


def linkify(text: str, targets: LinkTargets) -> str:
    """Escape ``text`` and turn its URLs, known mentions and hashtags into links."""
    parts: list[str] = []
    position = 0
    for match in _ENTITY.finditer(text):
        if match.start() < position:
            continue
        parts.append(html.escape(text[position : match.start()]))
        fragment, consumed = _entity_html(match, targets)
        parts.append(fragment)
        position = match.start() + consumed
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def render_plain(source: str, targets: LinkTargets) -> str:
    """Plain text to HTML: paragraphs on blank lines, ``<br>`` on line breaks, links."""
    text = source.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    blocks = [b for b in _PARAGRAPH_BREAK.split(text) if b.strip()]
    rendered = "".join(
        "<p>" + "<br>".join(linkify(line, targets) for line in block.split("\n")) + "</p>"
        for block in blocks
    )
    return sanitize_html(rendered)


@cache
def _markdown() -> MarkdownIt:
    # Imported on first use: start-up does not pay for the Markdown parser.
    from markdown_it import MarkdownIt

    # Raw HTML in the source is treated as text ("html": False); the output is
    # sanitised afterwards anyway.
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).disable("image")


def render_markdown(source: str, targets: LinkTargets) -> str:
    """Markdown to HTML, with mentions, hashtags and bare URLs linked outside code."""
    md = _markdown()
    tokens = md.parse(source)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _link_entities(token.children, targets)
    return sanitize_html(md.renderer.render(tokens, md.options, {}))


def _link_entities(children: list[Any], targets: LinkTargets) -> list[Any]:
    """Replace text tokens outside existing links with linkified HTML tokens."""
    from markdown_it.token import Token

    result = []
    depth = 0
    for child in children:
        if child.type == "link_open":
            depth += 1
        elif child.type == "link_close":
            depth -= 1
        if child.type == "text" and depth == 0 and _ENTITY.search(child.content):
            token = Token("html_inline", "", 0)
            token.content = linkify(child.content, targets)
            result.append(token)
        else:
            result.append(child)
    return result


def render(source: str, source_format: str, targets: LinkTargets) -> str:
    """Render a post's source in its format (``plain`` or ``markdown``)."""
    if source_format == "markdown":
        return render_markdown(source, targets)
    return render_plain(source, targets)


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment (for search and feeds' plain parts)."""
    text = re.sub(r"<br\s*/?>|</p>", "\n", fragment)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()
