"""Normalised views of incoming activities and posts.

``parse_activity`` and ``parse_note`` turn whatever a server sent into frozen
dataclasses with one shape: lists are tuples, references are IRIs, embedded
objects stay available as dicts, dates are aware datetimes. They never trust
and never sanitise: HTML stays as received (the node sanitises), and whether an
embedded object may be believed is reported (``embedded_object_trusted``), not
decided. Anything hostile or unusable raises ``InvalidObject`` with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from federation.jsonld import (
    PUBLIC_ADDRESSES,
    DocumentTooComplex,
    JsonLdError,
    as_list,
    check_limits,
    first,
    id_of,
    ids_of,
    is_public,
    language_map_value,
    needs_normalisation,
    normalise_with_jsonld,
)

# Re-exported (``name as name``): the node and federation.actors import them from here.
from federation.urls import is_http_url as is_http_url
from federation.urls import origin_of as origin_of
from federation.urls import same_origin as same_origin

logger = logging.getLogger(__name__)

MAX_DEPTH: Final = 24
MAX_NODES: Final = 20_000
MAX_ADDRESSES: Final = 5_000
MAX_TAGS: Final = 1_000
MAX_ATTACHMENTS: Final = 100

# Post-like object types. Mastodon turns all of these into statuses (Page and
# Article from Lemmy/WordPress, Event from Mobilizon, Video from PeerTube...);
# ChatMessage is Pleroma's and Lemmy 0.19's direct-message type.
NOTE_TYPES: Final = frozenset(
    {"Note", "Article", "Page", "Question", "ChatMessage", "Event", "Video", "Audio", "Image"}
)

# Terms whose compact-IRI spelling (``as:content``) sends a document through the
# JSON-LD fallback; other prefixed keys (``diaspora:guid``) are left alone.
READ_TERMS: Final = frozenset(
    {
        "id", "type", "actor", "object", "target", "to", "cc", "bto", "bcc", "audience",
        "published", "updated", "attributedTo", "content", "summary", "name", "sensitive",
        "inReplyTo", "tag", "attachment", "url", "context", "conversation", "oneOf", "anyOf",
        "endTime", "closed", "votersCount", "preferredUsername", "inbox", "outbox",
        "followers", "following", "endpoints", "sharedInbox", "publicKey", "assertionMethod",
        "icon", "image", "manuallyApprovesFollowers", "discoverable", "alsoKnownAs",
        "movedTo", "featured", "quoteUrl", "quoteUri", "contentMap", "summaryMap", "nameMap",
    }
)  # fmt: skip


class InvalidObject(ValueError):
    """An incoming object or activity that cannot be used; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidActivity(InvalidObject):
    """An incoming activity that cannot be used."""


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime; None when absent or unreadable.

    Pleroma's poll ``closed`` has no timezone; it is read as UTC.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def url_of(value: Any, *, prefer_media_type: str | None = "text/html") -> str | None:
    """A URL from a ``url``/``href``-shaped value.

    Accepts a string, a Link (``href``), an object with ``url`` (Image), or a list
    of those (PeerTube and Funkwhale send many Links; the ``text/html`` one is
    the page for people, hence the default preference).
    """
    candidates: list[tuple[str, str | None]] = []
    for item in as_list(value)[:64]:
        if isinstance(item, str):
            candidates.append((item, None))
        elif isinstance(item, Mapping):
            media_type = item.get("mediaType") or item.get("mimeType")
            media_type = media_type if isinstance(media_type, str) else None
            href = item.get("href")
            if isinstance(href, str):
                candidates.append((href, media_type))
            else:
                nested = url_of(item.get("url"), prefer_media_type=None) if "url" in item else None
                if nested:
                    candidates.append((nested, media_type))
    candidates = [(url, kind) for url, kind in candidates if is_http_url(url)]
    if prefer_media_type:
        for url, kind in candidates:
            if kind and kind.split(";")[0].strip().lower() == prefer_media_type:
                return url
    return candidates[0][0] if candidates else None


def type_of(value: Any) -> str | None:
    """The first string ``type`` of an object (Mastodon sends one, some servers a list)."""
    if not isinstance(value, Mapping):
        return None
    for kind in as_list(value.get("type")):
        if isinstance(kind, str) and kind:
            return kind
    return None


