"""Finding remote actors, keys and posts, and storing what we find.

Every fetch is a GET signed (draft-cavage, which every server accepts) by the
instance actor, so servers in "authorized fetch" mode answer us too. Actors are
cached for a day; posts are stored once (idempotent on their id) and updated on
``Update``. Remote HTML is sanitised before it is stored; media stay on their
servers (only links are kept).
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

from federation.actors import ACTOR_TYPES, InvalidActor, Multikey, RemoteActor, parse_actor
from federation.actors import PublicKey as ActorPublicKey
from federation.http import (
    JRD_ACCEPT,
    BadStatus,
    Fetcher,
    FetchError,
    FetchSettings,
    InvalidJsonResponse,
    UnexpectedContentType,
)
from federation.jsonld import id_of
from federation.keys import KeyFormatError, PublicKey
from federation.objects import InvalidObject, ParsedNote, origin_of, parse_note
from federation.signatures import Scheme, sign_request
from federation.urls import same_origin
from federation.webfinger import (
    JRD_CONTENT_TYPE,
    MAX_HOST_META_BYTES,
    XRD_CONTENT_TYPE,
    Handle,
    Resolution,
    WebFingerError,
    WebFingerMismatch,
    parse_handle,
    parse_host_meta,
    parse_jrd,
    resolve_actor_url,
    webfinger_url,
)
from xnode.accounts.models import Account
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.urls import Urls
from xnode.clock import Clock
from xnode.errors import XnodeError
from xnode.events import EventBus
from xnode.ids import new_id
from xnode.posts.content import html_to_text
from xnode.posts.models import Post
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import domain_blocks
from xnode.store import keys as key_store
from xnode.store import posts as post_store
from xnode.store.accounts import RemoteAccountRow
from xnode.store.database import Database, IntegrityError
from xnode.text import sanitize_html, strip_control_chars

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _stored_key(pem: str) -> PublicKey:
    """A stored public key, loaded once per distinct PEM (loading costs more than checking)."""
    return PublicKey.from_pem(pem)

ACTOR_CACHE_S = 24 * 3600.0
# A failed signature may mean the key rotated; refetching is cheap for us but
# costs the other server, so a forger cannot make us hammer it.
KEY_REFRESH_MIN_S = 60.0
MAX_REPLY_FETCH_DEPTH = 5
MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 2_000
_LOCAL_ACTOR = re.compile(r"^/(?:users/|@)([A-Za-z0-9_]{1,64})/?$")
# Servers label host-meta loosely (text/xml, application/xml, even text/plain); the
# parser decides, so the Accept header only states a preference.
HOST_META_ACCEPT = f"{XRD_CONTENT_TYPE}, {JRD_CONTENT_TYPE};q=0.9, application/xml;q=0.8"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ResolveError(XnodeError):
    """A remote actor, key or post could not be found or used (HTTP 404 to our callers)."""

    status = 404


class BlockedDomain(ResolveError):
    """The object lives on a domain this node suspended (HTTP 403)."""

    status = 403


class Refused(Exception):
    """An incoming activity we will not act on, for good (logged, never retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _plain(text: str | None, limit: int) -> str:
    """A display string from a remote document: no tags, no control characters, bounded."""
    if not text:
        return ""
    if "<" in text:
        text = html_to_text(text)
    return strip_control_chars(html.unescape(text)).strip()[:limit]


def account_row(actor: RemoteActor) -> RemoteAccountRow:
    """The ``accounts`` columns for a parsed remote actor (names and bios made safe)."""
    domain = origin_of(actor.id) or ""
    username = actor.preferred_username or urlsplit(actor.id).path.rstrip("/").rsplit("/", 1)[-1]
    username = _plain(username, 64).lstrip("@") or "unknown"
    bio_html = sanitize_html(actor.summary or "")
    fields = [
        {"name": _plain(f.name, MAX_NAME_CHARS), "value": _plain(f.value, MAX_FIELD_CHARS)}
        for f in actor.fields
    ]
    return RemoteAccountRow(
        uri=actor.id,
        username=username,
        domain=domain,
        display_name=_plain(actor.name, MAX_NAME_CHARS),
        bio_source=html_to_text(bio_html) if bio_html else "",
        bio_html=bio_html,
        fields_json=json.dumps(fields, ensure_ascii=False),
        url=actor.url,
        locked=actor.manually_approves_followers,
        discoverable=actor.discoverable is not False,
        actor_type=actor.type,
        inbox_url=actor.inbox,
        shared_inbox_url=actor.shared_inbox,
        outbox_url=actor.outbox,
        followers_url=actor.followers,
        following_url=actor.following,
        featured_url=actor.featured,
        also_known_as=actor.also_known_as,
        avatar_remote_url=actor.icon_url,
        header_remote_url=actor.image_url,
        supports_calls=actor.supports_calls,
    )


def _key_rows(actor: RemoteActor) -> list[tuple[int, str, str, str]]:
    """(row id, key id, algorithm, PEM) for every usable key an actor publishes."""
    rows = []
    entries: tuple[ActorPublicKey | Multikey, ...] = (*actor.public_keys, *actor.assertion_methods)
    for entry in entries:
        try:
            if isinstance(entry, Multikey):
                key = PublicKey.from_multibase(entry.public_key_multibase)
            else:
                key = PublicKey.from_pem(entry.pem)
        except KeyFormatError as exc:
            log.info("skipping unusable key %s: %s", entry.id, exc)
            continue
        rows.append((new_id(), entry.id, key.algorithm.value, key.to_pem()))
    return rows


def _host_meta_may_help(exc: Exception) -> bool:
    """Whether a failed WebFinger query is worth a host-meta lookup.

    A 4xx or an answer that is not a usable JRD means the host is up but keeps
    WebFinger elsewhere (or not at all); 5xx, timeouts and connection failures
    would only fail again, and a 429 asks for fewer requests, not more.
    """
    if isinstance(exc, BadStatus):
        return 400 <= exc.status < 500 and exc.status != 429
    return isinstance(exc, UnexpectedContentType | InvalidJsonResponse | WebFingerError)


def _query_key(url: str) -> tuple[str, str, str, str]:
    """A URL in a form where two spellings of the same WebFinger query compare equal."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), unquote(parts.path), unquote(parts.query)


KEY_CACHE_SIZE = 4096
"""Signature keys kept in memory (see :meth:`Resolver.public_key`)."""
KEY_CACHE_TTL_S = 30.0
ACCOUNT_MEMO_S = 5.0
"""How long an account read by URI is reused (see :meth:`Resolver.known_account`)."""


@dataclass(frozen=True)
class _CachedKey:
    owner: Account
    key: PublicKey
    generation: tuple[int, int]
    expires_at: float


class Resolver:
    """Looks up remote actors, keys and posts, fetching and storing them as needed."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        urls: Urls,
        keys: KeyRing,
        fetch_settings: FetchSettings,
        *,
        fetcher: Fetcher | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.urls = urls
        self.keys = keys
        self.fetcher = fetcher or Fetcher(fetch_settings)
        # http: ids are only acceptable for development and test nodes.
        self.allow_http = settings.base_url.startswith("http://")
        # Imported here: remote_posts builds on this module (errors, limits).
        from xnode.activitypub.remote_posts import NoteWriter

        self.notes = NoteWriter(self, events)
        self._locks: dict[str, asyncio.Lock] = {}
        self._verified_keys: OrderedDict[str, _CachedKey] = OrderedDict()
        self._accounts: OrderedDict[str, tuple[Account, int, float]] = OrderedDict()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.fetcher.close()

    # --- fetching -------------------------------------------------------------------

    async def _sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        keys = await self.keys.instance()
        added = sign_request(
            method, url, headers, body, keys.rsa.key_id, keys.rsa.private_key,
            scheme=Scheme.CAVAGE, now=self.clock.now(),
        )
        return {**headers, **added}

    async def fetch(self, url: str) -> Any:
        """GET an ActivityPub document, signed by the instance actor.

        Raises:
            BlockedDomain: the host is suspended.
            ResolveError: the fetch failed or the answer is not JSON.
        """
        await self.check_domain(url)
        try:
            return await self.fetcher.fetch_json(url, sign=self._sign)
        except FetchError as exc:
            raise ResolveError(f"could not fetch {url}: {exc}") from exc

    async def check_domain(self, url: str) -> None:
        """Refuse URLs on suspended domains.

        Raises:
            BlockedDomain: the URL's host (or a parent domain) is suspended.
        """
        domain = origin_of(url)
        if domain is None:
            raise ResolveError(f"{url!r} is not a URL")
        if await domain_blocks.url_is_suspended(self.db, url):
            raise BlockedDomain(f"{domain} is blocked on this node")

    def is_local(self, uri: str) -> bool:
        """Whether a URI is on this node."""
        return uri == self.urls.base or uri.startswith(self.urls.base + "/")

    # --- actors -----------------------------------------------------------------------

    async def known_account(self, uri: str) -> Account | None:
        """A local account by actor or profile URL, or a remote one we have stored; no fetch."""
        generation = self.db.table_version("accounts")
        memo = self._accounts.get(uri)
        if memo is not None and memo[1] == generation and memo[2] > time.monotonic():
            return memo[0]
        if self.is_local(uri):
            match = _LOCAL_ACTOR.match(uri[len(self.urls.base) :])
            account = await account_store.get_local_account(self.db, match[1]) if match else None
        else:
            account = await account_store.account_by_uri(self.db, uri)
        if account is not None:
            self._remember_account(uri, account, generation)
        return account

    def _remember_account(self, uri: str, account: Account, generation: int) -> None:
        """Keep an account read by URI for the next activities that name it.

        Every activity names its actor and the accounts it mentions; reading and
        building each was a tenth of the inbox's handling. As with keys, an
        entry holds only while no write through this database touched the
        accounts table, and for a few seconds (writes by the other process).
        """
        self._accounts[uri] = (account, generation, time.monotonic() + ACCOUNT_MEMO_S)
        self._accounts.move_to_end(uri)
        while len(self._accounts) > KEY_CACHE_SIZE:
            self._accounts.popitem(last=False)

    async def actor(self, uri: str, *, refresh: bool = False) -> Account:
        """The account for an actor URI, fetched when unknown or older than a day.

        Raises:
            BlockedDomain: the actor's domain is suspended.
            ResolveError: unknown local actor, or the fetch or document failed.
        """
        if self.is_local(uri):
            account = await self.known_account(uri)
            if account is None:
                raise ResolveError(f"no local actor at {uri}")
            return account
        await self.check_domain(uri)
        # One fetch per actor at a time: a burst of deliveries from a new actor
        # waits for the first fetch instead of each hitting their server. (A
        # waiter may occasionally fetch once more after the lock is dropped from
        # the dict; storing is idempotent, so that only costs a request.)
        if not refresh:
            known = await self.known_account(uri)
            if known is not None and self._fresh(known, ACTOR_CACHE_S):
                return known
        lock = self._locks.setdefault(uri, asyncio.Lock())
        try:
            async with lock:
                cached = await account_store.account_by_uri(self.db, uri)
                if cached is not None and not refresh and self._fresh(cached, ACTOR_CACHE_S):
                    return cached
                try:
                    return await self.store_actor(await self.fetch(uri), expected_id=uri)
                except ResolveError:
                    if cached is not None and not cached.is_deleted:
                        log.info("using stale copy of %s: refetch failed", uri)
                        return cached
                    raise
        finally:
            if not lock.locked():
                self._locks.pop(uri, None)

    def _fresh(self, account: Account, max_age_s: float) -> bool:
        return account.fetched_at is not None and self.clock.now() - account.fetched_at < max_age_s

    async def store_actor(self, doc: Any, *, expected_id: str | None = None) -> Account:
        """Store an actor document (fetched, or embedded in an authenticated Update).

        Raises:
            BlockedDomain: the actor's domain is suspended.
            ResolveError: not a usable actor document.
        """
        try:
            actor = parse_actor(doc, expected_id=expected_id, allow_http=self.allow_http)
        except InvalidActor as exc:
            raise ResolveError(f"unusable actor document: {exc.reason}") from exc
        if self.is_local(actor.id):
            raise ResolveError(f"{actor.id} claims to be one of our actors")
        await self.check_domain(actor.id)
        now = self.clock.now()
        for attempt in (1, 2):
            try:
                async with self.db.transaction() as conn:
                    account_id = await account_store.upsert_remote_account(
                        conn, new_id(), account_row(actor), now
                    )
                    await key_store.replace_remote_keys(
                        conn, account_id, _key_rows(actor), now
                    )
                break
            except IntegrityError:
                # Another serving process stored the same new actor at the same moment
                # (PostgreSQL, issue 18): the second go finds its row and updates it.
                if attempt == 2:
                    raise
        account = await account_store.get_account(self.db, account_id)
        assert account is not None
        return account

    async def actor_by_handle(self, handle: str) -> Account:
        """The account for ``user@host`` via WebFinger (our own domain: a local account).

        Raises:
            ResolveError: not a handle, no such account, or the lookup failed.
        """
        try:
            parsed = parse_handle(handle)
        except WebFingerError as exc:
            raise ResolveError(str(exc)) from exc
        ours = {self.settings.domain.lower(), urlsplit(self.urls.base).netloc.lower()}
        if parsed.host in ours:
            account = await account_store.get_local_account(self.db, parsed.username)
            if account is None or account.is_deleted or account.is_suspended:
                raise ResolveError(f"no account {parsed}")
            return account
        found = await self.webfinger(parsed)
        if not found.same_origin:
            # Split-domain setups (handle on example.com, server on social.example.com):
            # the stored handle uses the actor's own host, so nothing is impersonated.
            log.info("%s is served from another host: %s", parsed, found.actor_url)
        return await self.actor(found.actor_url)

    async def webfinger(self, handle: Handle) -> Resolution:
        """Ask the handle's host who the account is, via host-meta when WebFinger is delegated.

        The query goes to ``/.well-known/webfinger`` first. When that answers a
        4xx or something that is not a usable JRD, the host's ``host-meta`` is
        read once and its ``lrdd`` template tried instead (RFC 6415), which is how
        hosts that keep WebFinger elsewhere (``user@sdf.org`` style) resolve.

        Raises:
            BlockedDomain: the host, or the one host-meta delegates to, is suspended.
            ResolveError: neither lookup gave a JRD that vouches for an actor.
        """
        scheme = "http" if self.allow_http else "https"
        url = webfinger_url(handle, scheme=scheme)
        await self.check_domain(url)
        try:
            return await self._query_webfinger(url, handle, (handle.host,))
        except (FetchError, WebFingerError) as exc:
            if not _host_meta_may_help(exc):
                raise ResolveError(f"WebFinger lookup of {handle} failed: {exc}") from exc
            first_error = exc
        template = await self._host_meta_template(handle, scheme, first_error)
        delegated = webfinger_url(handle, template=template)
        if _query_key(delegated) == _query_key(url):
            # host-meta names the endpoint that just failed: asking again cannot help.
            raise ResolveError(f"WebFinger lookup of {handle} failed: {first_error}")
        delegate = self._template_host(delegated)
        if delegate is None:
            raise ResolveError(
                f"WebFinger lookup of {handle} failed: host-meta of {handle.host}"
                f" names an unusable WebFinger template {template[:200]!r}"
            )
        await self.check_domain(delegated)
        log.info("WebFinger for %s is delegated by host-meta to %s", handle, delegated)
        try:
            # The handle's own host delegated to this endpoint, so its answer may
            # vouch for accounts on either host (but no third one).
            return await self._query_webfinger(delegated, handle, (delegate, handle.host))
        except (FetchError, WebFingerError) as exc:
            raise ResolveError(
                f"WebFinger lookup of {handle} failed: {first_error};"
                f" the host-meta template ({delegated}) failed too: {exc}"
            ) from exc

    async def _query_webfinger(
        self, url: str, handle: Handle, vouchers: tuple[str, ...]
    ) -> Resolution:
        """Fetch one JRD and check it against each host allowed to vouch for the handle."""
        jrd = parse_jrd(await self.fetcher.fetch_json(url, accept=JRD_ACCEPT))
        mismatch: WebFingerMismatch | None = None
        for host in dict.fromkeys(vouchers):
            try:
                return resolve_actor_url(
                    jrd, served_by=host, requested=handle, allow_http=self.allow_http
                )
            except WebFingerMismatch as exc:
                mismatch = mismatch or exc
        assert mismatch is not None
        raise mismatch

    async def _host_meta_template(
        self, handle: Handle, scheme: str, first_error: Exception
    ) -> str:
        """The ``lrdd`` template from the handle's host's host-meta (one bounded GET)."""
        url = f"{scheme}://{handle.host}/.well-known/host-meta"
        try:
            response = await self.fetcher.get(
                url, headers={"Accept": HOST_META_ACCEPT}, max_bytes=MAX_HOST_META_BYTES
            )
            return parse_host_meta(response.body)
        except (FetchError, WebFingerError) as exc:
            raise ResolveError(
                f"WebFinger lookup of {handle} failed: {first_error};"
                f" no usable host-meta either: {exc}"
            ) from exc

    def _template_host(self, url: str) -> str | None:
        """``host[:port]`` of a filled-in host-meta template, None if we must not query it."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        # A handle-to-actor mapping read over plain HTTP could be rewritten in transit.
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
            return None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
            host = f"{host}:{port}"
        return host

    # --- keys -------------------------------------------------------------------------

    async def public_key(
        self, key_id: str, *, refresh: bool = False
    ) -> tuple[Account, PublicKey]:
        """The owner and the key for a signature's key id (cached, else fetched).

        Key ids are usually ``actor#main-key``; some servers publish standalone key
        documents (``/users/a/main-key``) naming their ``owner``. Either way the key
        is only believed once it is found in the owner's actor document.

        Raises:
            BlockedDomain: the key's domain is suspended.
            ResolveError: the key or its owner cannot be found.
        """
        generation = (
            self.db.table_version("account_keys"), self.db.table_version("accounts")
        )
        if not refresh:
            cached = self._verified_keys.get(key_id)
            if (
                cached is not None
                and cached.generation == generation
                and cached.expires_at > time.monotonic()
            ):
                return cached.owner, cached.key
        row = await key_store.key_by_id(self.db, key_id)
        if row is not None and row["account_id"] is not None:
            owner = await account_store.get_account(self.db, row["account_id"])
            stale_ok = owner is not None and self._fresh(owner, KEY_REFRESH_MIN_S)
            if owner is not None and (not refresh or owner.is_local or stale_ok):
                key = _stored_key(row["public_pem"])
                self._remember_key(key_id, owner, key, generation)
                return owner, key
        if self.is_local(key_id):
            raise ResolveError(f"no local key {key_id}")
        document_url = urldefrag(key_id).url
        known = await account_store.account_by_uri(self.db, document_url)
        if known is not None:
            # An unknown key id of a known actor: refetch it, unless that just happened
            # (made-up key ids must not turn into a stream of requests to its server).
            fresh = self._fresh(known, KEY_REFRESH_MIN_S)
            owner = known if fresh else await self.actor(document_url, refresh=True)
        else:
            doc = await self.fetch(document_url)
            owner = await self._key_owner(doc, document_url, key_id)
        row = await key_store.key_by_id(self.db, key_id)
        if row is None or row["account_id"] != owner.id:
            raise ResolveError(f"{owner.uri} does not publish the key {key_id}")
        return owner, _stored_key(row["public_pem"])

    def _remember_key(
        self, key_id: str, owner: Account, key: PublicKey, generation: tuple[int, int]
    ) -> None:
        """Keep a key found in the database for the next requests signed with it.

        Checking a signature read the key row and its owner on every inbox POST.
        The entry is only used while no write through this database touched the
        keys or accounts tables (rotation, suspension, a refreshed profile); the
        expiry covers writes made by another process.
        """
        self._verified_keys[key_id] = _CachedKey(
            owner, key, generation, time.monotonic() + KEY_CACHE_TTL_S
        )
        self._verified_keys.move_to_end(key_id)
        while len(self._verified_keys) > KEY_CACHE_SIZE:
            self._verified_keys.popitem(last=False)

    async def _key_owner(self, doc: Any, document_url: str, key_id: str) -> Account:
        """The actor a fetched key (or actor) document belongs to, stored fresh."""
        if not isinstance(doc, Mapping):
            raise ResolveError(f"{document_url} is not a JSON object")
        kinds = doc.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if any(kind in ACTOR_TYPES for kind in kinds):
            if id_of(doc) == document_url:
                return await self.store_actor(doc, expected_id=document_url)
            owner_uri = id_of(doc)  # a stub actor served at the key's URL
        else:
            owner_uri = id_of(doc.get("owner")) or id_of(doc.get("controller"))
            if owner_uri is None and isinstance(doc.get("publicKey"), Mapping):
                owner_uri = id_of(doc["publicKey"].get("owner"))
        if owner_uri is None or not same_origin(owner_uri, key_id):
            raise ResolveError(f"key {key_id} names no owner on its own host")
        return await self.actor(owner_uri, refresh=True)

    # --- posts ------------------------------------------------------------------------

    async def note(self, uri: str, *, depth: int = 0, notify: bool = True) -> Post | None:
        """A post by its id: stored already, else fetched and stored (None if impossible).

        ``notify=False``: storing it notifies nobody (a post looked up, not delivered).
        """
        existing = await post_store.post_by_uri(self.db, uri)
        if existing is not None:
            return existing
        if self.is_local(uri):
            return None
        try:
            doc = await self.fetch(uri)
            parsed = parse_note(doc)
            if not same_origin(parsed.id, uri) or not same_origin(parsed.attributed_to, uri):
                raise ResolveError(f"{uri} answered with an object from another host")
            if parsed.id != uri:
                existing = await post_store.post_by_uri(self.db, parsed.id)
                if existing is not None:
                    return existing
            author = await self.actor(parsed.attributed_to)
            return await self.store_note(parsed, author, depth=depth, notify=notify)
        except (ResolveError, InvalidObject) as exc:
            log.info("could not load post %s: %s", uri, exc)
            return None

    async def store_note(
        self, parsed_note: ParsedNote, author: Account, *, depth: int = 0, notify: bool = True
    ) -> Post:
        """Store a remote post (idempotent on its id); see :class:`NoteWriter`.

        Raises:
            ResolveError: the post is not by ``author`` or its id belongs to someone else.
        """
        return await self.notes.store(parsed_note, author, depth=depth, notify=notify)

    async def update_note(self, parsed_note: ParsedNote, author: Account) -> Post | None:
        """Apply an edit to a stored remote post, keeping the old version (None if unknown)."""
        return await self.notes.update(parsed_note, author)

