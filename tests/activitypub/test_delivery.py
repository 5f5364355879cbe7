"""The delivery queue against real loopback servers: states, retries, limits, crash safety."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_signing import (
    Node,
    Peer,
    local_account,
    only_cavage,
    open_node,
    remote_account,
    start_peer,
)

from federation.http import FetchSettings
from federation.proofs import verify_proof
from xnode.accounts.models import Account
from xnode.activitypub import retry
from xnode.activitypub.delivery import DELIVERY, DeliveryQueue, worker_ctx
from xnode.store import deliveries as store
from xnode.store import domain_blocks


class LocalInbox:
    """Records what would have been handed to the incoming side's processor."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], Account]] = []

    async def __call__(self, activity: dict[str, Any], sender: Account) -> None:
        self.calls.append((activity, sender))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A fresh node."""
    async with open_node(tmp_path) as opened:
        yield opened


def make_queue(node: Node, local: LocalInbox | None = None, **options: Any) -> DeliveryQueue:
    """A queue over the node's database, allowed to reach loopback, with seeded jitter."""
    return DeliveryQueue(
        node.db, node.settings, node.clock, node.signer,
        FetchSettings(allow_private_addresses=True, timeout_s=5.0),
        local or LocalInbox(), rng=random.Random(7), **options,
    )


@pytest.fixture
async def queue(node: Node) -> AsyncIterator[DeliveryQueue]:
    """The node's delivery queue."""
    made = make_queue(node)
    yield made
    await made.close()


@pytest.fixture
async def alice(node: Node) -> Account:
    """A local sender."""
    return await local_account(node, "alice")


def activity(node: Node, sender: Account, n: int = 1) -> dict[str, Any]:
    """A Create from ``sender``, numbered so each is a distinct activity."""
    actor = node.urls.actor(sender.username)
    return node.serializer.activity(
        "Create", f"{actor}/statuses/{n}/activity", actor,
        {"id": f"{actor}/statuses/{n}", "type": "Note", "content": f"note {n}"},
        to=["https://www.w3.org/ns/activitystreams#Public"],
    )


async def follower_at(node: Node, peer: Peer, name: str = "bob") -> Account:
    """A remote account whose inbox is on ``peer``."""
    inbox = peer.url(f"/users/{name}/inbox")
    return await remote_account(node.db, name, "remote.test", inbox=inbox)


async def rows(node: Node) -> list[store.Delivery]:
    """Every delivery row, oldest first."""
    found = await node.db.fetchall("SELECT * FROM deliveries ORDER BY id")
    return [store.Delivery.from_row(row) for row in found]


async def host(node: Node, peer: Peer) -> store.HostHealth:
    """The peer's row in ``hosts``."""
    health = await store.host_health(node.db, store.host_of(peer.base))
    assert health is not None
    return health


# --- the happy path ------------------------------------------------------------------


async def test_delivered_once_with_valid_signature_and_proof(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    assert await queue.enqueue(activity(node, alice), alice, [bob], post_id=None) == 1
    assert await queue.run_due() == 1
    [got] = peer.received
    assert got.path == "/users/bob/inbox"
    assert got.verdict.ok
    ed = (await node.keys.for_account(alice)).ed25519
    assert ed is not None and verify_proof(got.activity, ed.public_key).ok
    [row] = await rows(node)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 1, 202, None)
    assert row.delivered_at == node.clock.now()
    assert await queue.run_due() == 0
    assert len(peer.received) == 1


