"""Remote actor documents: parsed into a frozen ``RemoteActor``, or refused.

The checks that protect us live here: the id must be an absolute https URL (the
one we fetched, when the caller says which), the inbox must be on the actor's
host, and every key must belong to the actor (``owner``/``controller`` equal to
the id, key id on the actor's host). Everything else is read leniently, because
every server family spells something differently; the quirks are noted where
they are handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from federation.calls import actor_supports_calls
from federation.jsonld import as_list, id_of, ids_of, language_map_value
from federation.objects import (
    InvalidObject,
    bool_of,
    is_http_url,
    prepare,
    same_origin,
    str_of,
    type_of,
    url_of,
)

ACTOR_TYPES: Final = frozenset({"Person", "Group", "Service", "Application", "Organization"})
MAX_KEYS: Final = 20
MAX_FIELDS: Final = 50
MAX_ALIASES: Final = 100


class InvalidActor(ValueError):
    """An actor document we refuse to use; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PublicKey:
    """An RSA key from ``publicKey`` (used by HTTP signatures and RsaSignature2017)."""

    id: str
    owner: str
    pem: str


@dataclass(frozen=True)
class Multikey:
    """A key from ``assertionMethod`` (FEP-521a; Mitra and Fedify publish Ed25519 here)."""

    id: str
    controller: str
    public_key_multibase: str


@dataclass(frozen=True)
class ProfileField:
    """A profile metadata field (``PropertyValue``); ``value`` is unsanitised HTML."""

    name: str
    value: str


@dataclass(frozen=True)
class RemoteActor:
    """A remote actor as we use it. ``summary`` and field values are raw HTML."""

    id: str
    type: str
    preferred_username: str | None
    name: str | None
    summary: str | None
    url: str | None
    inbox: str
    outbox: str | None
    followers: str | None
    following: str | None
    featured: str | None
    shared_inbox: str | None
    public_keys: tuple[PublicKey, ...]
    assertion_methods: tuple[Multikey, ...]
    icon_url: str | None
    image_url: str | None
    fields: tuple[ProfileField, ...]
    manually_approves_followers: bool
    discoverable: bool | None
    also_known_as: tuple[str, ...]
    moved_to: str | None
    # The server speaks the calls protocol (docs/calls-over-activitypub.md).
    supports_calls: bool = False

    @property
    def public_key(self) -> PublicKey | None:
        """The first RSA key (Mastodon's ``#main-key``), if any."""
        return self.public_keys[0] if self.public_keys else None

    @property
    def delivery_inbox(self) -> str:
        """Where to deliver: the shared inbox when there is one (as Mastodon does)."""
        return self.shared_inbox or self.inbox

    def key(self, key_id: str) -> PublicKey | Multikey | None:
        """The key with this id among ``publicKey`` and ``assertionMethod``."""
        keys: tuple[PublicKey | Multikey, ...] = (*self.public_keys, *self.assertion_methods)
        for key in keys:
            if key.id == key_id:
                return key
        return None


def _optional_url(value: Any, *, allow_http: bool) -> str | None:
    """An optional URL property: None if absent or not a URL."""
    url = id_of(value)
    return url if is_http_url(url, allow_http=allow_http) else None


def _public_keys(view: Mapping[str, Any], actor_id: str) -> tuple[PublicKey, ...]:
    entries = as_list(view.get("publicKey"))
    if len(entries) > MAX_KEYS:
        raise InvalidActor("too many public keys")
    keys = []
    for entry in entries:
        # A bare key IRI (no PEM) cannot be used to verify anything: skip it.
        if not isinstance(entry, Mapping):
            continue
        key_id, pem = id_of(entry), str_of(entry.get("publicKeyPem"))
        if not key_id or not pem:
            continue
        # Bridgy Fed omits ``owner``; the key then belongs to the document it is in.
        owner = id_of(entry.get("owner")) or actor_id
        if owner != actor_id:
            # GNU social has served a group whose key is owned by another actor.
            raise InvalidActor(f"publicKey {key_id} is owned by {owner}, not {actor_id}")
        if not is_http_url(key_id) or not same_origin(key_id, actor_id):
            raise InvalidActor(f"publicKey id {key_id!r} is not on the actor's host")
        keys.append(PublicKey(id=key_id, owner=owner, pem=pem))
    return tuple(keys)


def _multikeys(view: Mapping[str, Any], actor_id: str) -> tuple[Multikey, ...]:
    entries = as_list(view.get("assertionMethod"))
    if len(entries) > MAX_KEYS:
        raise InvalidActor("too many assertion methods")
    keys = []
    for entry in entries:
        if not isinstance(entry, Mapping) or type_of(entry) != "Multikey":
            continue
        key_id, multibase = id_of(entry), str_of(entry.get("publicKeyMultibase"))
        if not key_id or not multibase:
            continue
        controller = id_of(entry.get("controller")) or actor_id
        if controller != actor_id:
            raise InvalidActor(f"assertionMethod {key_id} is controlled by {controller}")
        if not is_http_url(key_id) or not same_origin(key_id, actor_id):
            raise InvalidActor(f"assertionMethod id {key_id!r} is not on the actor's host")
        keys.append(Multikey(id=key_id, controller=controller, public_key_multibase=multibase))
    return tuple(keys)