def bool_of(value: Any) -> bool | None:
    """A boolean property that some servers send as a string ("true") or null."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def str_of(value: Any) -> str | None:
    """A string property, or None for anything else."""
    return value if isinstance(value, str) else None


def prepare(
    doc: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> dict[str, Any]:
    """Check limits and, for documents with IRI-style keys, overlay the JSON-LD normal form.

    The normalised document wins for the keys it has; keys it dropped (terms from
    contexts we do not bundle) keep their received value.

    Raises:
        InvalidObject: not an object, or beyond the size/depth limits.
    """
    if not isinstance(doc, Mapping):
        raise InvalidObject("expected a JSON object")
    try:
        check_limits(doc, max_depth=max_depth, max_nodes=max_nodes)
    except DocumentTooComplex as exc:
        raise InvalidObject(str(exc)) from exc
    view = dict(doc)
    if needs_normalisation(view, terms=READ_TERMS):
        try:
            view.update(normalise_with_jsonld(view, max_depth=max_depth, max_nodes=max_nodes))
        except JsonLdError as exc:
            logger.debug("JSON-LD normalisation failed, reading as received: %s", exc)
    return view


def _addresses(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if isinstance(value, list) and len(value) > MAX_ADDRESSES:
        raise InvalidObject(f"{key} lists more than {MAX_ADDRESSES} addresses")
    return tuple(iri for iri in ids_of(value) if iri in PUBLIC_ADDRESSES or is_http_url(iri))


# --- activities ----------------------------------------------------------------


@dataclass(frozen=True)
class ParsedActivity:
    """An activity in one shape.

    ``object`` is the first object, as an IRI or an embedded dict; ``objects`` has
    all of them (Flag reports several). ``raw`` is the document as received.
    """

    id: str | None
    type: str
    actor: str
    object: str | Mapping[str, Any] | None
    objects: tuple[str | Mapping[str, Any], ...]
    target: str | Mapping[str, Any] | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    audience: tuple[str, ...]
    published: datetime | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def object_id(self) -> str | None:
        """The IRI of the (first) object."""
        return id_of(self.object)

    @property
    def object_ids(self) -> tuple[str, ...]:
        """The IRIs of all objects."""
        return tuple(ids_of(list(self.objects)))

    @property
    def embedded_object(self) -> Mapping[str, Any] | None:
        """The (first) object when it was embedded rather than referenced."""
        return self.object if isinstance(self.object, Mapping) else None

    @property
    def object_type(self) -> str | None:
        """The embedded object's type, if embedded."""
        return type_of(self.object)

    @property
    def target_id(self) -> str | None:
        """The IRI of the target (a collection for Add/Remove, a group for Lemmy)."""
        return id_of(self.target)

    @property
    def recipients(self) -> tuple[str, ...]:
        """Everyone addressed: to, cc and audience, deduplicated."""
        return tuple(dict.fromkeys((*self.to, *self.cc, *self.audience)))

    @property
    def is_public(self) -> bool:
        """Whether the activity is addressed to the public collection."""
        return is_public(list(self.recipients))

    @property
    def embedded_object_trusted(self) -> bool:
        """Whether the embedded object may be believed without fetching it.

        Only when it comes from the actor's own server: its id (if any) and its
        author (``attributedTo``/``actor``, if any) are on the actor's host. A
        Mastodon boost embedding someone else's post, or an Accept embedding the
        Follow we sent, is not: look those up by id instead.
        """
        embedded = self.embedded_object
        if embedded is None:
            return False
        object_id = id_of(embedded)
        if object_id is not None and not same_origin(object_id, self.actor):
            return False
        author = id_of(embedded.get("attributedTo")) or id_of(embedded.get("actor"))
        return author is None or same_origin(author, self.actor)


def _object_value(value: Any) -> str | Mapping[str, Any] | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        return value
    return None