async def test_shared_inbox_gets_one_row_for_many_recipients(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    shared = peer.url("/inbox")
    recipients = [
        await remote_account(node.db, name, "remote.test", inbox=peer.url(f"/users/{name}/inbox"),
                             shared_inbox=shared)
        for name in ("bob", "carol", "dan")
    ]
    lone = await remote_account(node.db, "erin", "solo.test", inbox=peer.url("/users/erin/inbox"))
    assert await queue.enqueue(activity(node, alice), alice, [*recipients, lone]) == 2
    assert sorted(r.inbox_url for r in await rows(node)) == sorted(
        [shared, peer.url("/users/erin/inbox")]
    )
    # Queueing the same activity again adds nothing (UNIQUE (activity_id, inbox_url)).
    assert await queue.enqueue(activity(node, alice), alice, recipients) == 0
    await queue.run_due()
    assert sorted(r.path for r in peer.received) == ["/inbox", "/users/erin/inbox"]


async def test_resend_rearms_a_delivered_row(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    sent = activity(node, alice)
    await queue.enqueue(sent, alice, [bob])
    await queue.run_due()
    assert await queue.enqueue(sent, alice, [bob]) == 0  # plain enqueue: already delivered
    assert await queue.enqueue(sent, alice, [bob], resend=True) == 1
    [row] = await rows(node)
    assert (row.state, row.attempts) == ("pending", 0)
    await queue.run_due()
    assert len(peer.received) == 2 and (await rows(node))[0].state == "delivered"


async def test_suspended_domains_are_skipped(node, queue, alice):
    await domain_blocks.add_block(node.db, "bad.test", "suspend", "spam", node.clock.now())
    await domain_blocks.add_block(node.db, "quiet.test", "silence", "", node.clock.now())
    suspended = await remote_account(node.db, "x", "social.bad.test",
                                     inbox="https://social.bad.test/users/x/inbox")
    silenced = await remote_account(node.db, "y", "quiet.test",
                                    inbox="https://quiet.test/users/y/inbox")
    assert await queue.enqueue(activity(node, alice), alice, [suspended, silenced]) == 1
    assert [r.host for r in await rows(node)] == ["quiet.test"]


async def test_suspending_cancels_queued_deliveries(node, queue, alice):
    target = await remote_account(node.db, "x", "bad.test", inbox="https://bad.test/inbox")
    await queue.enqueue(activity(node, alice), alice, [target])
    _, cancelled = await domain_blocks.add_block(node.db, "bad.test", "suspend", "", 0.0)
    assert cancelled == 1
    [row] = await rows(node)
    assert row.state == "failed" and "suspended" in (row.last_error or "")
    assert await queue.run_due() == 0


async def test_rows_queued_just_before_a_suspension_are_not_sent(
    node, queue, alice, aiohttp_server
):
    """A row committed after the suspension's own cancel (another process, planning from
    its cache) is refused at send time: the blocked server gets nothing."""
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    # The block as if made through another process a moment earlier: its cancel did not
    # see this row (written into the table, not through add_block, which would cancel it).
    await node.db.execute(
        "INSERT INTO domain_blocks (domain, severity, reason, created_at) VALUES (?, ?, '', ?)",
        (domain_blocks.hostname_of(store.host_of(peer.base)), "suspend", node.clock.now()),
    )
    await queue.run_due()
    assert peer.received == []
    [row] = await rows(node)
    assert row.state == "failed" and "suspended" in (row.last_error or "")


async def test_local_recipients_are_handed_over_without_http(node, alice):
    local = LocalInbox()
    queue = make_queue(node, local)
    lisa = await local_account(node, "lisa")
    lena = await local_account(node, "lena")
    sent = activity(node, alice)
    assert await queue.enqueue(sent, alice, [lisa, lena, alice]) == 0
    assert local.calls == [(sent, alice)]  # once per activity, not per recipient
    assert await rows(node) == []


# --- failures and retries --------------------------------------------------------------


async def test_server_error_schedules_a_retry_with_backoff(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=500))
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    start = node.clock.now()
    await queue.run_due()
    [row] = await rows(node)
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        "pending", 1, 500, "HTTP 500"
    )
    earliest = start + retry.base_delay_s(1)
    assert earliest <= row.next_attempt_at <= earliest + retry.max_jitter_s(1)
    assert (await host(node, peer)).consecutive_failures == 1

    assert await queue.run_due() == 0  # not due yet
    peer.answer = lambda r: web.Response(status=202)
    node.clock.advance(row.next_attempt_at - start)
    assert await queue.run_due() == 1
    [row] = await rows(node)
    assert (row.state, row.attempts) == ("delivered", 2)
    assert (await host(node, peer)).consecutive_failures == 0


async def test_gone_inbox_fails_for_good(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=410))
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    await queue.run_due()
    [row] = await rows(node)
    assert (row.state, row.last_status) == ("failed", 410)
    node.clock.advance(7 * 86400)
    assert await queue.run_due() == 0
    # Each scheme was tried once (a 4xx may be a signature problem), then never again.
    assert len(peer.received) == 2


