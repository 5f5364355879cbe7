"""Two ``xnode serve`` processes on one PostgreSQL database serve one node (issue 18).

Real processes, as a reverse proxy would run them: one data directory and config, one
database, two listen addresses. Whatever ``XNODE_TEST_DATABASE`` says, these need
PostgreSQL (a SQLite node has one serving process): the worker's throwaway cluster
(tests/database_backend.py); skipped where Debian's binaries are missing.

- A DM sent through process 1 reaches the recipient's live socket on process 2 at once
  (LISTEN/NOTIFY relay, :mod:`xnode.live.relay`).
- A fan-out to 500 remote inboxes, sent by both processes, reaches each inbox exactly once
  (deliveries claimed with ``FOR UPDATE SKIP LOCKED``, :func:`xnode.store.deliveries.due`).
- One signed activity POSTed to both processes at the same moment is one queue row,
  handled once, and both POSTs are answered 202 (the insert race's loser sees a replay).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from click.testing import CliRunner
from database_backend import fresh_database_url
from served_node import Receivers, ServedNode, WebUser, add_followers

from federation.keys import generate_rsa_key, public_key_of
from federation.signatures import sign_request
from xnode.accounts.service import AccountService
from xnode.cli import main
from xnode.clock import SystemClock
from xnode.settings import load_settings
from xnode.store import domain_blocks, helper_processes
from xnode.store.database import open_database

AP_JSON = "application/activity+json"
async def frame_of(socket: aiohttp.ClientWebSocketResponse, kind: str, timeout: float) -> Any:
    """The next frame of type ``kind`` on a live socket (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind} frame within {timeout}s")
        message = await socket.receive(timeout=left)
        assert message.type == WSMsgType.TEXT, message
        frame = json.loads(message.data)
        if frame["type"] == kind:
            return frame


async def test_a_dm_sent_through_one_process_reaches_a_tab_on_the_other(pair_factory):
    pair = await pair_factory("alice", "bob")
    await pair.start()
    alice, bob = WebUser(pair.two), WebUser(pair.one)
    try:
        await alice.login("alice")
        await bob.login("bob")
        socket = await alice.session.ws_connect("/live")
        await frame_of(socket, "unread", 5)  # connected, on process 2
        started = time.monotonic()
        status = await bob.submit(
            "/messages/new", {"to": "@alice", "source": "zqx across processes"},
            token_page="/messages/new",
        )  # fmt: skip
        assert status == 303, pair.logs()
        frame = await frame_of(socket, "message", 3)
        took = time.monotonic() - started
        assert "zqx across processes" in frame["html"] and not frame["mine"]
        assert took < 2.0, f"the DM took {took:.2f}s to cross"
        await socket.close()
    finally:
        await alice.close()
        await bob.close()


# --- a fan-out sent by both processes -------------------------------------------------------


