"""Signing what we send: HTTP signatures (both schemes, double-knocking) and integrity proofs.

The peer here is a real aiohttp server on loopback that verifies every request
with ``federation.signatures.verify_request``, as a remote server would.

This module also holds the builders the other outgoing-side tests use
(``open_node``, ``Peer``, ``remote_account``, ``local_account``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from federation.http import Fetcher, FetchSettings
from federation.keys import PublicKey
from federation.proofs import verify_proof
from federation.signatures import Verdict, signature_key_id, signature_scheme, verify_request
from xnode.accounts.models import Account
from xnode.accounts.service import AccountService
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.serialize import DATA_INTEGRITY_CONTEXT, Serializer
from xnode.activitypub.signing import Signer
from xnode.activitypub.urls import Urls
from xnode.clock import FakeClock
from xnode.ids import new_id
from xnode.settings import Settings, settings_from_mapping
from xnode.store import accounts as account_store
from xnode.store import deliveries as delivery_store
from xnode.store import keys as key_store
from xnode.store.database import Database, database_for

# --- builders shared by the outgoing-side tests ----------------------------------------


@dataclass
class Node:
    """A node's outgoing machinery without the web application."""

    settings: Settings
    db: Database
    clock: FakeClock
    urls: Urls
    keys: KeyRing
    signer: Signer
    serializer: Serializer


@asynccontextmanager
async def open_node(tmp_path: Path) -> AsyncIterator[Node]:
    """A fresh node database with keys and a signer; the clock starts at the real time.

    Real time, because the peers check Date/created against their own clock.
    """
    settings = settings_from_mapping(
        tmp_path / "node",
        {"domain": "xnode.test", "base_url": "http://xnode.test", "allow_private_addresses": True},
        secret_key=secrets.token_bytes(32),
    )
    clock = FakeClock(time.time())
    db = database_for(settings.database_path)
    await db.open()
    urls = Urls(settings.base_url)
    keys = KeyRing(db, urls, clock)
    try:
        yield Node(settings, db, clock, urls, keys, Signer(db, keys, clock),
                   Serializer(urls, settings.domain))
    finally:
        await db.close()


async def local_account(node: Node, username: str) -> Account:
    """A local user's account."""
    user = await AccountService(node.db, node.settings, node.clock).create_user(
        username, "correct horse battery"
    )
    return user.account


async def remote_account(
    db: Database, username: str, domain: str, *, inbox: str | None = None,
    shared_inbox: str | None = None, locked: bool = False,
) -> Account:
    """A remote account row, as the incoming side would store it after a fetch."""
    account_id = new_id()
    actor = f"https://{domain}/users/{username}"
    await db.execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, url, locked, inbox_url,"
        " shared_inbox_url, followers_url, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
        (
            account_id, username, username.lower(), domain, actor, actor, int(locked),
            inbox or f"{actor}/inbox", shared_inbox, f"{actor}/followers",
        ),
    )
    account = await account_store.get_account(db, account_id)
    assert account is not None
    return account


@dataclass
class Received:
    """One request as the peer saw it."""

    method: str
    path: str
    scheme: str | None
    verdict: Verdict
    body: bytes
    headers: dict[str, str]

    @property
    def activity(self) -> dict[str, Any]:
        """The JSON body."""
        return json.loads(self.body)


Answer = Callable[[Received], web.StreamResponse]


@dataclass
class Peer:
    """A remote server on loopback that verifies our signatures and answers as told."""

    db: Database
    clock: FakeClock
    answer: Answer = lambda received: web.Response(status=202)
    hold: bool = False  # keep requests open until ``release`` is set
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    base: str = ""

    def app(self) -> web.Application:
        """The peer's application (serve it with ``aiohttp_server``)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _key(self, key_id: str | None) -> PublicKey | None:
        row = await key_store.key_by_id(self.db, key_id) if key_id else None
        return None if row is None else PublicKey.from_pem(row["public_pem"])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Verify, record, answer."""
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.arrived.set()
            if self.hold:
                await self.release.wait()
            key = await self._key(signature_key_id(request.headers))
            verdict = verify_request(
                request.method, str(request.url), request.headers, body or None, key,
                now=self.clock.now(),
            )
            scheme = signature_scheme(request.headers)
            received = Received(
                request.method, request.path, scheme.value if scheme else None, verdict, body,
                dict(request.headers),
            )
            self.received.append(received)
            return self.answer(received)
        finally:
            self.in_flight -= 1

    async def wait_in_flight(self, count: int) -> None:
        """Wait until ``count`` requests are being held open at once."""
        async with asyncio.timeout(10):
            while self.in_flight < count:
                await asyncio.sleep(0.01)

    def url(self, path: str) -> str:
        """An absolute URL on this peer."""
        return f"{self.base}{path}"