async def test_a_payload_that_cannot_be_read_fails_for_good(node, queue, alice, aiohttp_server):
    """A queued row that can never be sent is not retried for days (issue 14)."""
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    rows_in = [store.NewDelivery("https://a.test/broken", alice.id, None, bob.inbox_url, "{")]
    await store.insert_many(node.db, rows_in, node.clock.now())
    assert await queue.run_due() == 1
    [row] = await rows(node)
    assert row.state == "failed" and row.attempts == 1
    assert "cannot be sent" in (row.last_error or "")
    assert peer.received == []


async def test_retry_after_pauses_the_whole_host(node, queue, alice, aiohttp_server):
    peer = await start_peer(
        aiohttp_server, node,
        answer=lambda r: web.Response(status=429, headers={"Retry-After": "3600"}),
    )
    bob = await follower_at(node, peer)
    start = node.clock.now()
    await queue.enqueue(activity(node, alice), alice, [bob])
    await queue.run_due()
    [row] = await rows(node)
    assert row.state == "pending" and row.next_attempt_at >= start + 3600
    assert (await host(node, peer)).retry_after_until == start + 3600
    assert len(peer.received) == 1  # 429 is never double-knocked

    peer.answer = lambda r: web.Response(status=202)
    await queue.enqueue(activity(node, alice, 2), alice, [bob])
    assert await queue.run_due() == 0  # due, but the host asked for a pause
    node.clock.advance(3601)
    assert await queue.run_due() == 2
    assert {r.state for r in await rows(node)} == {"delivered"}


async def test_double_knock_is_remembered_per_host(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=only_cavage)
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice, 1), alice, [bob])
    await queue.run_due()
    assert [r.scheme for r in peer.received] == ["rfc9421", "cavage"]
    assert (await host(node, peer)).signature_scheme == "cavage"
    await queue.enqueue(activity(node, alice, 2), alice, [bob])
    await queue.run_due()
    assert [r.scheme for r in peer.received] == ["rfc9421", "cavage", "cavage"]
    assert {r.state for r in await rows(node)} == {"delivered"}


async def test_unreachable_host_is_retried(node, queue, alice, unused_tcp_port):
    bob = await remote_account(node.db, "bob", "down.test",
                               inbox=f"http://127.0.0.1:{unused_tcp_port}/inbox")
    await queue.enqueue(activity(node, alice), alice, [bob])
    await queue.run_due()
    [row] = await rows(node)
    assert row.state == "pending" and row.last_status is None and row.last_error
    health = await store.host_health(node.db, row.host)
    assert health is not None and health.consecutive_failures == 1


async def test_gives_up_after_the_last_attempt(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=502))
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    await node.db.execute("UPDATE deliveries SET attempts = ?", (retry.MAX_ATTEMPTS - 1,))
    await queue.run_due()
    [row] = await rows(node)
    assert row.state == "failed" and row.attempts == retry.MAX_ATTEMPTS
    assert "gave up" in (row.last_error or "")


async def test_circuit_opens_then_probes_one_at_a_time(node, alice, aiohttp_server):
    queue = make_queue(node, per_host_limit=4)
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=503))
    bob = await follower_at(node, peer)
    # Trip the breaker: CIRCUIT_THRESHOLD failed attempts in a row.
    await node.db.execute(
        "INSERT INTO hosts (host, consecutive_failures) VALUES (?, ?)",
        (store.host_of(peer.base), retry.CIRCUIT_THRESHOLD - 1),
    )
    await queue.enqueue(activity(node, alice, 1), alice, [bob])
    await queue.run_due()
    health = await host(node, peer)
    assert health.consecutive_failures == retry.CIRCUIT_THRESHOLD
    assert health.circuit_open_until == node.clock.now() + retry.CIRCUIT_BASE_S

    # While open, nothing goes there, however due.
    for n in (2, 3, 4):
        await queue.enqueue(activity(node, alice, n), alice, [bob])
    assert await queue.run_due() == 0
    # Half-open: one probe only; it fails, and the pause doubles.
    node.clock.advance(retry.CIRCUIT_BASE_S + 1)
    assert await queue.run_due() == 1
    health = await host(node, peer)
    assert health.circuit_open_until == node.clock.now() + 2 * retry.CIRCUIT_BASE_S
    # The next probe succeeds and closes the circuit; then the rest flows again.
    peer.answer = lambda r: web.Response(status=202)
    node.clock.advance(2 * retry.CIRCUIT_BASE_S + 1)
    assert await queue.run_due() == 1
    health = await host(node, peer)
    assert (health.consecutive_failures, health.circuit_open_until) == (0, None)
    node.clock.advance(86400)
    assert await queue.run_due() == 3
    assert {r.state for r in await rows(node)} == {"delivered"}
    await queue.close()


