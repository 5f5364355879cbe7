"""POSTs to the inbox: what is refused (and with which status), what is queued, and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from conftest import (
    Node,
    activity,
    block_domain,
    create,
    note,
    post_activity,
    signed_headers,
)

from federation import ldsignatures, proofs
from xnode.activitypub import handlers
from xnode.activitypub.endpoints import KEYRING
from xnode.activitypub.inbox import INBOX, MAX_ATTEMPTS, RETRY_DELAY_S, run_forever
from xnode.activitypub.keys import SigningKey
from xnode.posts.service import Draft
from xnode.web.state import POSTS


async def queue(node: Node) -> list[dict]:
    """The inbox queue rows, oldest first."""
    rows = await node.db.fetchall("SELECT * FROM inbox_queue ORDER BY id")
    return [dict(row) for row in rows]


@pytest.fixture
async def bob(node_a: Node, node_b: Node) -> SigningKey:
    """bob@b's signing key (bob exists on node b; node a has never heard of him)."""
    return await node_b.key(await node_b.user("bob"))


@pytest.fixture
async def alice_post(node_a: Node):
    """A public post by alice@a, for activities to point at."""
    alice = await node_a.user("alice")
    return await node_a.app[POSTS].publish(alice, Draft(source="hello"))


def like_of(node_b: Node, post_uri: str, username: str = "bob") -> dict:
    return activity("Like", node_b.actor(username), post_uri)


async def test_signed_activity_is_queued_and_answered_202(node_a, node_b, bob, alice_post):
    like = like_of(node_b, alice_post.uri)
    response = await post_activity(node_a, like, bob)
    assert response.status == 202, await response.text()
    (row,) = await queue(node_a)
    assert row["activity_id"] == like["id"] and row["state"] == "pending"
    assert row["signer_key_id"] == bob.key_id and row["actor_uri"] == node_b.actor("bob")
    assert await node_a.process() == 1
    assert (await queue(node_a))[0]["state"] == "done"
    post = await node_a.db.fetchone("SELECT likes_count FROM posts WHERE id = ?", (alice_post.id,))
    assert post["likes_count"] == 1


async def test_personal_inbox_and_rfc9421(node_a, node_b, bob, alice_post):
    like = like_of(node_b, alice_post.uri)
    body = json.dumps(like).encode()
    url = f"{node_a.base}/users/alice/inbox"
    headers = signed_headers("POST", url, body, bob, now=node_a.clock.now(), scheme="rfc9421")
    response = await node_a.client.post("/users/alice/inbox", data=body, headers=headers)
    assert response.status == 202, await response.text()
    assert (await post_activity(node_a, like, bob, path="/users/nobody/inbox")).status == 404


async def test_unsigned_post_is_401(node_a, node_b, alice_post):
    response = await post_activity(node_a, like_of(node_b, alice_post.uri), None)
    assert response.status == 401
    assert await queue(node_a) == []


async def test_forged_signature_is_401(node_a, node_b, bob, alice_post):
    carol = await node_b.key(await node_b.user("carol"))
    forged = SigningKey(bob.key_id, carol.private_key, carol.public_key)
    response = await post_activity(node_a, like_of(node_b, alice_post.uri), forged)
    assert response.status == 401
    assert await queue(node_a) == []


async def test_signer_must_be_the_actor(node_a, node_b, bob, alice_post):
    await node_b.user("carol")
    as_carol = like_of(node_b, alice_post.uri, "carol")
    response = await post_activity(node_a, as_carol, bob)
    assert response.status == 401
    assert "do not match" in await response.text()


async def test_old_date_is_401(node_a, node_b, bob, alice_post):
    stale = node_a.clock.now() - 2 * 3600
    response = await post_activity(node_a, like_of(node_b, alice_post.uri), bob, now=stale)
    assert response.status == 401


async def test_digest_mismatch_is_401(node_a, node_b, bob, alice_post):
    like = like_of(node_b, alice_post.uri)
    tampered = json.dumps({**like, "object": "https://elsewhere.example/x"}).encode()
    response = await post_activity(node_a, like, bob, body=tampered)
    assert response.status == 401