def _fields(value: Any) -> tuple[ProfileField, ...]:
    """Profile fields from ``attachment``.

    Takahē sends a single object instead of a list; a test-edited Takahē actor sends
    an arbitrary non-AS object, which is simply not a field.
    """
    fields = []
    for item in as_list(value)[:MAX_FIELDS]:
        if not isinstance(item, Mapping) or type_of(item) != "PropertyValue":
            continue
        name, field_value = str_of(item.get("name")), str_of(item.get("value"))
        if name is not None and field_value is not None:
            fields.append(ProfileField(name=name, value=field_value))
    return tuple(fields)


def _image_url(value: Any) -> str | None:
    """Avatar/header URL: a string, an Image with ``url``, or a list (first one wins)."""
    return url_of(value, prefer_media_type=None)


def _shared_inbox(view: Mapping[str, Any], actor_id: str, *, allow_http: bool) -> str | None:
    endpoints = view.get("endpoints")
    # Kroeg sends ``endpoints`` as an IRI; Misskey and Discourse also (or only) put
    # ``sharedInbox`` at the top level.
    candidates = [endpoints.get("sharedInbox")] if isinstance(endpoints, Mapping) else []
    candidates.append(view.get("sharedInbox"))
    for candidate in candidates:
        url = id_of(candidate)
        # A shared inbox elsewhere would let any actor steer our deliveries to a
        # third host; we deliver to the personal inbox instead.
        if is_http_url(url, allow_http=allow_http) and same_origin(url, actor_id):
            return url
    return None


def parse_actor(
    doc: Any, *, expected_id: str | None = None, allow_http: bool = False
) -> RemoteActor:
    """Read and validate a remote actor document.

    Args:
        doc: the JSON-decoded actor document.
        expected_id: the URL the document was fetched from (or the id a signature
            named); the document's id must equal it.
        allow_http: accept ``http:`` ids and endpoints (test setups only).

    Returns:
        The parsed actor.

    Raises:
        InvalidActor: not an actor, a bad id, an inbox on another host, a key that
            belongs to someone else, or a document beyond the size limits.
    """
    try:
        view = prepare(doc)
    except InvalidObject as exc:
        raise InvalidActor(exc.reason) from exc
    kinds = [kind for kind in as_list(view.get("type")) if isinstance(kind, str)]
    actor_type = next((kind for kind in kinds if kind in ACTOR_TYPES), None)
    if actor_type is None:
        raise InvalidActor(f"type {kinds!r} is not an actor type")
    actor_id = view.get("id")
    if not is_http_url(actor_id, allow_http=allow_http):
        raise InvalidActor(f"actor id {actor_id!r} is not an absolute https URL")
    if expected_id is not None and actor_id != expected_id:
        raise InvalidActor(f"actor id {actor_id} does not match {expected_id}")
    inbox = id_of(view.get("inbox"))
    if not is_http_url(inbox, allow_http=allow_http):
        raise InvalidActor(f"actor {actor_id} has no usable inbox")
    if not same_origin(inbox, actor_id):
        raise InvalidActor(f"inbox {inbox} is not on the host of {actor_id}")
    aliases = [
        alias
        for alias in ids_of(view.get("alsoKnownAs"))[:MAX_ALIASES]
        # microblog.pub has published ``example@elsewhere.com`` here; not a URI.
        if is_http_url(alias)
    ]

    def optional_url(key: str) -> str | None:
        return _optional_url(view.get(key), allow_http=allow_http)

    return RemoteActor(
        id=actor_id,
        type=actor_type,
        preferred_username=str_of(view.get("preferredUsername")),
        # Kept exactly as sent: a single space (Pleroma), null (Misskey) and
        # double-encoded UTF-8 (an old Pleroma) all occur; display is the node's job.
        name=language_map_value(view, "name"),
        summary=language_map_value(view, "summary"),
        url=url_of(view.get("url")),
        inbox=inbox,
        outbox=optional_url("outbox"),
        followers=optional_url("followers"),
        following=optional_url("following"),
        featured=optional_url("featured"),
        shared_inbox=_shared_inbox(view, actor_id, allow_http=allow_http),
        public_keys=_public_keys(view, actor_id),
        assertion_methods=_multikeys(view, actor_id),
        icon_url=_image_url(view.get("icon")),
        image_url=_image_url(view.get("image")),
        fields=_fields(view.get("attachment")),
        manually_approves_followers=bool_of(view.get("manuallyApprovesFollowers")) is True,
        # Mastodon test data has ``"discoverable": "true"`` (a string).
        discoverable=bool_of(view.get("discoverable")),
        also_known_as=tuple(aliases),
        moved_to=optional_url("movedTo"),
        supports_calls=actor_supports_calls(view),
    )