async def test_retry_host_resets_failed_rows_and_the_circuit(node, queue, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=404))
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    await queue.run_due()
    assert (await rows(node))[0].state == "failed"
    await node.db.execute("UPDATE hosts SET consecutive_failures = 9, circuit_open_until = ?",
                          (node.clock.now() + 3600,))
    peer.answer = lambda r: web.Response(status=202)
    assert await queue.retry_host(store.host_of(peer.base)) == 1
    [row] = await rows(node)
    assert (row.state, row.attempts) == ("pending", 0)
    assert await queue.run_due() == 1
    assert (await rows(node))[0].state == "delivered"
    assert await queue.retry_host("nowhere.test") == 0


# --- limits ------------------------------------------------------------------------------


async def test_per_host_concurrency_is_respected(node, alice, aiohttp_server):
    queue = make_queue(node, per_host_limit=4)
    peer = await start_peer(aiohttp_server, node, hold=True)
    bob = await follower_at(node, peer)
    for n in range(10):
        await queue.enqueue(activity(node, alice, n), alice, [bob])
    # Two batches at once (as the worker overlaps them): still 4 in flight at most.
    batches = asyncio.gather(queue.run_due(), queue.run_due())
    await peer.wait_in_flight(4)
    await asyncio.sleep(0.2)  # time enough for a fifth request, which must not come
    assert peer.in_flight == 4
    peer.release.set()
    assert sorted(await batches) == [0, 4]
    while await queue.run_due():
        pass
    assert peer.max_in_flight == 4
    assert len(peer.received) == 10
    assert {r.state for r in await rows(node)} == {"delivered"}
    await queue.close()


async def test_global_limit_caps_all_hosts_together(node, alice, aiohttp_server):
    queue = make_queue(node, per_host_limit=4, global_limit=3)
    peers = [await start_peer(aiohttp_server, node, hold=True) for _ in range(2)]
    for i, peer in enumerate(peers):
        target = await follower_at(node, peer, f"user{i}")
        for n in range(3):
            await queue.enqueue(activity(node, alice, 10 * i + n), alice, [target])
    batch = asyncio.ensure_future(queue.run_due())
    async with asyncio.timeout(10):
        while sum(p.in_flight for p in peers) < 3:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert sum(p.in_flight for p in peers) == 3
    for peer in peers:
        peer.release.set()
    assert await batch == 3
    await queue.close()


# --- crash safety and the worker --------------------------------------------------------


async def test_a_row_left_pending_by_a_crash_is_delivered_once_after_restart(
    node, alice, aiohttp_server
):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    before = make_queue(node)
    await before.enqueue(activity(node, alice), alice, [bob])
    # The process died mid-way: the row is pending, attempted before, long overdue.
    await node.db.execute(
        "UPDATE deliveries SET attempts = 2, next_attempt_at = ?", (node.clock.now() - 86400,)
    )
    after = make_queue(node)  # a new process
    assert await after.run_due() == 1
    assert await after.run_due() == 0
    assert len(peer.received) == 1
    assert (await rows(node))[0].state == "delivered"
    await after.close()


async def test_a_send_cut_short_stays_pending_and_is_resent(node, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node, hold=True)
    bob = await follower_at(node, peer)
    dying = make_queue(node)
    await dying.enqueue(activity(node, alice), alice, [bob])
    sending = asyncio.create_task(dying.run_due())
    await asyncio.wait_for(peer.arrived.wait(), 5)
    sending.cancel()  # like kill -9: the answer never reaches us
    with pytest.raises(asyncio.CancelledError):
        await sending
    await dying.close()
    [row] = await rows(node)
    assert (row.state, row.attempts) == ("pending", 0)

    peer.release.set()
    restarted = make_queue(node)
    assert await restarted.run_due() == 1
    assert (await rows(node))[0].state == "delivered"
    # The peer saw the activity twice and de-duplicates it by id.
    ids = {r.activity["id"] for r in peer.received}
    assert len(ids) == 1
    await restarted.close()