async def test_oversized_body_is_413(node_a, bob):
    huge = b'{"type": "Note", "content": "' + b"x" * (1024 * 1024) + b'"}'
    assert (await post_activity(node_a, huge, bob)).status == 413
    # Also when the size is not declared up front (chunked).
    async def chunks():
        yield huge[:1000]
        yield huge[1000:]

    response = await node_a.client.post("/inbox", data=chunks(),
                                        headers={"Content-Type": "application/activity+json"})
    assert response.status == 413


async def test_bad_json_is_400(node_a, bob):
    nested = b'{"a": ' * 100 + b"1" + b"}" * 100
    assert (await post_activity(node_a, nested, bob)).status == 400
    assert (await post_activity(node_a, b"not json", bob)).status == 400
    assert (await post_activity(node_a, b"[1, 2]", bob)).status == 400
    assert (await post_activity(node_a, {"type": "Like"}, bob)).status == 400  # no actor


async def test_activity_id_on_another_host_is_403(node_a, node_b, bob, alice_post):
    like = like_of(node_b, alice_post.uri) | {"id": "https://elsewhere.example/likes/1"}
    assert (await post_activity(node_a, like, bob)).status == 403


async def test_our_own_actors_cannot_be_spoofed(node_a, node_b, bob, alice_post):
    like = activity("Like", node_a.actor("alice"), alice_post.uri)
    assert (await post_activity(node_a, like, bob)).status == 401


async def test_suspended_domain_is_403(node_a, node_b, bob, alice_post):
    await block_domain(node_a, "127.0.0.1")
    assert (await post_activity(node_a, like_of(node_b, alice_post.uri), bob)).status == 403


async def test_replay_is_accepted_but_processed_once(node_a, node_b, bob, alice_post):
    like = like_of(node_b, alice_post.uri)
    assert (await post_activity(node_a, like, bob)).status == 202
    await node_a.process()
    assert (await post_activity(node_a, like, bob)).status == 202
    assert await node_a.process() == 0
    assert len(await queue(node_a)) == 1
    row = await node_a.db.fetchone("SELECT likes_count FROM posts WHERE id = ?", (alice_post.id,))
    assert row["likes_count"] == 1


async def test_rotated_key_is_refetched_once(node_a, node_b, bob, alice_post):
    assert (await post_activity(node_a, like_of(node_b, alice_post.uri), bob)).status == 202
    # bob's server rotates his key (same key id, new material).
    bob_account = await node_b.resolver.known_account(node_b.actor("bob"))
    assert bob_account is not None
    await node_b.db.execute("DELETE FROM account_keys WHERE account_id = ?", (bob_account.id,))
    node_b.app[KEYRING].forget(bob_account.id)
    new_key = await node_b.key(bob_account)
    assert new_key.public_key != bob.public_key
    node_a.clock.advance(120)
    response = await post_activity(node_a, activity("Undo", node_b.actor("bob"), "x"), new_key)
    assert response.status == 202, await response.text()
    # The old key no longer works now that the new one is cached.
    response = await post_activity(node_a, activity("Undo", node_b.actor("bob"), "y"), bob)
    assert response.status == 401


async def test_forwarded_activity_with_the_authors_ld_signature(
    node_a, node_b, make_node, bob, alice_post
):
    node_c = await make_node("c")
    relay = await node_c.key(await node_c.user("relay"))
    reply = create(note(node_b.actor("bob"), inReplyTo=alice_post.uri,
                        cc=[node_a.actor("alice")]))  # fmt: skip
    reply["@context"] = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    assert (await post_activity(node_a, reply, relay)).status == 401
    signed = ldsignatures.sign_document(reply, bob.private_key, bob.key_id)
    assert (await post_activity(node_a, signed, relay)).status == 202
    await node_a.process()
    stored = await node_a.db.fetchone("SELECT in_reply_to_id FROM posts WHERE uri = ?",
                                      (reply["object"]["id"],))  # fmt: skip
    assert stored["in_reply_to_id"] == alice_post.id