async def test_a_fan_out_sent_by_both_processes_reaches_each_inbox_once(pair_factory):
    hosts, per_host = 50, 10
    pair = await pair_factory("alice")
    # A peer takes a while: the fan-out lasts long enough for both processes to be sending.
    receivers = Receivers(delay_s=0.05)
    await receivers.start(hosts)
    try:
        followers = add_followers(pair.one, "alice", receivers.ports, per_host)
        assert followers == 500
        await pair.start()
        alice = WebUser(pair.one)
        try:
            await alice.login("alice")
            status = await alice.submit("/posts", {"source": "zqx to five hundred inboxes"})
            assert status == 303, pair.logs()
        finally:
            await alice.close()
        # Generous: on a loaded machine a peer's answer can miss the 10 s deadline, and the
        # retry comes 15-25 s later (activitypub/retry.py).
        deadline = time.monotonic() + 150
        while len({inbox for inbox, _ in receivers.received}) < followers:
            if time.monotonic() > deadline:
                async with open_database(pair.url) as db:
                    unsent = await db.fetchall(
                        "SELECT state, attempts, claimed_by, last_status, last_error,"
                        " COUNT(*) AS n FROM deliveries WHERE state <> 'delivered'"
                        " GROUP BY state, attempts, claimed_by, last_status, last_error"
                    )
                raise AssertionError(
                    f"{len(receivers.received)} of {followers} arrived; not delivered:"
                    f" {[dict(row) for row in unsent]}\n{pair.logs()}"
                )
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # anything sent twice would have arrived by now
        counts = Counter(inbox for inbox, _ in receivers.received)
        assert len(counts) == followers
        twice = {inbox: n for inbox, n in counts.items() if n != 1}
        assert not twice, f"{len(twice)} inboxes got the post more than once"
        async with open_database(pair.url) as db:
            senders = await db.fetchall(
                "SELECT claimed_by, COUNT(*) AS n FROM deliveries WHERE state = 'delivered'"
                " GROUP BY claimed_by"
            )
            pending = await db.fetchvalue(
                "SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'"
            )
        assert pending == 0
        by_listen = Counter()
        for row in senders:
            owner = row["claimed_by"] or ""
            by_listen[owner.split("/")[1] if "/" in owner else owner] += row["n"]
        # Both processes (or their delivery processes) sent part of the fan-out.
        assert set(by_listen) == {f"127.0.0.1:{pair.one.port}", f"127.0.0.1:{pair.two.port}"}, (
            by_listen
        )
    finally:
        await receivers.close()


# --- one activity POSTed to both processes at once -----------------------------------------


class RemoteActor:
    """A remote person (``mallory``) on a loopback server: actor document, key, inbox."""

    def __init__(self) -> None:
        self.private_key = generate_rsa_key()
        self.received: list[dict[str, Any]] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    @property
    def uri(self) -> str:
        """The actor's id."""
        return f"{self.base}/users/mallory"

    async def start(self) -> None:
        """Serve the actor."""
        public_pem = public_key_of(self.private_key).to_pem()

        async def actor(request: web.Request) -> web.Response:
            doc = {
                "@context": ["https://www.w3.org/ns/activitystreams",
                             "https://w3id.org/security/v1"],
                "id": self.uri, "type": "Person", "preferredUsername": "mallory",
                "inbox": f"{self.uri}/inbox", "outbox": f"{self.uri}/outbox",
                "followers": f"{self.uri}/followers", "name": "Mallory",
                "publicKey": {"id": f"{self.uri}#main-key", "owner": self.uri,
                              "publicKeyPem": public_pem},
            }  # fmt: skip
            return web.json_response(doc, content_type=AP_JSON)

        async def inbox(request: web.Request) -> web.Response:
            self.received.append(json.loads(await request.read()))
            return web.Response(status=202)

        app = web.Application()
        app.router.add_get("/users/mallory", actor)
        app.router.add_post("/users/mallory/inbox", inbox)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def signed(self, url: str, host: str, body: bytes) -> dict[str, str]:
        """Headers for POSTing ``body`` to ``url`` as a proxy would pass it on (``host``)."""
        headers = {"Content-Type": AP_JSON, "Host": host}
        headers.update(sign_request("POST", url, headers, body, f"{self.uri}#main-key",
                                    self.private_key, now=time.time()))  # fmt: skip
        return headers


