"""Interoperability with an independent implementation: the Fedify 2.3 peer over HTTPS.

xnode serves https://xnode-a.test (127.0.0.21:443) with a certificate from the
test CA and trusts that CA for outgoing requests; the peer serves
https://fedify.test. Everything travels as signed activities between the two.
All tests live in this one module so that one pytest-xdist worker owns the two
addresses' port 443.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from browser_fedify import (  # noqa: F401 (collected here: this worker owns port 443)
    test_a_fedify_person_is_found_read_and_followed_in_the_browser,
)
from fedify_peer import CERTS, NODE_HOST, NODE_IP, PEER_HOST, FedifyPeer
from test_browser import browser  # noqa: F401 (the fixture, for the browser test)

from xnode.accounts.models import Account
from xnode.activitypub.backfill import BACKFILL
from xnode.activitypub.endpoints import RESOLVER
from xnode.activitypub.urls import PUBLIC
from xnode.dms.service import DirectMessages
from xnode.errors import NotFound
from xnode.posts.service import Draft
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import (
    ACCOUNTS,
    CLOCK,
    DB,
    EVENTS,
    POSTS,
    RELATIONSHIPS,
    SETTINGS,
    TIMELINES,
)

PASSWORD = "correct horse battery"


class TlsNode:
    """xnode serving HTTPS at https://xnode-a.test."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def __getitem__(self, key: Any) -> Any:
        return self.app[key]

    async def user(self, name: str) -> Account:
        return (await self.app[ACCOUNTS].create_user(name, PASSWORD)).account

    async def post_by_uri(self, uri: str) -> Any:
        return await self.app[DB].fetchone("SELECT * FROM posts WHERE uri = ?", (uri,))


@pytest.fixture
async def node(tmp_path: Path, fedify_peer: FedifyPeer) -> AsyncIterator[TlsNode]:
    settings = settings_from_mapping(
        tmp_path / "xnode-a",
        {
            "domain": NODE_HOST, "base_url": f"https://{NODE_HOST}", "registration": "open",
            "listen": f"{NODE_IP}:443", "ca_file": str(CERTS / "ca.crt"),
            "allow_private_addresses": True,
        },
        secret_key=secrets.token_bytes(32),
    )
    settings.data_dir.mkdir(parents=True)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / f"{NODE_HOST}.chain.crt", CERTS / f"{NODE_HOST}.key")
    await web.TCPSite(runner, NODE_IP, 443, ssl_context=context).start()
    # Each test's node has fresh keys and actors: the peer must not reuse cached ones.
    await asyncio.to_thread(fedify_peer.ctl, "/clear-cache", {})
    yield TlsNode(app)
    await runner.cleanup()