async def test_forwarded_activity_with_an_integrity_proof(node_a, node_b, make_node, alice_post):
    node_c = await make_node("c")
    relay = await node_c.key(await node_c.user("relay"))
    bob_account = await node_b.user("bob")
    ed = (await node_b.app[KEYRING].for_account(bob_account)).ed25519
    like = like_of(node_b, alice_post.uri)
    like["@context"] = ["https://www.w3.org/ns/activitystreams",
                        "https://w3id.org/security/data-integrity/v1"]  # fmt: skip
    signed = proofs.sign_document(like, ed.private_key, ed.key_id)
    assert (await post_activity(node_a, signed, relay)).status == 202
    tampered = {**signed, "object": node_a.actor("alice")}
    assert (await post_activity(node_a, tampered, relay)).status == 401


# --- the worker ---------------------------------------------------------------------------


async def test_worker_processes_on_wake_up(node_a, node_b, bob, alice_post):
    task = asyncio.create_task(run_forever(node_a.app))
    try:
        assert (await post_activity(node_a, like_of(node_b, alice_post.uri), bob)).status == 202
        for _ in range(200):
            if (await queue(node_a))[0]["state"] == "done":
                break
            await asyncio.sleep(0.02)
        assert (await queue(node_a))[0]["state"] == "done"
    finally:
        task.cancel()


async def test_worker_stops_when_cancelled_as_it_is_woken(node_a):
    """Python 3.11's wait_for loses a cancellation that arrives as the awaited event
    fires; the worker must stop anyway (else shutdown hangs forever)."""
    task = asyncio.create_task(run_forever(node_a.app))
    await asyncio.sleep(0.05)  # idle, waiting to be woken
    node_a.app[INBOX].wake()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.done()


async def test_failing_handler_is_retried_then_marked_failed(
    node_a, node_b, bob, alice_post, monkeypatch
):
    calls = []

    async def broken(ctx, parsed, actor):
        calls.append(parsed.id)
        raise RuntimeError("database on fire")

    monkeypatch.setitem(handlers.HANDLERS, "Like", broken)
    assert (await post_activity(node_a, like_of(node_b, alice_post.uri), bob)).status == 202
    await node_a.process()
    (row,) = await queue(node_a)
    assert row["state"] == "pending" and row["attempts"] == 1
    assert await node_a.process() == 0  # not due yet: retries wait
    for attempt in range(2, MAX_ATTEMPTS + 1):
        node_a.clock.advance(RETRY_DELAY_S * attempt)
        assert await node_a.process() == 1
    (row,) = await queue(node_a)
    assert row["state"] == "failed" and row["attempts"] == MAX_ATTEMPTS
    assert "database on fire" in row["last_error"] and len(calls) == MAX_ATTEMPTS


async def test_refused_activity_is_done_with_the_reason(node_a, node_b, bob):
    await node_a.user("alice")
    follow = activity("Follow", node_b.actor("bob"), "https://elsewhere.example/users/x")
    assert (await post_activity(node_a, follow, bob)).status == 202
    await node_a.process()
    (row,) = await queue(node_a)
    assert row["state"] == "done" and row["last_error"].startswith("refused:")


async def test_a_cancelled_batch_still_records_what_it_finished(
    node_a, node_b, bob, alice_post, monkeypatch
):
    # Successes are marked done once per batch; shutdown cancelling the batch must
    # not leave the finished items to run again after a restart.
    original = handlers.HANDLERS["Like"]
    stuck = asyncio.Event()

    async def second_one_hangs(ctx, parsed, actor):
        if parsed.id == second["id"]:
            stuck.set()
            await asyncio.Event().wait()
        await original(ctx, parsed, actor)

    monkeypatch.setitem(handlers.HANDLERS, "Like", second_one_hangs)
    first, second = like_of(node_b, alice_post.uri), like_of(node_b, alice_post.uri)
    for like in (first, second):
        assert (await post_activity(node_a, like, bob)).status == 202
    batch = asyncio.create_task(node_a.app[INBOX].process_pending())
    await asyncio.wait_for(stuck.wait(), 5)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    states = {row["activity_id"]: (row["state"], row["attempts"]) for row in await queue(node_a)}
    assert states == {first["id"]: ("done", 1), second["id"]: ("pending", 0)}