async def test_an_activity_posted_to_both_processes_at_once_is_handled_once(pair_factory):
    pair = await pair_factory("alice")
    mallory = RemoteActor()
    await mallory.start()
    try:
        await pair.start()
        alice_uri = f"{pair.one.base_url}/users/alice"
        follow = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{mallory.uri}#follows/1", "type": "Follow", "actor": mallory.uri,
            "object": alice_uri,
        }  # fmt: skip
        body = json.dumps(follow).encode()
        # Behind a reverse proxy both processes see the node's own host name.
        url = f"{pair.one.base_url}/users/alice/inbox"
        headers = mallory.signed(url, pair.domain, body)
        async with aiohttp.ClientSession() as session:

            async def post(node: ServedNode) -> tuple[int, str]:
                async with session.post(
                    f"{node.base_url}/users/alice/inbox", data=body, headers=headers
                ) as response:
                    return response.status, await response.text()

            # The actor's key is fetched once first, so the two POSTs below race on the
            # insert rather than on resolving mallory.
            async with session.get(f"{pair.one.base_url}/") as response:
                assert response.status == 200
            answers = await asyncio.gather(post(pair.one), post(pair.two))
        assert [status for status, _ in answers] == [202, 202], (answers, pair.logs())
        async with open_database(pair.url) as db:
            deadline = time.monotonic() + 20
            while True:
                rows = await db.fetchall(
                    "SELECT state, attempts, claimed_by FROM inbox_queue WHERE activity_id = ?",
                    (follow["id"],),
                )
                if rows and rows[0]["state"] == "done":
                    break
                assert time.monotonic() < deadline, (rows, pair.logs())
                await asyncio.sleep(0.1)
            assert len(rows) == 1 and rows[0]["attempts"] == 1, rows
            follows = await db.fetchvalue(
                "SELECT COUNT(*) FROM follows f JOIN accounts a ON a.id = f.account_id"
                " WHERE a.uri = ?",
                (mallory.uri,),
            )
            notifications = await db.fetchvalue(
                "SELECT COUNT(*) FROM notifications n JOIN accounts a ON a.id = n.from_account_id"
                " WHERE a.uri = ?",
                (mallory.uri,),
            )
        assert follows == 1 and notifications == 1
        # One Accept went back (a second handling would have queued another).
        deadline = time.monotonic() + 10
        while not any(a.get("type") == "Accept" for a in mallory.received):
            assert time.monotonic() < deadline, pair.logs()
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert [a.get("type") for a in mallory.received].count("Accept") == 1
    finally:
        await mallory.close()


# --- a domain block made through one process, applied by the other ---------------------------


async def test_a_domain_block_made_through_one_process_applies_in_the_other_at_once(pair_factory):
    """The block list is cached in each process (xnode.store.domain_blocks, trusted for a
    second); a change made through process 1 reaches process 2's cache by NOTIFY at the
    commit, and, for the milliseconds the NOTIFY takes, the insert into the inbox queue
    reads the table itself: an activity from the blocked server POSTed to process 2 right
    after the block is refused, though process 2 read the list an instant before."""
    pair = await pair_factory("alice")
    actor = "https://evil.example/users/mallory"
    key = generate_rsa_key()
    async with open_database(pair.url) as db:
        settings = load_settings(pair.one.data_dir, environ={})
        await AccountService(db, settings, SystemClock()).create_user(
            "boss", "correct horse battery", is_admin=True
        )
        # Mallory and her key are known already, so her signature verifies without a
        # fetch (evil.example is not a real server): only the block can refuse her.
        now = time.time()
        await db.execute(
            "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
            " created_at, updated_at, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (7_000_001, "mallory", "mallory", "evil.example", actor, f"{actor}/inbox",
             now, now, now),
        )  # fmt: skip
        await db.execute(
            "INSERT INTO account_keys (id, account_id, key_id, algorithm, public_pem,"
            " created_at) VALUES (?, ?, ?, 'rsa', ?, ?)",
            (7_000_002, 7_000_001, f"{actor}#main-key", public_key_of(key).to_pem(), now),
        )
    await pair.start()

    def signed_create(n: int) -> tuple[bytes, dict[str, str]]:
        create = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{actor}/statuses/{n}/activity", "type": "Create", "actor": actor,
            "object": {"id": f"{actor}/statuses/{n}", "type": "Note", "attributedTo": actor,
                       "content": "zqx", "to": ["https://www.w3.org/ns/activitystreams#Public"]},
        }  # fmt: skip
        body = json.dumps(create).encode()
        url = f"{pair.one.base_url}/inbox"
        headers = {"Content-Type": AP_JSON, "Host": pair.domain}
        headers.update(sign_request("POST", url, headers, body, f"{actor}#main-key", key,
                                    now=time.time()))  # fmt: skip
        return body, headers

    boss = WebUser(pair.one)
    try:
        await boss.login("boss")
        form = {"csrf_token": await boss.token("/admin/federation"), "domain": "evil.example",
                "severity": "suspend", "reason": "spam"}  # fmt: skip
        async with aiohttp.ClientSession() as session:

            async def post_to_two(n: int) -> tuple[int, str]:
                body, headers = signed_create(n)
                async with session.post(
                    f"{pair.two.base_url}/inbox", data=body, headers=headers
                ) as response:
                    return response.status, await response.text()

            # Process 2 reads the block list (nothing blocked yet), keeps it, and takes
            # the activity.
            status, text = await post_to_two(1)
            assert status == 202, (status, text, pair.logs())
            started = time.monotonic()
            async with boss.session.post(
                "/admin/federation/blocks", data=form, allow_redirects=False
            ) as response:
                assert response.status == 303, await response.text()
            status, text = await post_to_two(2)  # a new activity, not a replay
            took = time.monotonic() - started
        assert took < domain_blocks.CACHE_S, "too slow to tell the cache from the NOTIFY"
        assert status == 403 and "Your server is blocked here." in text, (status, text)
        async with open_database(pair.url) as db:
            queued = await db.fetchvalue(
                "SELECT COUNT(*) FROM inbox_queue WHERE actor_uri = ?", (actor,)
            )
        assert queued == 1  # the first one only
    finally:
        await boss.close()