async def ctl(peer: FedifyPeer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call the peer's control API without blocking the event loop xnode serves on."""
    return await asyncio.to_thread(peer.ctl, path, body)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def peer_received(peer: FedifyPeer, **query: str) -> dict[str, Any]:
    """Wait (long-poll) for the peer to log a verified incoming activity."""
    params = "&".join(f"{k}={urllib.request.quote(v, safe='')}" for k, v in query.items())
    log = await ctl(peer, f"/inbox-log?{params}&wait=15")
    assert log["entries"], f"peer received nothing matching {query}"
    return log["entries"][-1]


def names() -> tuple[str, str]:
    """Fresh actor names per test (the peer's state lives for the whole session)."""
    tag = secrets.token_hex(3)
    return f"xa{tag}", f"pb{tag}"


async def test_xnode_answers_over_https_with_the_test_ca(node: TlsNode):
    context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
    url = f"https://{NODE_HOST}/.well-known/nodeinfo"

    def fetch() -> Any:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return json.load(response)

    assert (await asyncio.to_thread(fetch))["links"]


async def test_fedify_sees_our_actors_ed25519_key(node: TlsNode, fedify_peer: FedifyPeer):
    """Fedify reads actors as JSON-LD; our Multikey must survive it (issue 15), or
    Fedify-based servers cannot verify our FEP-8b32 proofs."""
    local, _ = names()
    await node.user(local)
    found = (await ctl(fedify_peer, "/lookup", {"handle": f"@{local}@{NODE_HOST}"}))["object"]
    methods = found.get("assertionMethod")
    methods = methods if isinstance(methods, list) else [methods]
    keys = [m for m in methods if isinstance(m, dict) and m.get("publicKeyMultibase")]
    assert keys, f"no Multikey in Fedify's view of our actor: {json.dumps(found)[:2000]}"
    assert keys[0]["id"] == f"https://{NODE_HOST}/users/{local}#ed25519-key"
    assert keys[0]["publicKeyMultibase"].startswith("z6Mk")  # an Ed25519 public key


async def test_a_fedify_profile_is_read_from_its_outbox(node: TlsNode, fedify_peer: FedifyPeer):
    """Viewing a remote profile reads its server's outbox and counts (issue 15): the peer's
    public notes show up on xnode although nobody here follows the peer's actor."""
    _, remote = names()
    await ctl(fedify_peer, "/actor", {"actor": remote})
    notes = [await ctl(fedify_peer, "/note", {"actor": remote, "content": f"zqx outbox {n}",
                                              "to": ["public"]}) for n in range(2)]  # fmt: skip
    assert all(n["ok"] for n in notes), notes
    account = await node[RESOLVER].actor_by_handle(f"{remote}@{PEER_HOST}")
    await node[BACKFILL].for_profile(account)
    for note in notes:
        row = await eventually(lambda note=note: node.post_by_uri(note["noteId"]))
        assert row["visibility"] == "public" and "zqx outbox" in row["content_html"]
    counts = await node[DB].fetchone(
        "SELECT statuses_count, followers_count FROM accounts WHERE id = ?", (account.id,)
    )
    assert (counts["statuses_count"], counts["followers_count"]) == (2, 0)


async def test_peer_follows_xnode_user_and_gets_posts(node: TlsNode, fedify_peer: FedifyPeer):
    local, remote = names()
    alice = await node.user(local)
    result = await ctl(fedify_peer, "/follow", {"actor": remote, "target": f"@{local}@{NODE_HOST}"})
    assert result["ok"], result
    accept = await peer_received(fedify_peer, type="Accept", actor=f"https://{NODE_HOST}/users/{local}")
    assert accept["httpSignature"]["verified"]
    assert (await node[RELATIONSHIPS].counts(alice.id))[0] == 1

    post = await node[POSTS].publish(alice, Draft("Hello Fedify #interop"))
    create = await peer_received(fedify_peer, type="Create", objectId=post.uri)
    assert PUBLIC in create["to"]
    assert f"https://{NODE_HOST}/users/{local}/followers" in create["cc"]
    assert create["proof"] and create["proof"]["cryptosuite"] == "eddsa-jcs-2022"

    await node[POSTS].edit(alice.id, post.id, source="Hello Fedify (edited)", summary="",
                           sensitive=False)
    await peer_received(fedify_peer, type="Update", objectId=post.uri)
    await node[POSTS].delete(alice.id, post.id)
    await peer_received(fedify_peer, type="Delete")

    assert (await ctl(fedify_peer, "/unfollow", {"actor": remote,
                                                  "target": f"@{local}@{NODE_HOST}"}))["ok"]

    async def unfollowed():
        return (await node[RELATIONSHIPS].counts(alice.id))[0] == 0

    await eventually(unfollowed)


async def test_xnode_user_follows_peer_and_receives_posts_likes_boosts(
    node: TlsNode, fedify_peer: FedifyPeer
):
    local, remote = names()
    alice = await node.user(local)
    bob = await node[RESOLVER].actor_by_handle(f"{remote}@{PEER_HOST}")
    assert bob.uri == fedify_peer.actor(remote)
    await node[RELATIONSHIPS].follow(alice.id, bob.id)
    await peer_received(fedify_peer, type="Follow", actor=f"https://{NODE_HOST}/users/{local}")

    async def accepted():
        return (await node[RELATIONSHIPS].relationship(alice.id, bob.id)).following

    await eventually(accepted)

    note = await ctl(fedify_peer, "/note", {"actor": remote, "content": "hi from fedify",
                                            "to": ["public"]})
    assert note["ok"], note
    stored = await eventually(lambda: node.post_by_uri(note["noteId"]))
    assert stored["visibility"] == "public"
    home = await node[TIMELINES].home(alice.id)
    assert note["noteId"] in [v.post.uri for v in home.items]

    # The peer replies to, likes and boosts alice's post.
    mine = await node[POSTS].publish(alice, Draft("a post to react to"))
    reply = await ctl(fedify_peer, "/note", {"actor": remote, "content": "nice",
                                             "to": [f"@{local}@{NODE_HOST}"], "cc": ["public"],
                                             "inReplyTo": mine.uri})
    assert reply["ok"], reply
    stored_reply = await eventually(lambda: node.post_by_uri(reply["noteId"]))
    assert stored_reply["in_reply_to_id"] == mine.id
    assert (await ctl(fedify_peer, "/like", {"actor": remote, "object": mine.uri}))["ok"]
    assert (await ctl(fedify_peer, "/announce", {"actor": remote, "object": mine.uri}))["ok"]

    async def counted():
        view = await node[POSTS].view(alice.id, mine.id)
        return view.post.likes_count == 1 and view.post.reblogs_count == 1

    await eventually(counted)

    # alice likes and boosts the peer's note; the peer sees both.
    await node[POSTS].like(alice.id, stored["id"])
    await peer_received(fedify_peer, type="Like", actor=f"https://{NODE_HOST}/users/{local}")
    await node[POSTS].boost(alice, stored["id"])
    await peer_received(fedify_peer, type="Announce", actor=f"https://{NODE_HOST}/users/{local}")

    # The peer edits and deletes its note.
    assert (await ctl(fedify_peer, "/update", {"actor": remote, "object": note["noteId"],
                                               "content": "edited on fedify"}))["ok"]

    async def edited():
        row = await node.post_by_uri(note["noteId"])
        return "edited on fedify" in row["content_html"]

    await eventually(edited)
    assert (await ctl(fedify_peer, "/delete", {"actor": remote, "object": note["noteId"]}))["ok"]

    async def deleted():
        row = await node.post_by_uri(note["noteId"])
        return row["deleted_at"] is not None

    await eventually(deleted)

    await node[RELATIONSHIPS].unfollow(alice.id, bob.id)
    await peer_received(fedify_peer, type="Undo", actor=f"https://{NODE_HOST}/users/{local}")


async def test_direct_messages_both_ways(node: TlsNode, fedify_peer: FedifyPeer):
    local, remote = names()
    alice = await node.user(local)
    carol = await node.user(f"c{local}")

    sent = await ctl(fedify_peer, "/note", {"actor": remote, "content": "psst",
                                            "to": [f"@{local}@{NODE_HOST}"]})
    assert sent["ok"], sent
    dm = await eventually(lambda: node.post_by_uri(sent["noteId"]))
    assert dm["visibility"] == "direct"
    assert (await node[POSTS].view(alice.id, dm["id"])).post.uri == sent["noteId"]
    for outsider in (carol.id, None):
        with pytest.raises(NotFound):
            await node[POSTS].view(outsider, dm["id"])

    answer = await node[POSTS].publish(
        alice, Draft(f"@{remote}@{PEER_HOST} secret reply", visibility="direct",
                     in_reply_to_id=dm["id"])
    )
    received = await peer_received(fedify_peer, type="Create", objectId=answer.uri)
    assert received["to"] == [fedify_peer.actor(remote)]
    assert received["cc"] == []
    assert PUBLIC not in json.dumps(received["activity"])


async def test_peer_dms_join_one_conversation_and_chat_replies_reach_the_peer(
    node: TlsNode, fedify_peer: FedifyPeer
):
    local, remote = names()
    alice = await node.user(local)
    dms = DirectMessages(node[DB], node[SETTINGS], node[CLOCK], node[EVENTS], node[POSTS])

    first = await ctl(fedify_peer, "/note", {"actor": remote, "content": "first",
                                             "to": [f"@{local}@{NODE_HOST}"]})  # fmt: skip
    dm = await eventually(lambda: node.post_by_uri(first["noteId"]))
    conversation_id = dm["conversation_id"]
    assert conversation_id is not None
    # alice does not follow the peer's user: the conversation waits in Requests.
    assert [c.id for c in await dms.conversations(alice.id, "request")] == [conversation_id]
    assert await dms.conversations(alice.id) == []

    # A second DM (no reply, no shared context) joins the same conversation by participants.
    second = await ctl(fedify_peer, "/note", {"actor": remote, "content": "second",
                                              "to": [f"@{local}@{NODE_HOST}"]})  # fmt: skip
    dm2 = await eventually(lambda: node.post_by_uri(second["noteId"]))
    assert dm2["conversation_id"] == conversation_id
    assert await dms.unread_in(alice.id, conversation_id) == 2

    # Answering from the chat accepts the request and reaches the peer as a DM.
    answer = await dms.send(alice, conversation_id, "hello back", reply_to_id=dm2["id"])
    received = await peer_received(fedify_peer, type="Create", objectId=answer.uri)
    note = received["activity"]["object"]
    assert received["to"] == [fedify_peer.actor(remote)] and received["cc"] == []
    assert note["inReplyTo"] == second["noteId"]
    assert PUBLIC not in json.dumps(received["activity"])
    assert [c.id for c in await dms.conversations(alice.id)] == [conversation_id]

    # The peer replies to alice's message: same conversation, unread again.
    third = await ctl(fedify_peer, "/note", {"actor": remote, "content": "third",
                                             "to": [f"@{local}@{NODE_HOST}"],
                                             "inReplyTo": answer.uri})  # fmt: skip
    dm3 = await eventually(lambda: node.post_by_uri(third["noteId"]))
    assert dm3["conversation_id"] == conversation_id
    await dms.mark_read(alice.id, conversation_id)
    assert await dms.unread_in(alice.id, conversation_id) == 0

    # Deleting a message from the chat reaches the peer as Delete.
    await dms.delete(alice.id, answer.id)
    await peer_received(fedify_peer, type="Delete", actor=f"https://{NODE_HOST}/users/{local}")
