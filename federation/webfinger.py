"""WebFinger (RFC 7033) and host-meta (RFC 6415): handles, JRD documents, XRD templates.

Pure functions: fetching ``/.well-known/webfinger`` is the caller's job (see
``federation.http``). The rules that matter for safety live in
``resolve_actor_url``: a JRD only vouches for accounts on the host that served it.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import idna

from federation import json_text

JRD_CONTENT_TYPE: Final = "application/jrd+json"
XRD_CONTENT_TYPE: Final = "application/xrd+xml"
ACTIVITY_JSON: Final = "application/activity+json"
LD_JSON_AS: Final = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
PROFILE_PAGE_REL: Final = "http://webfinger.net/rel/profile-page"
SUBSCRIBE_REL: Final = "http://ostatus.org/schema/1.0/subscribe"
SELF_REL: Final = "self"
LRDD_REL: Final = "lrdd"
XRD_NS: Final = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
AS_PROFILE: Final = "https://www.w3.org/ns/activitystreams"

MAX_HANDLE_LENGTH: Final = 320
MAX_LINKS: Final = 200
MAX_HOST_META_BYTES: Final = 64 * 1024

# RFC 7565 userpart: unreserved / sub-delims / pct-encoded. In practice usernames are
# [A-Za-z0-9_.-] (Mastodon, Lemmy, Misskey); we accept the RFC set minus characters
# that would be ambiguous in a URL path or a mention (@ / : ? # and whitespace).
_USERNAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]{1,256}")
# A DNS label after IDNA encoding. Underscores are not valid in host names but do
# occur in test setups (GNU social's ``another_instance.gnusocial.test``).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


class WebFingerError(ValueError):
    """Base class for WebFinger parse and validation errors."""


class InvalidHandle(WebFingerError):
    """Text that is not a ``user@host`` handle."""


class InvalidJrd(WebFingerError):
    """A document that is not a JRD."""


class WebFingerMismatch(WebFingerError):
    """A JRD that does not vouch for the account it was asked about."""


class NoActorLink(WebFingerError):
    """A JRD without an ActivityPub ``self`` link."""


class InvalidHostMeta(WebFingerError):
    """A host-meta document without a usable WebFinger template."""


@dataclass(frozen=True)
class Handle:
    """A ``user@host`` account handle.

    ``host`` is the ASCII (IDNA) form, lower-cased, with ``:port`` when one was given
    (test servers); ``username`` keeps its case, as servers compare it themselves.
    """

    username: str
    host: str

    @property
    def acct(self) -> str:
        """The ``acct:`` URI (RFC 7565)."""
        return f"acct:{self.username}@{self.host}"

    @property
    def hostname(self) -> str:
        """The host without a port."""
        return split_host_port(self.host)[0]

    def __str__(self) -> str:
        return f"{self.username}@{self.host}"


def split_host_port(host: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 literals in brackets) into host and port."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
        return host[: end + 1], int(port) if port else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, int(port)
    return host, None


def normalise_host(host: str) -> str:
    """The canonical form of a host with an optional port: IDNA-encoded and lower-cased.

    Raises:
        InvalidHandle: not a valid host name, IPv4 address or bracketed IPv6 address.
    """
    if not host or len(host) > 260 or any(ch.isspace() for ch in host):
        raise InvalidHandle(f"invalid host {host!r}")
    name, port_text = host, None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise InvalidHandle(f"invalid IPv6 literal in {host!r}")
        name, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise InvalidHandle(f"invalid host {host!r}")
            port_text = rest[1:]
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError as exc:
            raise InvalidHandle(f"invalid IPv6 literal in {host!r}") from exc
    elif ":" in host:
        name, _, port_text = host.rpartition(":")
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidHandle(f"invalid port in {host!r}")
        port_text = str(int(port_text))
    if not name.startswith("["):
        name = _normalise_name(name, host)
    return f"{name}:{port_text}" if port_text is not None else name


def _normalise_name(name: str, original: str) -> str:
    name = name.rstrip(".")
    try:
        ipaddress.IPv4Address(name)
        return name
    except ValueError:
        pass
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        # idna refuses underscores; allow an all-ASCII name through to the label check.
        if not name.isascii():
            raise InvalidHandle(f"invalid host {original!r}") from None
        ascii_name = name.lower()
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidHandle(f"invalid host {original!r}")
    if labels[-1].isdigit():
        # "1.2.3" or "example.123" are not host names; only dotted quads (above) are.
        raise InvalidHandle(f"invalid host {original!r}")
    return ascii_name


def parse_handle(text: str) -> Handle:
    """Parse ``user@host``, ``@user@host`` or ``acct:user@host``.

    Hosts may be internationalised (stored in IDNA form), IP literals, or carry a
    port (test servers such as ``localhost:3000``).

    Args:
        text: the handle as typed or found in a document.

    Returns:
        The parsed handle.

    Raises:
        InvalidHandle: anything else (empty parts, extra ``@``, spaces, paths...).
    """
    if not isinstance(text, str):
        raise InvalidHandle("a handle must be a string")
    value = text.strip()
    if not value or len(value) > MAX_HANDLE_LENGTH:
        raise InvalidHandle(f"invalid handle {text!r}")
    if value[:5].lower() == "acct:":
        value = value[5:]
    elif value.startswith("@"):
        value = value[1:]
    username, sep, host = value.partition("@")
    if not sep or "@" in host or not _USERNAME.fullmatch(username):
        raise InvalidHandle(f"invalid handle {text!r}")
    if any(ch in host for ch in "/?#\\"):
        raise InvalidHandle(f"invalid handle {text!r}")
    return Handle(username=username, host=normalise_host(host))


def webfinger_url(handle: Handle, *, scheme: str = "https", template: str | None = None) -> str:
    """The WebFinger query URL for a handle (``template`` from host-meta when delegated)."""
    if template:
        return template.replace("{uri}", quote(handle.acct, safe=""))
    resource = quote(handle.acct, safe="@:")
    return f"{scheme}://{handle.host}/.well-known/webfinger?resource={resource}"


# --- building our own documents ------------------------------------------------


def build_jrd(
    *,
    handle: Handle,
    actor_url: str,
    profile_url: str | None = None,
    aliases: Sequence[str] = (),
    subscribe_template: str | None = None,
) -> dict[str, Any]:
    """The JRD for one of our own actors.

    The ``self`` link uses ``application/activity+json``, which every server
    accepts; Pleroma additionally lists the ``ld+json`` form, which adds nothing.

    Args:
        handle: the actor's handle (becomes ``subject``).
        actor_url: the actor document URL (``self`` link, first alias).
        profile_url: the HTML profile page, if any.
        aliases: further aliases (listed after the actor and profile URLs).
        subscribe_template: remote-follow template with ``{uri}``, if any.
    """
    profile = [profile_url] if profile_url else []
    all_aliases = list(dict.fromkeys([actor_url, *profile, *aliases]))
    links: list[dict[str, str]] = []
    if profile_url:
        links.append({"rel": PROFILE_PAGE_REL, "type": "text/html", "href": profile_url})
    links.append({"rel": SELF_REL, "type": ACTIVITY_JSON, "href": actor_url})
    if subscribe_template:
        links.append({"rel": SUBSCRIBE_REL, "template": subscribe_template})
    return {"subject": handle.acct, "aliases": all_aliases, "links": links}


def build_host_meta(base_url: str) -> str:
    """The host-meta XRD pointing at our WebFinger endpoint (for OStatus-era clients)."""
    template = base_url.rstrip("/") + "/.well-known/webfinger?resource={uri}"
    escaped = template.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<XRD xmlns="{XRD_NS}">\n'
        f'  <Link rel="{LRDD_REL}" type="{XRD_CONTENT_TYPE}" template="{escaped}"/>\n'
        "</XRD>\n"
    )


# --- reading remote documents --------------------------------------------------


@dataclass(frozen=True)
class JrdLink:
    """One entry of a JRD's ``links``."""

    rel: str
    type: str | None = None
    href: str | None = None
    template: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Jrd:
    """A parsed JSON Resource Descriptor."""

    subject: str | None
    aliases: tuple[str, ...]
    links: tuple[JrdLink, ...]
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def links_with_rel(self, rel: str) -> list[JrdLink]:
        """All links with the given relation."""
        return [link for link in self.links if link.rel == rel]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_jrd(doc: Any) -> Jrd:
    """Read a JRD document (already JSON-decoded).

    Malformed individual links (no ``rel``, wrong types) are skipped; Lemmy sends
    ``"template": null`` and GNU social escapes slashes, both of which are fine.

    Raises:
        InvalidJrd: the document is not an object, or ``links``/``aliases`` are not lists.
    """
    if not isinstance(doc, Mapping):
        raise InvalidJrd("a JRD must be a JSON object")
    links_value = doc.get("links", [])
    aliases_value = doc.get("aliases", [])
    if not isinstance(links_value, list) or not isinstance(aliases_value, list):
        raise InvalidJrd("JRD links and aliases must be arrays")
    if len(links_value) > MAX_LINKS or len(aliases_value) > MAX_LINKS:
        raise InvalidJrd("JRD lists too many links")
    subject = doc.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidJrd("JRD subject must be a string")
    links = []
    for entry in links_value:
        if not isinstance(entry, Mapping) or not _str_or_none(entry.get("rel")):
            continue
        properties = entry.get("properties")
        links.append(
            JrdLink(
                rel=entry["rel"],
                type=_str_or_none(entry.get("type")),
                href=_str_or_none(entry.get("href")),
                template=_str_or_none(entry.get("template")),
                properties=dict(properties) if isinstance(properties, Mapping) else {},
            )
        )
    properties = doc.get("properties")
    return Jrd(
        subject=subject or None,
        aliases=tuple(alias for alias in aliases_value if isinstance(alias, str) and alias),
        links=tuple(links),
        properties=dict(properties) if isinstance(properties, Mapping) else {},
    )