def parse_activity(doc: Any, *, require_same_origin: bool = True) -> ParsedActivity:
    """Read an incoming activity.

    Args:
        doc: the JSON-decoded activity.
        require_same_origin: refuse an activity whose id is on another host than its
            actor (a spoofing sign; Mastodon drops these too).

    Returns:
        The normalised activity.

    Raises:
        InvalidActivity: not an activity (no type or actor), malformed ids, or
            limits exceeded.
    """
    try:
        view = prepare(doc)
    except InvalidObject as exc:
        raise InvalidActivity(exc.reason) from exc
    kind = type_of(view)
    if kind is None:
        raise InvalidActivity("activity has no type")
    actor = id_of(view.get("actor"))
    if actor is None:
        raise InvalidActivity(f"{kind} has no actor")
    if not is_http_url(actor):
        raise InvalidActivity(f"actor {actor!r} is not an http(s) URL")
    activity_id = view.get("id")
    if activity_id is not None:
        if not is_http_url(activity_id):
            raise InvalidActivity(f"activity id {activity_id!r} is not an http(s) URL")
        if require_same_origin and not same_origin(activity_id, actor):
            raise InvalidActivity(f"activity {activity_id} is not on the actor's host")
    raw_objects = view.get("object")
    if isinstance(raw_objects, list) and len(raw_objects) > MAX_ADDRESSES:
        raise InvalidActivity("too many objects")
    objects = tuple(
        value for value in map(_object_value, as_list(raw_objects)) if value is not None
    )
    try:
        to, cc, audience = (_addresses(view, key) for key in ("to", "cc", "audience"))
    except InvalidObject as exc:
        raise InvalidActivity(exc.reason) from exc
    return ParsedActivity(
        id=activity_id,
        type=kind,
        actor=actor,
        object=objects[0] if objects else None,
        objects=objects,
        target=_object_value(first(view.get("target"))),
        to=to,
        cc=cc,
        audience=audience,
        published=parse_datetime(view.get("published")),
        raw=doc,
    )


