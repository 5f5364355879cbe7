"""Text that people write, made safe to show: sanitising HTML, plain text to HTML.

Everything here is pure (no I/O, no settings), so the same functions serve
local profiles and posts as well as content arriving from other nodes. All
HTML that did not come from our own templates goes through
:func:`sanitize_html` before it is stored or shown; the sanitising itself is
nh3's (ammonia), never hand-written.
"""

from __future__ import annotations

import html
import re
import unicodedata

import nh3

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "a", "span", "strong", "em", "b", "i", "u", "s", "del",
        "code", "pre", "blockquote", "ul", "ol", "li",
        # Long-form articles (Markdown) need structure.
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "sup", "sub",
    }
)
# ``rel`` is not listed: nh3 sets it on every link (LINK_REL) and drops any
# value the author chose, so nobody can hand out "follow" or "opener".
# ``class`` is not listed either: ALLOWED_CLASSES allows it (nh3 refuses both).
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href"}}
# Only classes with a meaning in federated content survive (mentions, hashtags,
# Mastodon's link shortening); arbitrary classes would let a remote author
# borrow our own page styles to dress text up as part of the interface.
ALLOWED_CLASSES: dict[str, set[str]] = {
    "a": {"mention", "hashtag", "u-url", "url"},
    "span": {"h-card", "invisible", "ellipsis", "hashtag", "mention"},
}
# Elements dropped together with their content: what is inside them is code or
# markup, never text meant for a reader.
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "noscript", "template", "object", "embed", "svg", "math",
     "title", "textarea", "select"}
)
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"

# Characters that have no business in names: C0/C1 controls, and the bidi
# embedding/override/isolate marks that can make text display reversed
# (a classic way to disguise a name or link).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# http(s) URLs in plain text; trailing punctuation is trimmed afterwards.
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?'\"*"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


def sanitize_html(fragment: str) -> str:
    """Clean an HTML fragment down to a small, inert allow-list of tags.

    Scripts, styles and event handlers go; links keep only absolute http,
    https and mailto targets (relative ones are dropped, since remote content
    would otherwise point into this node) and always get ``rel="nofollow
    noopener noreferrer"``.
    """
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        allowed_classes={tag: set(classes) for tag, classes in ALLOWED_CLASSES.items()},
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )


def strip_control_chars(text: str, *, keep_newlines: bool = False) -> str:
    """Remove control and bidi-override characters (optionally keeping line breaks)."""
    if keep_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = "\n\t" if keep_newlines else ""
    return "".join(
        ch
        for ch in text
        if ch in kept or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )


def plain_text_to_html(text: str) -> str:
    """Turn what someone typed into safe HTML.

    The text is escaped, http(s) URLs become links, blank lines separate
    paragraphs and single line breaks become ``<br>``. The result is passed
    through :func:`sanitize_html` as well, so it is safe however it was built.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    paragraphs = [block for block in _PARAGRAPH_BREAK.split(text) if block.strip()]
    rendered = (
        "<p>" + "<br>".join(_linkify_line(line) for line in block.split("\n")) + "</p>"
        for block in paragraphs
    )
    return sanitize_html("".join(rendered))


def _linkify_line(line: str) -> str:
    """Escape one line of text, turning the URLs in it into links."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(line):
        url = _trim_url(match.group(0))
        start = match.start()
        parts.append(html.escape(line[position:start]))
        parts.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        position = start + len(url)
    parts.append(html.escape(line[position:]))
    return "".join(parts)


def _trim_url(url: str) -> str:
    """Drop sentence punctuation that follows a URL, and an unbalanced ')'."""
    while url and (
        url[-1] in _TRAILING_PUNCTUATION
        or (url[-1] == ")" and url.count(")") > url.count("("))
    ):
        url = url[:-1]
    return url