def is_activitypub_media_type(media_type: str | None) -> bool:
    """Whether a media type names an ActivityStreams document.

    Accepts ``application/activity+json`` and ``application/ld+json`` with the
    ActivityStreams profile, with any spacing, quoting and case.
    """
    if not media_type:
        return False
    main, *params = (part.strip() for part in media_type.split(";"))
    main = main.lower()
    if main == ACTIVITY_JSON:
        return True
    if main != "application/ld+json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "profile":
            profiles = value.strip().strip('"').split()
            return AS_PROFILE in profiles
    return False


def _is_http_url(value: str | None, *, allow_http: bool) -> bool:
    if not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return parts.scheme in schemes and bool(parts.hostname)


def find_actor_url(jrd: Jrd, *, allow_http: bool = False) -> str | None:
    """The ActivityPub actor URL from a JRD's ``self`` link, or None."""
    for link in jrd.links_with_rel(SELF_REL):
        if is_activitypub_media_type(link.type) and _is_http_url(link.href, allow_http=allow_http):
            return link.href
    return None


def find_profile_url(jrd: Jrd) -> str | None:
    """The HTML profile page from a JRD, or None."""
    for link in jrd.links_with_rel(PROFILE_PAGE_REL):
        if link.href:
            return link.href
    return None


@dataclass(frozen=True)
class Resolution:
    """What a JRD says about an account.

    ``same_origin`` is False when the actor lives on another host than the one
    that vouched for the handle (split-domain setups such as a handle on
    ``example.com`` with the server on ``social.example.com``). Callers must then
    confirm the mapping from the actor's side (its host's WebFinger for
    ``preferredUsername``) before trusting the handle.
    """

    handle: Handle
    actor_url: str
    same_origin: bool