# --- posts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """A Mention, Hashtag or Emoji from ``tag``.

    ``name`` is as sent (``@user@host``, ``#tag``, ``:shortcode:``); ``href`` is the
    mentioned actor or the tag page; ``icon_url`` is an Emoji's image.
    """

    type: str
    name: str | None
    href: str | None
    icon_url: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A media attachment (Document, Image, Video, Audio, or a Link)."""

    type: str | None
    url: str
    media_type: str | None
    name: str | None
    blurhash: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class PollOption:
    """One answer of a Question and its vote count (when published)."""

    name: str
    votes: int | None


@dataclass(frozen=True)
class Poll:
    """A Question's options: ``oneOf`` (single choice) or ``anyOf`` (multiple)."""

    options: tuple[PollOption, ...]
    multiple: bool
    end_time: datetime | None
    closed: datetime | None
    voters_count: int | None


@dataclass(frozen=True)
class ParsedNote:
    """A post-like object (Note, Article, Page, Question, ChatMessage...).

    ``content`` is HTML as received (``""`` when absent; poll votes carry only a
    ``name``). ``content_map`` keeps every language; ``language`` is the tag of
    ``content`` when the map says which one it is.
    """

    id: str
    type: str
    attributed_to: str
    content: str
    content_map: Mapping[str, str]
    language: str | None
    summary: str | None
    name: str | None
    sensitive: bool
    in_reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    audience: tuple[str, ...]
    tags: tuple[Tag, ...]
    attachments: tuple[Attachment, ...]
    published: datetime | None
    updated: datetime | None
    url: str | None
    context: str | None
    conversation: str | None
    quote_url: str | None
    poll: Poll | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def mentions(self) -> tuple[str, ...]:
        """Actor IRIs from Mention tags."""
        return tuple(tag.href for tag in self.tags if tag.type == "Mention" and tag.href)

    @property
    def hashtags(self) -> tuple[str, ...]:
        """Hashtag names without the leading ``#``."""
        return tuple(
            tag.name.lstrip("#") for tag in self.tags if tag.type == "Hashtag" and tag.name
        )

    @property
    def emojis(self) -> tuple[Tag, ...]:
        """Custom emoji tags."""
        return tuple(tag for tag in self.tags if tag.type == "Emoji")

    @property
    def recipients(self) -> tuple[str, ...]:
        """Everyone addressed: to, cc and audience, deduplicated."""
        return tuple(dict.fromkeys((*self.to, *self.cc, *self.audience)))

    @property
    def is_public(self) -> bool:
        """Whether the post is addressed to the public collection."""
        return is_public(list(self.recipients))


def _int_of(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _parse_tag(item: Any) -> Tag | None:
    kind = type_of(item)
    if kind not in ("Mention", "Hashtag", "Emoji"):
        # Lemmy's CommunityPostTag, BookWyrm's Edition, Hubzilla's PropertyValue...
        return None
    assert isinstance(item, Mapping)
    name = str_of(item.get("name"))
    href = str_of(item.get("href"))
    icon_url = url_of(item.get("icon"), prefer_media_type=None) if kind == "Emoji" else None
    if kind == "Emoji" and (not name or not icon_url):
        return None
    if kind == "Mention" and not href:
        return None
    return Tag(type=kind, name=name, href=href, icon_url=icon_url, id=str_of(item.get("id")))


def _parse_attachment(item: Any) -> Attachment | None:
    if isinstance(item, str):
        if not is_http_url(item):
            return None
        return Attachment(type=None, url=item, media_type=None, name=None)
    if not isinstance(item, Mapping):
        return None
    kind = type_of(item)
    if kind == "PropertyValue":
        return None  # profile fields, not media
    url = url_of(item.get("url"), prefer_media_type=None) if "url" in item else None
    url = url or url_of(item.get("href"), prefer_media_type=None)
    if url is None:
        return None
    media_type = str_of(item.get("mediaType")) or str_of(item.get("mimeType"))
    name = str_of(item.get("name")) or str_of(item.get("content")) or None
    return Attachment(
        type=kind,
        url=url,
        media_type=media_type,
        name=name,
        blurhash=str_of(item.get("blurhash")),
        width=_int_of(item.get("width")),
        height=_int_of(item.get("height")),
    )


def _parse_poll(view: Mapping[str, Any]) -> Poll | None:
    multiple = bool(as_list(view.get("anyOf")))
    raw_options = as_list(view.get("anyOf") if multiple else view.get("oneOf"))
    options = []
    for option in raw_options[:MAX_TAGS]:
        name = language_map_value(option, "name") if isinstance(option, Mapping) else None
        if not name:
            continue
        replies = option.get("replies")
        votes = _int_of(replies.get("totalItems")) if isinstance(replies, Mapping) else None
        options.append(PollOption(name=name, votes=votes))
    if not options:
        return None
    return Poll(
        options=tuple(options),
        multiple=multiple,
        end_time=parse_datetime(view.get("endTime")),
        closed=parse_datetime(view.get("closed")),
        voters_count=_int_of(view.get("votersCount")),
    )


def _author(value: Any) -> str | None:
    """The posting actor from ``attributedTo``.

    PeerTube attributes a video to ``[Person, Group]`` (account and channel): the
    Person is the author.
    """
    entries = as_list(value)
    for entry in entries:
        if isinstance(entry, Mapping) and type_of(entry) == "Person" and id_of(entry):
            return id_of(entry)
    return id_of(entries)


def _content_language(view: Mapping[str, Any], content: str) -> str | None:
    content_map = view.get("contentMap")
    if not isinstance(content_map, Mapping):
        return None
    for tag, value in content_map.items():
        if value == content and isinstance(tag, str):
            return tag
    return None


def parse_note(doc: Any, *, default_author: str | None = None) -> ParsedNote:
    """Read a post-like object (Note, Article, Page, Question, ChatMessage, ...).

    Args:
        doc: the object (embedded in a Create/Update, or fetched by id).
        default_author: used when the object has no ``attributedTo`` (the
            activity's actor, for servers that only put it there).

    Returns:
        The normalised post.

    Raises:
        InvalidObject: not a post-like type, no id, no author, or limits exceeded.
    """
    view = prepare(doc)
    kind = type_of(view)
    if kind not in NOTE_TYPES:
        raise InvalidObject(f"{kind!r} is not a post type")
    note_id = view.get("id")
    if not is_http_url(note_id):
        raise InvalidObject(f"{kind} id {note_id!r} is not an http(s) URL")
    author = _author(view.get("attributedTo")) or default_author
    if author is None or not is_http_url(author):
        raise InvalidObject(f"{kind} {note_id} has no usable attributedTo")
    raw_tags, raw_attachments = as_list(view.get("tag")), as_list(view.get("attachment"))
    if len(raw_tags) > MAX_TAGS or len(raw_attachments) > MAX_ATTACHMENTS:
        raise InvalidObject(f"{kind} {note_id} has too many tags or attachments")
    content = language_map_value(view, "content") or ""
    content_map = view.get("contentMap")
    quote = next(
        (
            value
            for key in ("quoteUrl", "quoteUri", "quoteURL", "_misskey_quote")
            if is_http_url(value := view.get(key))
        ),
        None,
    )
    return ParsedNote(
        id=note_id,
        type=kind,
        attributed_to=author,
        content=content,
        content_map={
            tag: value
            for tag, value in (content_map.items() if isinstance(content_map, Mapping) else ())
            if isinstance(tag, str) and isinstance(value, str)
        },
        language=_content_language(view, content),
        summary=language_map_value(view, "summary") or None,
        name=language_map_value(view, "name") or None,
        sensitive=bool_of(view.get("sensitive")) is True,
        # Placeholders such as ``{{LOCAL_POST_URL}}`` (test data) are not replies.
        in_reply_to=reply_to if is_http_url(reply_to := id_of(view.get("inReplyTo"))) else None,
        to=_addresses(view, "to"),
        cc=_addresses(view, "cc"),
        audience=_addresses(view, "audience"),
        tags=tuple(tag for tag in map(_parse_tag, raw_tags) if tag is not None),
        attachments=tuple(a for a in map(_parse_attachment, raw_attachments) if a is not None),
        published=parse_datetime(view.get("published")),
        updated=parse_datetime(view.get("updated")),
        url=url_of(view.get("url")),
        context=id_of(view.get("context")),
        conversation=id_of(view.get("conversation")),
        quote_url=quote,
        poll=_parse_poll(view) if kind == "Question" else None,
        raw=doc,
    )


# --- collections ---------------------------------------------------------------

COLLECTION_TYPES: Final = frozenset(
    {"Collection", "OrderedCollection", "CollectionPage", "OrderedCollectionPage"}
)


@dataclass(frozen=True)
class ParsedCollection:
    """A (page of a) collection: followers, outbox, featured, replies.

    ``items`` merges ``items`` and ``orderedItems`` as IRIs or embedded dicts;
    ``first``/``next`` may be IRIs or embedded pages (Pleroma embeds ``first``).
    """

    id: str | None
    type: str
    total_items: int | None
    items: tuple[str | Mapping[str, Any], ...]
    first: str | Mapping[str, Any] | None
    next: str | Mapping[str, Any] | None
    part_of: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def item_ids(self) -> tuple[str, ...]:
        """The IRIs of the items."""
        return tuple(ids_of(list(self.items)))


def parse_collection(doc: Any, *, max_items: int = MAX_ADDRESSES) -> ParsedCollection:
    """Read a Collection, OrderedCollection or one of their pages.

    Raises:
        InvalidObject: not a collection type, a malformed id, or too many items.
    """
    view = prepare(doc)
    kind = type_of(view)
    if kind not in COLLECTION_TYPES:
        raise InvalidObject(f"{kind!r} is not a collection type")
    collection_id = view.get("id")
    if collection_id is not None and not is_http_url(collection_id):
        raise InvalidObject(f"collection id {collection_id!r} is not an http(s) URL")
    raw_items = [*as_list(view.get("orderedItems")), *as_list(view.get("items"))]
    if len(raw_items) > max_items:
        raise InvalidObject(f"collection lists more than {max_items} items")
    return ParsedCollection(
        id=collection_id,
        type=kind,
        total_items=_int_of(view.get("totalItems")),
        items=tuple(item for item in map(_object_value, raw_items) if item is not None),
        first=_object_value(view.get("first")),
        next=_object_value(view.get("next")),
        part_of=id_of(view.get("partOf")),
        raw=doc,
    )