async def test_worker_delivers_when_woken_by_enqueue(node, alice, aiohttp_server):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    app = web.Application()
    queue = app[DELIVERY] = make_queue(node)
    running = worker_ctx(app)
    await anext(running)  # as the application starts
    await asyncio.sleep(0.05)  # the worker is idle now, waiting for work
    await queue.enqueue(activity(node, alice), alice, [bob])
    await asyncio.wait_for(peer.arrived.wait(), 5)
    for _ in range(100):
        if (await rows(node))[0].state == "delivered":
            break
        await asyncio.sleep(0.02)
    assert (await rows(node))[0].state == "delivered"
    with pytest.raises(StopAsyncIteration):  # as the application stops
        await anext(running)
    assert queue._fetcher is None  # the worker closed its HTTP client


# --- reporting -------------------------------------------------------------------------


async def test_status_for_post_and_queue_summary(node, queue, alice, aiohttp_server):
    good = await start_peer(aiohttp_server, node)
    bad = await start_peer(aiohttp_server, node, answer=lambda r: web.Response(status=500))
    targets = [await follower_at(node, good, "bob"), await follower_at(node, bad, "carl")]
    await queue.enqueue(activity(node, alice), alice, targets, post_id=None)
    await node.db.execute("UPDATE deliveries SET post_id = NULL")
    post_id = 42
    await node.db.execute(
        "INSERT INTO posts (id, account_id, visibility, local, created_at)"
        " VALUES (?, ?, 'public', 1, 0)",
        (post_id, alice.id),
    )
    await node.db.execute("UPDATE deliveries SET post_id = ?", (post_id,))
    await queue.run_due()
    status = await queue.status_for_post(post_id)
    assert [tuple(s) for s in status] == [
        (store.host_of(bad.base), "pending", 1, "HTTP 500"),
        (store.host_of(good.base), "delivered", 1, None),
    ]
    [summary] = await queue.queue_summary()  # delivered-only hosts are not listed
    assert (summary.host, summary.pending, summary.failed, summary.last_error) == (
        store.host_of(bad.base), 1, 0, "HTTP 500"
    )


# --- hand-off of fresh rows to the worker ------------------------------------------------


async def test_fresh_rows_go_to_the_worker_without_a_queue_read(
    node, queue, alice, aiohttp_server, monkeypatch
):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    await queue.run_due()  # the worker has looked once: its ready list is complete
    reads = 0
    real_due = store.due

    async def counting_due(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_due(*args, **kwargs)

    monkeypatch.setattr(store, "due", counting_due)
    worker = asyncio.create_task(queue.run_forever())
    try:
        await asyncio.sleep(0.05)
        reads = 0
        await queue.enqueue(activity(node, alice), alice, [bob])
        for _ in range(200):
            if peer.received:
                break
            await asyncio.sleep(0.01)
        assert len(peer.received) == 1
        assert reads == 0  # sent from the hand-off, not from reading the queue back
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    [row] = await rows(node)
    assert row.state == "delivered"


async def test_handed_off_rows_are_sent_once_even_when_the_queue_is_read_too(
    node, queue, alice, aiohttp_server
):
    peer = await start_peer(aiohttp_server, node)
    bob = await follower_at(node, peer)
    await queue.run_due()
    await queue.enqueue(activity(node, alice), alice, [bob])
    assert await queue.run_due() == 1  # reads the queue: finds the handed-off row again
    assert await queue.run_due() == 0
    assert len(peer.received) == 1


async def test_rows_for_a_paused_host_are_not_handed_off(node, queue, alice, aiohttp_server):
    peer = await start_peer(
        aiohttp_server, node,
        answer=lambda r: web.Response(status=429, headers={"Retry-After": "3600"}),
    )  # fmt: skip
    bob = await follower_at(node, peer)
    await queue.enqueue(activity(node, alice), alice, [bob])
    await queue.run_due()  # the host asks for an hour's pause
    await queue.enqueue(activity(node, alice, 2), alice, [bob])
    assert not any(d.activity_id.endswith("/2/activity") for d, _ in queue._ready.values())


async def test_the_worker_stops_when_cancelled_as_it_is_woken(node, queue):
    """Python 3.11's wait_for loses a cancellation that arrives as the awaited event
    fires; the worker must stop anyway (else shutdown, and a test, hang forever)."""
    worker = asyncio.create_task(queue.run_forever())
    await asyncio.sleep(0.05)  # idle, waiting to be woken
    queue.wake()
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(worker, 5)
    assert worker.done()