def resolve_actor_url(
    jrd: Jrd,
    *,
    served_by: str,
    requested: Handle | None = None,
    allow_http: bool = False,
) -> Resolution:
    """Check that a JRD vouches for an account and return its actor URL.

    The rule: the ``subject`` must be an account on the host that served the JRD
    (after any host-meta delegation, which is how ``user@sdf.org`` resolves to
    ``user@mastodon.sdf.org``). A JRD without a subject (Mastodon 2.x) only vouches
    for the requested handle, and only if it was served by that handle's host.

    Args:
        jrd: the parsed document.
        served_by: host (with port, if any) that answered the WebFinger query.
        requested: the handle that was asked for, if known.
        allow_http: accept ``http:`` actor URLs (test setups only).

    Returns:
        The canonical handle and the actor URL.

    Raises:
        WebFingerMismatch: the subject is malformed or on another host.
        NoActorLink: there is no ActivityPub ``self`` link.
    """
    try:
        host = normalise_host(served_by)
    except InvalidHandle as exc:
        raise WebFingerMismatch(f"invalid serving host {served_by!r}") from exc
    if jrd.subject is not None:
        try:
            handle = parse_handle(jrd.subject)
        except InvalidHandle as exc:
            # Hubzilla has sent ``acct:kaniini`` with no host at all.
            raise WebFingerMismatch(f"JRD subject {jrd.subject!r} is not an account") from exc
    elif requested is not None:
        handle = requested
    else:
        raise WebFingerMismatch("JRD has no subject and no handle was requested")
    if handle.host != host:
        raise WebFingerMismatch(f"{handle} is not vouched for by {host}")
    actor_url = find_actor_url(jrd, allow_http=allow_http)
    if actor_url is None:
        raise NoActorLink(f"no ActivityPub self link for {handle}")
    actor_host = urlsplit(actor_url).netloc.lower()
    return Resolution(handle=handle, actor_url=actor_url, same_origin=actor_host == host)


def parse_host_meta(text: str | bytes) -> str:
    """The WebFinger (``lrdd``) template from a host-meta document (XRD or JRD form).

    Raises:
        InvalidHostMeta: not parseable, too large, uses DTDs/entities, or has no template.
    """
    if len(text) > MAX_HOST_META_BYTES:
        raise InvalidHostMeta("host-meta document too large")
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    stripped = raw.lstrip()
    if stripped.startswith("{"):
        return _host_meta_from_json(stripped)
    # Entity expansion is the classic XML bomb; host-meta never needs a DTD.
    if "<!DOCTYPE" in raw.upper() or "<!ENTITY" in raw.upper():
        raise InvalidHostMeta("host-meta must not contain a DTD")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise InvalidHostMeta(f"host-meta is not XML: {exc}") from exc
    for element in root.iter():
        if element.tag in (f"{{{XRD_NS}}}Link", "Link") and element.get("rel") == LRDD_REL:
            template = element.get("template")
            if template and "{uri}" in template and _is_http_url(template, allow_http=True):
                return template
    raise InvalidHostMeta("host-meta has no lrdd template")


def _host_meta_from_json(text: str) -> str:
    try:
        doc = json_text.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidHostMeta("host-meta JSON is not valid") from exc
    try:
        jrd = parse_jrd(doc)
    except InvalidJrd as exc:
        raise InvalidHostMeta(str(exc)) from exc
    for link in jrd.links_with_rel(LRDD_REL):
        template = link.template
        if template and "{uri}" in template and _is_http_url(template, allow_http=True):
            return template
    raise InvalidHostMeta("host-meta has no lrdd template")
