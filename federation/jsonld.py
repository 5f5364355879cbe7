"""JSON-LD for ActivityPub: bundled contexts, an offline loader and cheap shape helpers.

Most servers send compacted AS2 with the ActivityStreams context, so handlers read
plain keys (``to``, ``object``, ``content``) and only need to cope with the usual
shape variations: a scalar where an array is expected (Fedify, GoToSocial, lotide),
an embedded object where an IRI is expected (Kroeg, Osada) and language maps
instead of plain strings (Mastodon's ``contentMap``). The helpers here give them one
shape without paying for JSON-LD processing.

Documents that use unusual keys (compact IRIs such as ``toot:discoverable`` from
Takahē, full IRIs, types like ``as:Note``) go through ``normalise_with_jsonld``:
expansion with pyld and compaction against AS2 plus the common extension terms.
Contexts are never fetched: the loader serves only the files in
``federation/contexts`` and refuses everything else.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Collection, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, Final, cast
from urllib.parse import urlsplit

from pyld import jsonld as _pyld

from federation import json_text
from federation.json_text import JsonTextError

logger = logging.getLogger(__name__)

AS_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
AS_NS: Final = AS_CONTEXT + "#"
PUBLIC: Final = AS_NS + "Public"
SECURITY_V1: Final = "https://w3id.org/security/v1"
DATA_INTEGRITY_V1: Final = "https://w3id.org/security/data-integrity/v1"
DATA_INTEGRITY_V2: Final = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1: Final = "https://w3id.org/security/multikey/v1"
IDENTITY_V1: Final = "https://w3id.org/identity/v1"
WEBFINGER_CONTEXT: Final = "https://purl.archive.org/socialweb/webfinger"
LITEPUB_CONTEXT: Final = "https://litepub.social/litepub/context.jsonld"

# Every spelling of the public collection seen in the wild: the full IRI (Mastodon),
# the compact IRI (Pleroma in older versions, some relays), the bare term (Lemmy's
# early releases). The http: form comes from pre-2017 implementations.
PUBLIC_ADDRESSES: Final = frozenset(
    {PUBLIC, "as:Public", "Public", "http://www.w3.org/ns/activitystreams#Public"}
)

DEFAULT_MAX_DEPTH: Final = 32
DEFAULT_MAX_NODES: Final = 50_000
DEFAULT_MAX_BYTES: Final = 1024 * 1024

# host + path (no scheme, no trailing slash) -> bundled file.
_BUNDLED: Final[Mapping[str, str]] = {
    "www.w3.org/ns/activitystreams": "activitystreams.json",
    "www.w3.org/ns/activitystreams.jsonld": "activitystreams.json",
    "w3id.org/security/v1": "security-v1.json",
    "w3id.org/security/data-integrity/v1": "data-integrity-v1.json",
    "w3id.org/security/data-integrity/v2": "data-integrity-v2.json",
    "w3id.org/security/multikey/v1": "multikey-v1.json",
    "w3id.org/identity/v1": "identity-v1.json",
    "purl.archive.org/socialweb/webfinger": "socialweb-webfinger.json",
    "litepub.social/litepub/context.jsonld": "litepub-0.1.json",
    # Ours: the calls vocabulary (federation/calls.py, docs/calls-over-activitypub.md).
    "w3id.org/xnode/calls/v1": "xnode-calls-v1.json",
}
# Pleroma and Akkoma serve the same static file from every instance.
_LITEPUB_INSTANCE_PATH: Final = "/schemas/litepub-0.1.jsonld"

# Extension terms most servers define inline. Compacting against these gives the
# names handlers read (``sensitive``, ``discoverable``, ``featured``...).
EXTENSION_TERMS: Final[Mapping[str, Any]] = {
    "toot": "http://joinmastodon.org/ns#",
    "schema": "http://schema.org#",
    "ostatus": "http://ostatus.org#",
    "misskey": "https://misskey-hub.net/ns#",
    "litepub": "http://litepub.social/ns#",
    "fedibird": "http://fedibird.com/ns#",
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "quoteUrl": "as:quoteUrl",
    "quoteUri": "fedibird:quoteUri",
    "Emoji": "toot:Emoji",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
    "discoverable": "toot:discoverable",
    # Ours (federation/calls.py): whether an actor's server speaks the calls protocol.
    "xcall": "https://w3id.org/xnode/calls#",
    "supportsCalls": "xcall:supportsCalls",
    "indexable": "toot:indexable",
    "memorial": "toot:memorial",
    "suspended": "toot:suspended",
    "blurhash": "toot:blurhash",
    "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
    "votersCount": "toot:votersCount",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "conversation": {"@id": "ostatus:conversation", "@type": "@id"},
    "atomUri": "ostatus:atomUri",
    "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
    "_misskey_content": "misskey:_misskey_content",
    "_misskey_quote": "misskey:_misskey_quote",
    "_misskey_reaction": "misskey:_misskey_reaction",
    "isCat": "misskey:isCat",
    "ChatMessage": "litepub:ChatMessage",
    "EmojiReact": "litepub:EmojiReact",
    "directMessage": "litepub:directMessage",
    "Multikey": "sec:Multikey",
    "controller": {"@id": "sec:controller", "@type": "@id"},
    "assertionMethod": {"@id": "sec:assertionMethod", "@type": "@id"},
    "publicKeyMultibase": {"@id": "sec:publicKeyMultibase", "@type": "sec:multibase"},
}
NORMALISING_CONTEXT: Final = [AS_CONTEXT, SECURITY_V1, dict(EXTENSION_TERMS)]


class JsonLdError(ValueError):
    """A document could not be processed as JSON-LD."""


class UnknownContext(JsonLdError):
    """A remote context is not bundled; we never fetch contexts at run time."""

    def __init__(self, url: str) -> None:
        super().__init__(f"remote JSON-LD context is not bundled (no network fetch): {url!r}")
        self.url = url


class DocumentTooComplex(JsonLdError):
    """A document is nested too deeply or holds too many values."""


class InvalidJson(JsonLdError):
    """Bytes that are not a JSON document within the size and depth limits."""


# --- bundled contexts and the loader -------------------------------------------


def bundled_context_name(url: str) -> str | None:
    """Name of the bundled file that serves a context URL, or None.

    http and https are treated alike, as are trailing slashes and a fragment,
    because servers write the same contexts all of these ways.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.query or not parts.hostname:
        return None
    path = parts.path.rstrip("/")
    name = _BUNDLED.get(parts.hostname.lower() + path)
    if name is None and path == _LITEPUB_INSTANCE_PATH:
        name = "litepub-0.1.json"
    return name