# --- helper states per serving process ----------------------------------------------------


async def test_each_process_keeps_its_helpers_states_and_check_lists_both(pair_factory):
    """Each serving process's helpers have their rows; a process starting forgets only its
    own (it used to wipe the table, losing the other's), and ``xnode check`` names both."""
    pair = await pair_factory("alice")
    host = socket.gethostname()
    one, two = (f"{host}/127.0.0.1:{node.port}" for node in (pair.one, pair.two))
    helpers = {"inbox process", "delivery process 1/2", "delivery process 2/2"}

    async def rows(db: Any) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for s in await helper_processes.all_states(db):
            found.setdefault(s.process, {})[s.name] = s
        return found

    async with open_database(pair.url) as db:

        async def wait_for(processes: set[str], pid_of_two: int | None = None) -> None:
            deadline = time.monotonic() + 30
            while True:
                found = await rows(db)
                if set(found) == processes and all(set(found[p]) == helpers for p in found) and (
                    pid_of_two is None
                    or {s.serving_pid for s in found[two].values()} == {pid_of_two}
                ):  # fmt: skip
                    return
                assert time.monotonic() < deadline, (found, pair.logs())
                await asyncio.sleep(0.1)

        pair.one.start()
        await pair.one.wait_serving()
        await wait_for({one})
        pair.two.start()
        await pair.two.wait_serving()
        await wait_for({one, two})
        # Process two restarts: its rows are written afresh, process one's stay.
        first = {s.serving_pid for s in (await rows(db))[one].values()}
        pair.two.stop()
        pair.two.start()
        await pair.two.wait_serving()
        assert pair.two.process is not None
        await wait_for({one, two}, pid_of_two=pair.two.process.pid)
        assert {s.serving_pid for s in (await rows(db))[one].values()} == first

    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["check", "--data", str(pair.one.data_dir)]
    )
    for process in (one, two):
        for name in helpers:
            assert f"ok      {name} of {process} idle" in result.output, result.output


# --- the claims themselves, many claimers at once ------------------------------------------


