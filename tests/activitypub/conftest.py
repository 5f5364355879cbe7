"""Fixtures for the incoming side: real xnode nodes on loopback ports that federate.

Each node is the full web application (``create_app``) plus the incoming
federation pieces wired by :func:`federate` (until the node's own wiring does
it): resolver, endpoints, inbox. Nodes listen on ``http://127.0.0.1:PORT`` and
fetch from each other over real TCP with signed requests; nothing is mocked.
``deliver`` records what the handlers send and, when asked, really POSTs it
(signed) to the recipient's inbox.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ports import free_port

from federation.http import FetchSettings
from federation.signatures import sign_request
from xnode.accounts.models import Account
from xnode.activitypub import endpoints, inbox
from xnode.activitypub.endpoints import KEYRING, RESOLVER, SERIALIZER, URLS
from xnode.activitypub.inbox import INBOX, InboxProcessor
from xnode.activitypub.keys import KeyRing, SigningKey
from xnode.activitypub.resolver import Resolver
from xnode.activitypub.serialize import Serializer
from xnode.activitypub.urls import PUBLIC, Urls
from xnode.clock import FakeClock
from xnode.settings import Settings
from xnode.store.database import Database
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, CLOCK, DB, EVENTS, POSTS, RELATIONSHIPS, SETTINGS

# The top-level conftest's helpers, loaded under another name: pytest keeps only
# one module called ``conftest`` importable, and tests elsewhere import helpers
# from it, so this module re-exports them.
_spec = importlib.util.spec_from_file_location(
    "xnode_tests_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
PASSWORD = _root.PASSWORD
make_settings = _root.make_settings
create_user = _root.create_user
login = _root.login
post_form = _root.post_form
csrf_from = _root.csrf_from

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "activitypub"
AP_JSON = "application/activity+json"


@dataclass
class Sent:
    """One call of ``deliver`` by a handler."""

    activity: dict[str, Any]
    sender: Account
    recipients: list[Account]
    post_id: int | None = None


def federate(app: web.Application, deliver: Callable[..., Awaitable[None]]) -> None:
    """Add the incoming federation pieces to an app, as the node's wiring does.

    When ``create_app`` has wired federation already (``xnode.activitypub.node``),
    only ``deliver`` is swapped for the recording one and the background workers
    are left out: these tests drive the inbox queue by hand.
    """
    if RESOLVER in app:
        processor = app[INBOX]
        processor.context = dataclasses.replace(processor.context, deliver=deliver)
        for entry in list(app.cleanup_ctx):
            if getattr(entry, "__name__", "") == "worker_ctx":
                app.cleanup_ctx.remove(entry)
        return
    settings, db, clock, events = app[SETTINGS], app[DB], app[CLOCK], app[EVENTS]
    urls = Urls(settings.base_url)
    keys = KeyRing(db, urls, clock)
    serializer = Serializer(urls, settings.domain)
    fetch = FetchSettings(allow_private_addresses=settings.allow_private_addresses, timeout_s=5)
    resolver = Resolver(db, settings, clock, urls, keys, fetch, events=events)
    app[URLS], app[KEYRING], app[SERIALIZER], app[RESOLVER] = urls, keys, serializer, resolver
    app[INBOX] = InboxProcessor(
        db, settings, clock, events, resolver, app[POSTS], app[RELATIONSHIPS], serializer,
        deliver,
    )
    endpoints.add_routes(app)
    inbox.add_routes(app)

    async def close_resolver(app: web.Application) -> None:
        await resolver.close()

    app.on_cleanup.append(close_resolver)


@dataclass
class Node:
    """A running node: its app, an HTTP client to it, and what its handlers delivered."""

    name: str
    app: web.Application
    client: TestClient
    clock: FakeClock
    sent: list[Sent] = field(default_factory=list)
    deliver_for_real: bool = False

    @property
    def settings(self) -> Settings:
        """The node's settings."""
        return self.app[SETTINGS]

    @property
    def db(self) -> Database:
        """The node's database."""
        return self.app[DB]

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.settings.base_url

    @property
    def resolver(self) -> Resolver:
        """The node's resolver."""
        return self.app[RESOLVER]

    @property
    def processor(self) -> InboxProcessor:
        """The node's inbox processor."""
        return self.app[INBOX]

    @property
    def serializer(self) -> Serializer:
        """The node's serializer."""
        return self.app[SERIALIZER]

    @property
    def urls(self) -> Urls:
        """The node's URL builder."""
        return self.app[URLS]

    def actor(self, username: str) -> str:
        """A local actor's URI."""
        return self.urls.actor(username)

    async def user(self, username: str, **profile: Any) -> Account:
        """Create an active local user; ``locked=True`` etc. are written to the account."""
        user = await self.app[ACCOUNTS].create_user(username, PASSWORD)
        for column, value in profile.items():
            await self.db.execute(f"UPDATE accounts SET {column} = ? WHERE id = ?",
                                  (value, user.id))  # fmt: skip
        account = await self.resolver.known_account(self.actor(username))
        assert account is not None
        return account

    async def key(self, account: Account) -> SigningKey:
        """A local account's RSA signing key."""
        return (await self.app[KEYRING].for_account(account)).rsa

    async def deliver(
        self, activity: dict[str, Any], sender: Account, recipients: list[Account],
        post_id: int | None = None,
    ) -> None:
        """The ``deliver`` handed to the processor: records, and POSTs if asked to."""
        self.sent.append(Sent(activity, sender, list(recipients), post_id))
        if not self.deliver_for_real:
            return
        key = await self.key(sender)
        body = json.dumps(activity).encode()
        async with aiohttp.ClientSession() as session:
            for recipient in recipients:
                assert recipient.inbox_url is not None
                headers = signed_headers("POST", recipient.inbox_url, body, key,
                                         now=self.clock.now())  # fmt: skip
                async with session.post(recipient.inbox_url, data=body, headers=headers) as r:
                    assert r.status == 202, await r.text()

    async def process(self) -> int:
        """Run the inbox queue once (the tests drive the worker by hand)."""
        return await self.processor.process_pending()