@lru_cache(maxsize=16)
def _bundled_text(name: str) -> str:
    return resources.files("federation.contexts").joinpath(name).read_text(encoding="utf-8")


def load_bundled_context(url: str) -> dict[str, Any]:
    """The bundled document for a context URL (a fresh copy).

    Raises:
        UnknownContext: the URL is not one of the bundled contexts.
    """
    name = bundled_context_name(url)
    if name is None:
        raise UnknownContext(url)
    return cast("dict[str, Any]", json.loads(_bundled_text(name)))


def document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyld document loader that serves bundled contexts only (never the network).

    Args:
        url: the context URL pyld wants.
        options: pyld's loader options (unused).

    Returns:
        A pyld remote document: ``contextUrl``, ``documentUrl``, ``document``.

    Raises:
        UnknownContext: the URL is not bundled.
    """
    return {
        "contextUrl": None,
        "documentUrl": url,
        "contentType": "application/ld+json",
        "document": load_bundled_context(url),
    }


def _unknown_context_in(error: BaseException) -> UnknownContext | None:
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UnknownContext):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None


def _pyld_call(func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except RecursionError as exc:
        raise DocumentTooComplex("document nests too deeply for JSON-LD processing") from exc
    except Exception as exc:
        unknown = _unknown_context_in(exc)
        if unknown is not None:
            raise UnknownContext(unknown.url) from exc
        raise JsonLdError(f"JSON-LD processing failed: {exc}") from exc


def expand(doc: Mapping[str, Any] | list[Any]) -> list[Any]:
    """Expand a document with the bundled contexts only.

    Raises:
        UnknownContext: the document names a context that is not bundled.
        JsonLdError: pyld refused the document.
    """
    return cast("list[Any]", _pyld_call(_pyld.expand, doc, {"documentLoader": document_loader}))


def compact(doc: Any, context: Any) -> dict[str, Any]:
    """Compact a document against ``context`` with the bundled contexts only.

    Raises:
        UnknownContext: the document or context names a context that is not bundled.
        JsonLdError: pyld refused the document.
    """
    return cast(
        "dict[str, Any]",
        _pyld_call(_pyld.compact, doc, context, {"documentLoader": document_loader}),
    )


# --- limits and guarded parsing ------------------------------------------------


def check_limits(
    doc: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, max_nodes: int = DEFAULT_MAX_NODES
) -> None:
    """Refuse documents nested deeper than ``max_depth`` or with more than ``max_nodes`` values.

    Iterative, so a hostile document cannot exhaust the stack here.

    Raises:
        DocumentTooComplex: a limit is exceeded.
    """
    # Level by level: no per-value bookkeeping, which made this a visible part
    # of reading every activity.
    level: list[Any] = [doc]
    nodes = 0
    depth = 1
    while level:
        nodes += len(level)
        if nodes > max_nodes:
            raise DocumentTooComplex(f"document has more than {max_nodes} values")
        below: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                below.extend(value.values())
            elif isinstance(value, list):
                below.extend(value)
            else:
                continue
            if depth > max_depth:
                raise DocumentTooComplex(f"document is nested deeper than {max_depth} levels")
        level = below
        depth += 1


def parse_json(
    data: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Any:
    """Parse JSON from another server with size, depth and value-count limits.

    Strict about what is text (:mod:`federation.json_text`): UTF-8 only,
    strings of valid Unicode, finite numbers of database size.

    Raises:
        InvalidJson: not JSON, not UTF-8, a lone surrogate, a number out of range, or
            larger than ``max_bytes``.
        DocumentTooComplex: nested deeper than ``max_depth`` or too many values.
    """
    if len(data) > max_bytes:
        raise InvalidJson(f"JSON document larger than {max_bytes} bytes")
    try:
        doc = json_text.loads(data)
    except RecursionError as exc:
        raise DocumentTooComplex("JSON document nests too deeply") from exc
    except JsonTextError as exc:
        raise InvalidJson(str(exc)) from exc
    check_limits(doc, max_depth=max_depth, max_nodes=max_nodes)
    return doc


# --- shape helpers -------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """A value as a list: None → [], a list → a copy, anything else → [value]."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def first(value: Any) -> Any:
    """The first element of a list, the value itself otherwise (None for [])."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def id_of(value: Any) -> str | None:
    """The IRI of a reference: a string, an embedded object's ``id``, or a list's first.

    Kroeg and Osada embed the actor, Prismo sends a list of actor objects, Hubzilla
    sends ``{"id": ...}`` only; all of them come out as the plain IRI.
    """
    value = first(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, dict):
        for key in ("id", "@id"):
            candidate = value.get(key)
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
    return None


def ids_of(value: Any) -> list[str]:
    """The IRIs of every reference in a scalar-or-list value, deduplicated, in order."""
    seen: dict[str, None] = {}
    for item in as_list(value):
        iri = id_of(item)
        if iri is not None:
            seen.setdefault(iri, None)
    return list(seen)


def language_map_value(
    obj: Mapping[str, Any], key: str, languages: tuple[str, ...] = ()
) -> str | None:
    """A natural-language property, falling back to its ``<key>Map`` language map.

    The plain value wins when present: Friendica sends a ``contentMap`` that differs
    from ``content`` and Mastodon always sends both, but ``content`` is the one the
    sender renders. Older Mastodon test data and Kroeg send only the map.

    Args:
        obj: the object.
        key: ``content``, ``summary`` or ``name``.
        languages: preferred language tags, tried in order before the map's first entry.

    Returns:
        The string, or None when neither form holds one.
    """
    if not isinstance(obj, Mapping):
        return None
    plain = obj.get(key)
    if isinstance(plain, str):
        return plain
    language_map = obj.get(key + "Map")
    if not isinstance(language_map, Mapping):
        return None
    for tag in (*languages, "und"):
        candidate = language_map.get(tag)
        if isinstance(candidate, str):
            return candidate
    for candidate in language_map.values():
        if isinstance(candidate, str):
            return candidate
    return None


def is_public(addressing: Any) -> bool:
    """Whether an addressing value (``to``/``cc``, scalar or list) names the public collection."""
    return any(iri in PUBLIC_ADDRESSES for iri in ids_of(addressing))


# --- the JSON-LD fallback ------------------------------------------------------


def _local_name(key: str) -> str:
    for separator in ("#", "/", ":"):
        key = key.rsplit(separator, 1)[-1]
    return key


def needs_normalisation(doc: Any, *, terms: Collection[str] | None = None) -> bool:
    """Whether a document uses keys or types the plain helpers would miss.

    True for compact or full IRIs as keys (``toot:discoverable`` from Takahē,
    ``https://www.w3.org/ns/activitystreams#content``) or as the type (``as:Note``).
    Documents without ``@context`` are never candidates: there is nothing to expand.

    Args:
        doc: the document.
        terms: when given, only IRI keys whose local name is one of these count, so
            that extension keys nobody reads (``diaspora:guid``, ``vcard:bday``)
            do not cost a JSON-LD round trip.
    """
    if not isinstance(doc, dict) or "@context" not in doc:
        return False
    for key in doc:
        if not isinstance(key, str) or key.startswith("@") or ":" not in key:
            continue
        if terms is None or _local_name(key) in terms:
            return True
    return any(isinstance(kind, str) and ":" in kind for kind in as_list(doc.get("type")))


def _drop_unknown_contexts(value: Any) -> Any:
    """Replace every remote context that is not bundled with an empty inline one.

    We do this instead of making the loader lenient because pyld caches resolved
    contexts by URL in a process-wide cache: an empty stand-in served by a lenient
    loader would later be reused by strict calls.
    """
    if isinstance(value, list):
        return [_drop_unknown_contexts(child) for child in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, child in value.items():
        if key == "@context":
            kept: list[Any] = []
            for entry in as_list(child):
                if isinstance(entry, str) and bundled_context_name(entry) is None:
                    logger.debug("ignoring unbundled JSON-LD context %s", entry)
                    kept.append({})
                else:
                    kept.append(entry)
            result[key] = kept
        else:
            result[key] = _drop_unknown_contexts(child)
    return result


def normalise_with_jsonld(
    doc: Mapping[str, Any],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = 10_000,
) -> dict[str, Any]:
    """Rewrite a document into the standard AS2 shape by expanding and compacting it.

    Remote contexts that are not bundled are treated as empty (their terms are
    dropped rather than fetched). A document without ``@context`` (Lemmy's own
    examples, Pleroma chat messages) is read as plain ActivityStreams. The result
    has no ``@context`` key; single values come out as scalars, so read it with
    ``as_list``/``id_of`` like any other document.

    Args:
        doc: the document as received.
        max_depth: nesting limit checked before pyld sees the document.
        max_nodes: value-count limit checked before pyld sees the document.

    Returns:
        The compacted document.

    Raises:
        DocumentTooComplex: a limit is exceeded.
        JsonLdError: the document is not valid JSON-LD.
    """
    if not isinstance(doc, Mapping):
        raise JsonLdError("a JSON-LD document must be an object")
    check_limits(doc, max_depth=max_depth, max_nodes=max_nodes)
    source = dict(doc)
    if "@context" not in source:
        source["@context"] = AS_CONTEXT
    source = _drop_unknown_contexts(source)
    compacted = compact(expand(source), copy.deepcopy(NORMALISING_CONTEXT))
    compacted.pop("@context", None)
    if "@graph" in compacted:
        raise JsonLdError("document describes more than one top-level node")
    # A dict in, a dict out.
    return cast("dict[str, Any]", _strip_blank_vocab(compacted))


def _strip_blank_vocab(value: Any) -> Any:
    """Turn ``_:term`` keys and types back into ``term``.

    The ActivityStreams context maps undefined terms to ``_:term`` (its ``@vocab``),
    so a term the sender forgot to define (Takahē's ``PropertyValue``) comes out
    of compaction as ``_:PropertyValue``. The sender meant the plain term.
    """
    if isinstance(value, list):
        return [_strip_blank_vocab(child) for child in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, child in value.items():
        child = _strip_blank_vocab(child)
        if key == "type":
            child = [
                kind[2:] if isinstance(kind, str) and kind.startswith("_:") else kind
                for kind in as_list(child)
            ]
            child = child[0] if len(child) == 1 else child
        if key.startswith("_:") and key[2:] not in value:
            key = key[2:]
        result[key] = child
    return result