async def test_concurrent_claims_never_hand_a_row_to_two_processes(pg_cluster):
    """Eight claimers at once (one pooled connection each) on deliveries and on the inbox
    queue: every row goes to one of them. Without ``FOR UPDATE SKIP LOCKED`` a claimer
    blocked on another's rows re-claims them once they commit."""
    from xnode.store import deliveries, inbox_queue

    async with open_database(fresh_database_url()) as db:
        now = time.time()
        rows = [
            deliveries.NewDelivery("https://a.example/1", None, None,
                                   f"https://h{n % 20}.example/users/u{n}/inbox", "{}")
            for n in range(400)
        ]  # fmt: skip
        await deliveries.insert_many(db, rows, now)
        for n in range(400):
            await inbox_queue.enqueue_activity(
                db, n + 1, activity_id=f"https://r.example/a/{n}",
                actor_uri=f"https://r.example/u{n % 40}",
                signer_key_id=None, payload="{}", now=now,
            )  # fmt: skip

        async def claim_deliveries(owner: str) -> list[int]:
            got: list[int] = []
            for round_ in range(5):  # a new claimer each time (one re-reads its own rows)
                found = await deliveries.due(
                    db, time.time(), per_host=64, limit=20,
                    claim=deliveries.Claim(f"{owner}.{round_}", time.time() + 300),
                )  # fmt: skip
                got += [delivery.id for delivery, _ in found]
            return got

        async def claim_activities(owner: str) -> list[int]:
            got: list[int] = []
            for round_ in range(5):
                found = await inbox_queue.due_activities(
                    db, now=time.time(), retry_delay_s=60, limit=20, owner=f"{owner}.{round_}",
                    lease_s=300,
                )
                got += [int(row["id"]) for row in found]
            return got

        results = await asyncio.gather(*(claim_deliveries(f"p{n}") for n in range(8)))
        ids = [row_id for result in results for row_id in result]
        assert len(ids) == 400 and len(set(ids)) == 400, (len(ids), len(set(ids)))
        # An actor busy in one process is left to it (arrival order), so not every
        # activity is claimed in these rounds; none is claimed twice.
        results = await asyncio.gather(*(claim_activities(f"p{n}") for n in range(8)))
        ids = [row_id for result in results for row_id in result]
        assert ids and len(ids) == len(set(ids)), (len(ids), len(set(ids)))


async def test_claimers_racing_never_hold_one_actor_at_once(pg_cluster):
    """Twelve claimers at once, each handling its batches as a process does, over the
    activities of a few actors: an actor is in one claimer's hands at a time, and its
    activities are handled in arrival order. Two claims at the same instant do not see
    each other's uncommitted claims; without the claims taking turns
    (:data:`xnode.store.inbox_queue.CLAIM_LOCK_KEY`) both take items of the same actors."""
    from xnode.store import inbox_queue

    actors, items = 4, 240
    async with open_database(fresh_database_url()) as db:
        now = time.time()
        for n in range(items):
            await inbox_queue.enqueue_activity(
                db, n + 1, activity_id=f"https://r.example/a/{n}",
                actor_uri=f"https://r.example/u{n % actors}",
                signer_key_id=None, payload="{}", now=now,
            )  # fmt: skip
        busy: dict[str, str] = {}
        overlaps: list[str] = []
        handled: dict[str, list[int]] = {}

        async def claimer(owner: str) -> None:
            idle = 0
            while idle < 20:
                rows = await inbox_queue.due_activities(
                    db, now=time.time(), retry_delay_s=60, limit=8, owner=owner, lease_s=300,
                )  # fmt: skip
                if not rows:
                    idle += 1
                    await asyncio.sleep(0.005)
                    continue
                idle = 0
                mine = {row["actor_uri"] for row in rows}
                for actor in mine:
                    if busy.get(actor, owner) != owner:
                        overlaps.append(f"{actor}: {busy[actor]} and {owner}")
                    busy[actor] = owner
                for row in rows:
                    handled.setdefault(row["actor_uri"], []).append(int(row["id"]))
                await asyncio.sleep(0.002)  # the handlers' work
                # Out of our hands before the outcome commits (which ends the claim).
                for actor in mine:
                    if busy.get(actor) == owner:
                        del busy[actor]
                await inbox_queue.finish_activities_done(
                    db, [int(row["id"]) for row in rows], now=time.time()
                )

        await asyncio.gather(*(claimer(f"p{n}") for n in range(12)))
        assert not overlaps, overlaps[:10]
        assert sum(len(ids) for ids in handled.values()) == items
        for actor, ids in handled.items():
            assert ids == sorted(ids), f"{actor}'s activities handled out of order"