def signed_headers(
    method: str, url: str, body: bytes | None, key: SigningKey, *, now: float | None = None,
    scheme: str = "cavage", extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers for a request signed with ``key`` (Content-Type/Accept set as peers do)."""
    headers = {"Content-Type": AP_JSON} if body is not None else {"Accept": AP_JSON}
    headers.update(extra or {})
    added = sign_request(method, url, headers, body, key.key_id, key.private_key,
                         scheme=scheme, now=time.time() if now is None else now)  # fmt: skip
    return {**headers, **added}


async def post_activity(
    node: Node, activity: dict[str, Any] | bytes, key: SigningKey | None, *,
    path: str = "/inbox", now: float | None = None, body: bytes | None = None,
) -> aiohttp.ClientResponse:
    """POST an activity to ``node``'s inbox, signed with ``key`` (None: unsigned).

    ``body`` replaces what is sent after signing (to test digest mismatches).
    """
    data = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
    url = node.base + path
    headers = (
        signed_headers("POST", url, data, key, now=now or node.clock.now())
        if key is not None else {"Content-Type": AP_JSON}
    )  # fmt: skip
    return await node.client.post(path, data=body if body is not None else data, headers=headers)


async def signed_get(
    node: Node, path: str, key: SigningKey | None, *, accept: str = AP_JSON
) -> aiohttp.ClientResponse:
    """GET from ``node``, signed with ``key`` (None: unsigned), asking for ActivityPub JSON."""
    url = node.base + path
    if key is None:
        return await node.client.get(path, headers={"Accept": accept})
    headers = signed_headers("GET", url, None, key, now=node.clock.now(), extra={"Accept": accept})
    return await node.client.get(path, headers=headers)


async def block_domain(node: Node, domain: str, severity: str = "suspend") -> None:
    """Block a domain on ``node`` (IP literals too, which the admin form refuses)."""
    await node.db.execute(
        "INSERT INTO domain_blocks (domain, severity, created_at) VALUES (?, ?, 0)",
        (domain, severity),
    )


# --- activity builders ---------------------------------------------------------------


_counter = iter(range(1, 1_000_000))


def activity(kind: str, actor: str, obj: Any, **extra: Any) -> dict[str, Any]:
    """An activity with a fresh id on the actor's host."""
    doc = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}#{kind.lower()}s/{next(_counter)}",
        "type": kind,
        "actor": actor,
        "object": obj,
    }
    doc.update(extra)
    return doc


def note(
    author: str, content: str = "<p>Hello</p>", *, to: list[str] | None = None,
    cc: list[str] | None = None, **extra: Any,
) -> dict[str, Any]:
    """A public Note by ``author`` with a fresh id (Mastodon-shaped)."""
    doc = {
        "id": f"{author}/statuses/{next(_counter)}",
        "type": "Note",
        "attributedTo": author,
        "content": content,
        "to": to if to is not None else [PUBLIC],
        "cc": cc if cc is not None else [f"{author}/followers"],
        "published": "2024-01-01T00:00:00Z",
    }
    doc.update(extra)
    return doc


def create(note_doc: dict[str, Any]) -> dict[str, Any]:
    """Create{note} with the note's addressing."""
    return activity(
        "Create", note_doc["attributedTo"], note_doc, to=note_doc["to"], cc=note_doc["cc"]
    ) | {"id": f"{note_doc['id']}/activity"}


# --- fixtures ---------------------------------------------------------------------------


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start nodes on free loopback ports: ``await make_node("a", authorized_fetch=True)``."""
    started: list[Node] = []

    async def start(name: str, **overrides: Any) -> Node:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = make_settings(
            tmp_path / name, domain=f"127.0.0.1:{port}", base_url=base, **overrides
        )
        clock = FakeClock(time.time())
        app = create_app(settings, clock=clock)
        holder: list[Node] = []

        async def deliver(*args: Any, **kwargs: Any) -> None:
            await holder[0].deliver(*args, **kwargs)

        federate(app, deliver)
        client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        node = Node(name, app, client, clock)
        holder.append(node)
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.client.close()


@pytest.fixture
async def node_a(make_node: NodeFactory) -> Node:
    """Our node: the one receiving and serving."""
    return await make_node("a")


@pytest.fixture
async def node_b(make_node: NodeFactory) -> Node:
    """Another xnode, the remote server whose users sign requests to ``node_a``."""
    return await make_node("b")


async def follow_accepted(app: web.Application, follower_id: int, target_id: int) -> None:
    """Follow and complete it as the remote server's Accept would (no network)."""
    from xnode.store.relationships import accept_follow

    await app[RELATIONSHIPS].follow(follower_id, target_id)
    async with app[DB].transaction() as conn:
        await accept_follow(conn, follower_id, target_id)