async def start_peer(aiohttp_server: Any, node: Node, **options: Any) -> Peer:
    """Start a verifying peer on a free loopback port."""
    peer = Peer(node.db, node.clock, **options)
    server = await aiohttp_server(peer.app())
    peer.base = str(server.make_url("")).rstrip("/")
    return peer


def only_cavage(received: Received) -> web.Response:
    """A cavage-only server (Mastodon before 4.5): RFC 9421 gets a 401."""
    return web.Response(status=202 if received.scheme == "cavage" else 401)


# --- tests ---------------------------------------------------------------------------


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A fresh node."""
    async with open_node(tmp_path) as opened:
        yield opened


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """An HTTP client allowed to reach loopback."""
    async with Fetcher(FetchSettings(allow_private_addresses=True)) as client:
        yield client


def note_activity(node: Node, author: Account, n: int = 1) -> dict[str, Any]:
    """A minimal Create from a local author."""
    actor = node.urls.actor(author.username)
    return Serializer.activity(
        "Create", f"{actor}/statuses/{n}/activity", actor,
        {"id": f"{actor}/statuses/{n}", "type": "Note", "content": "hi", "attributedTo": actor},
        to=["https://www.w3.org/ns/activitystreams#Public"],
    )


async def test_first_delivery_uses_rfc9421_and_verifies(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    alice = await local_account(node, "alice")
    result = await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    assert (result.status, result.scheme) == (202, "rfc9421")
    [got] = peer.received
    assert got.verdict.ok, got.verdict
    assert got.verdict.key_id == node.urls.main_key("alice")
    assert got.headers["Content-Type"] == "application/activity+json"
    assert "Content-Digest" in got.headers
    assert await delivery_store.signature_scheme(node.db, delivery_store.host_of(peer.base)) == (
        "rfc9421"
    )


async def test_double_knock_falls_back_to_cavage_and_remembers(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=only_cavage)
    alice = await local_account(node, "alice")
    first = await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    assert (first.status, first.scheme) == (202, "cavage")
    assert [r.scheme for r in peer.received] == ["rfc9421", "cavage"]
    # Both knocks carried the very same bytes, and both signatures were valid.
    assert peer.received[0].body == peer.received[1].body
    assert all(r.verdict.ok for r in peer.received)
    assert "Digest" in peer.received[1].headers

    second = await node.signer.post(
        fetcher, alice, peer.url("/inbox"), note_activity(node, alice, 2)
    )
    assert (second.status, second.scheme) == (202, "cavage")
    assert [r.scheme for r in peer.received] == ["rfc9421", "cavage", "cavage"]


async def test_remembered_scheme_that_stops_working_is_replaced(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    host = delivery_store.host_of(peer.base)
    await delivery_store.remember_scheme(node.db, host, "rfc9421")
    peer.answer = only_cavage  # the peer changed software
    alice = await local_account(node, "alice")
    result = await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    assert result.status == 202
    assert await delivery_store.signature_scheme(node.db, host) == "cavage"


@pytest.mark.parametrize("status", [429, 408, 500, 503])
async def test_load_and_server_errors_are_not_double_knocked(
    node, fetcher, aiohttp_server, status
):
    peer = await start_peer(
        aiohttp_server, node,
        answer=lambda r: web.Response(status=status, headers={"Retry-After": "120"}),
    )
    alice = await local_account(node, "alice")
    result = await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    assert result.status == status
    assert len(peer.received) == 1
    assert result.retry_after_s == (120.0 if status in (429, 503) else None)
    # Nothing worked, so nothing is remembered.
    host = delivery_store.host_of(peer.base)
    assert await delivery_store.signature_scheme(node.db, host) is None


async def test_a_real_refusal_is_tried_with_both_schemes_and_reported(
    node, fetcher, aiohttp_server
):
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=403))
    alice = await local_account(node, "alice")
    result = await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    assert result.status == 403
    assert [r.scheme for r in peer.received] == ["rfc9421", "cavage"]


async def test_activities_carry_a_verifiable_proof(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    alice = await local_account(node, "alice")
    await node.signer.post(fetcher, alice, peer.url("/inbox"), note_activity(node, alice))
    sent = peer.received[0].activity
    assert sent["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert sent["proof"]["verificationMethod"] == node.urls.ed25519_key("alice")
    assert DATA_INTEGRITY_CONTEXT in sent["@context"]
    ed = (await node.keys.for_account(alice)).ed25519
    assert ed is not None
    assert verify_proof(sent, ed.public_key).ok
    # Tampering breaks it: the proof covers the whole activity.
    sent["object"]["content"] = "forged"
    assert not verify_proof(sent, ed.public_key).ok


async def test_forwarded_activity_gets_no_proof_of_ours(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    alice = await local_account(node, "alice")
    forwarded = Serializer.activity(
        "Create", "https://elsewhere.example/1/activity", "https://elsewhere.example/users/x",
        {"id": "https://elsewhere.example/1", "type": "Note"},
    )
    await node.signer.post(fetcher, alice, peer.url("/inbox"), forwarded)
    assert "proof" not in peer.received[0].activity


async def test_instance_actor_signs_when_there_is_no_sender(node, fetcher, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    activity = Serializer.activity(
        "Flag", f"{node.urls.instance_actor}#flags/1", node.urls.instance_actor,
        "https://elsewhere.example/users/x",
    )
    result = await node.signer.post(fetcher, None, peer.url("/inbox"), activity)
    assert result.status == 202
    got = peer.received[0]
    assert got.verdict.ok and got.verdict.key_id == node.urls.instance_key
    assert "proof" not in got.activity  # the instance actor has no Ed25519 key


async def test_sign_hook_signs_gets_with_cavage(node, fetcher, aiohttp_server):
    peer = await start_peer(
        aiohttp_server, node, answer=lambda r: web.json_response({"ok": True})
    )
    alice = await local_account(node, "alice")
    await fetcher.fetch_json(peer.url("/users/x?page=1"), sign=node.signer.sign_hook(alice))
    await fetcher.fetch_json(peer.url("/users/y"), sign=node.signer.sign_hook())
    first, second = peer.received
    assert (first.method, first.scheme) == ("GET", "cavage")
    assert first.verdict.ok and first.verdict.key_id == node.urls.main_key("alice")
    assert second.verdict.ok and second.verdict.key_id == node.urls.instance_key


async def test_processes_making_the_first_key_at_once_agree_on_one(tmp_path: Path):
    """The serving, inbox and delivery processes each have a KeyRing on one database:
    when two make an actor's first keys at the same moment, both sign with the stored
    pair (a half-replaced row would make every signature fail)."""
    async with open_node(tmp_path) as node:
        alice = await local_account(node, "alice")
        other_db = database_for(node.settings.database_path)
        await other_db.open()
        try:
            other = KeyRing(other_db, node.urls, node.clock)
            mine, theirs = await asyncio.gather(
                node.keys.for_account(alice), other.for_account(alice)
            )
        finally:
            await other_db.close()
        stored = await node.db.fetchall(
            "SELECT key_id, public_pem FROM account_keys WHERE account_id = ? ORDER BY key_id",
            (alice.id,),
        )
        assert len(stored) == 2  # one RSA and one Ed25519 key
        for keys in (mine, theirs):
            by_id = {row["key_id"]: row["public_pem"] for row in stored}
            assert by_id[keys.rsa.key_id] == keys.rsa.public_key.to_pem()
            assert keys.ed25519 is not None
            assert by_id[keys.ed25519.key_id] == keys.ed25519.public_key.to_pem()