# --- a batch that outlasts its lease -------------------------------------------------------


async def test_a_batch_handled_longer_than_its_lease_stays_claimed(pg_cluster, monkeypatch):
    """Handling can outlast any fixed lease (remote fetches, five parents deep, one actor's
    items one after the other): while a batch is handled its claim is renewed, so another
    process never takes its items meanwhile. The lease is cut to a second here, the
    handling takes three."""
    from types import SimpleNamespace

    from xnode.activitypub import inbox
    from xnode.activitypub.inbox import InboxProcessor
    from xnode.events import EventBus
    from xnode.store import inbox_queue

    monkeypatch.setattr(inbox, "CLAIM_LEASE_S", 1.0)
    monkeypatch.setattr(inbox, "CLAIM_RENEW_S", 0.25)
    async with open_database(fresh_database_url()) as db:
        # Only the claims matter here: the handling itself is replaced below.
        unused: Any = None
        resolver: Any = SimpleNamespace(notes=SimpleNamespace(events=EventBus()))
        processor = InboxProcessor(
            db, unused, SystemClock(), EventBus(), resolver, unused, unused, unused, unused,
            owner="slow-process",
        )  # fmt: skip
        handling = asyncio.Event()

        async def slow(row: Any) -> bool:
            handling.set()
            await asyncio.sleep(1.5)  # twice, one item after the other: three leases
            return True

        monkeypatch.setattr(processor, "_process", slow)
        now = time.time()
        for n in range(2):
            await inbox_queue.enqueue_activity(
                db, 10_000 + n, activity_id=f"https://r.example/slow/{n}",
                actor_uri="https://r.example/users/slow", signer_key_id=None, payload="{}",
                now=now,
            )  # fmt: skip
        batch = asyncio.create_task(processor.process_pending())
        async with asyncio.timeout(10):
            await handling.wait()
        taken: list[Any] = []
        while not batch.done():
            taken += await inbox_queue.due_activities(
                db, now=time.time(), retry_delay_s=60, limit=10, owner="other-process",
                lease_s=1.0,
            )  # fmt: skip
            await asyncio.sleep(0.1)
        assert await batch == 2
        assert taken == [], "another process took items of a batch still being handled"
        states = await db.fetchall(
            "SELECT state, attempts, claimed_by FROM inbox_queue ORDER BY id"
        )
    assert [(r["state"], r["attempts"], r["claimed_by"]) for r in states] == [
        ("done", 1, "slow-process")
    ] * 2


# --- the delivery hand-off window ------------------------------------------------------------


async def test_rows_queued_claimed_while_sending_stops_are_left_to_the_others(
    pg_cluster, tmp_path, aiohttp_client
):
    """A small fan-out is queued already claimed by this process (it sends it from memory,
    without a read). If this process stops sending (delivery processes take over: pause()
    and its release of every claim) between deciding that claim and the commit, the rows
    land claimed by a process that no longer sends: left unsent for a lease (300 s) unless
    ``queued`` gives the claim up. PostgreSQL: the release runs on another connection
    while the queueing transaction is open, as it can when an outbox drain is slow."""
    from conftest import make_settings

    from xnode.activitypub.delivery import DELIVERY
    from xnode.store import deliveries
    from xnode.web.app import create_app

    settings = make_settings(tmp_path / "node", database_url=fresh_database_url())
    client = await aiohttp_client(create_app(settings))
    queue = client.server.app[DELIVERY]
    assert queue.working
    await queue.db.execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
        " created_at, updated_at) VALUES (?, 'bob', 'bob', 'peer.example', ?, ?, 0, 0)",
        (8_000_001, "https://peer.example/users/bob", "https://peer.example/users/bob/inbox"),
    )
    from xnode.store import accounts as account_store

    bob = await account_store.get_account(queue.db, 8_000_001)
    assert bob is not None
    activity = {"id": "https://node.example/activities/1", "type": "Create"}
    planned = await queue.plan(activity, None, [bob])
    async with queue.db.transaction() as conn:
        added = await queue.insert_planned(conn, [planned])  # claimed: this process sends
        await queue.pause()  # the delivery processes take over meanwhile
    await queue.queued(added, [planned])
    assert len(added) == 1
    found = await deliveries.due(
        queue.db, time.time(), per_host=10, limit=10,
        claim=deliveries.Claim("a-delivery-process", time.time() + 300),
    )  # fmt: skip
    assert [delivery.id for delivery, _ in found] == list(added), (
        "the row stayed claimed by a process that no longer sends"
    )


async def test_a_helper_that_exits_leaves_no_claims_behind(pg_cluster, tmp_path):
    """A helper process that exits holding claims (it crashed, or was terminated with sends
    or a batch still running) has them ended as soon as it is reaped: its rows go out (its
    items are handled) at once, by its next run or by the serving process if it was given
    up on, not when the lease runs out (5 and 10 minutes)."""
    from conftest import make_settings

    from xnode.activitypub.delivery import process_owner
    from xnode.activitypub.delivery_process import DeliveryProcesses
    from xnode.activitypub.inbox_process import INBOX_PROCESS_ROLE, InboxProcessLink
    from xnode.events import EventBus
    from xnode.store import deliveries, inbox_queue

    settings = make_settings(tmp_path / "node", database_url=fresh_database_url())
    async with open_database(settings.database) as db:
        senders = DeliveryProcesses(settings, 2, db=db)
        link = InboxProcessLink(settings, EventBus(), lambda: None, db=db)
        now = time.time()
        rows = [
            deliveries.NewDelivery(f"https://a.example/{n}", None, None,
                                   f"https://h{n}.example/inbox", "{}")
            for n in range(3)
        ]  # fmt: skip
        await deliveries.insert_many(
            db, rows, now, claim=deliveries.Claim(process_owner(settings, "deliveries-1of2"),
                                                  now + 300),
        )  # fmt: skip
        await inbox_queue.enqueue_activity(
            db, 1, activity_id="https://r.example/a/1", actor_uri="https://r.example/u",
            signer_key_id=None, payload="{}", now=now,
        )  # fmt: skip
        claimed = await inbox_queue.due_activities(
            db, now=now, retry_delay_s=60, limit=10,
            owner=process_owner(settings, INBOX_PROCESS_ROLE), lease_s=600,
        )  # fmt: skip
        assert len(claimed) == 1

        async def others_get() -> tuple[int, int]:
            later = time.time()
            sent = await deliveries.due(
                db, later, per_host=10, limit=10, claim=deliveries.Claim("other", later + 1)
            )
            await deliveries.release(db, "other")
            handled = await inbox_queue.due_activities(
                db, now=later, retry_delay_s=60, limit=10, owner="other", lease_s=1
            )
            await inbox_queue.release(db, "other")
            return len(sent), len(handled)

        assert await others_get() == (0, 0)
        # Delivery process 2/2 runs and exits at once (a command it does not know: status 2).
        child = senders.children[1]
        child.command = "no-such-command"
        released = asyncio.Event()
        cleanup = child.on_exited
        assert cleanup is not None

        async def exited() -> None:
            await cleanup()
            released.set()

        child.on_exited = exited
        child.start()
        try:
            async with asyncio.timeout(30):
                await released.wait()
        finally:
            await child.stop()
        assert await others_get() == (3, 0)
        # The inbox process's cleanup, called the same way.
        assert link.child.on_exited is not None
        await link.child.on_exited()
        assert await others_get() == (3, 1)
