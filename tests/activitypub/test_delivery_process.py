"""Deliveries sent by delivery processes (setting ``delivery_processes``), for real.

Node A serves in this test process with two delivery processes (real `xnode
delivery-process` subprocesses sharing A's database); the followers' nodes are
ordinary nodes on other loopback ports, i.e. other hosts, spread over both
processes' shards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from live_nodes import LiveNode, eventually, follow_across, remote_post, start_node

from xnode.activitypub.delivery import DELIVERY
from xnode.activitypub.node import DELIVERY_PROCESSES
from xnode.posts.service import Draft
from xnode.store import deliveries as store
from xnode.store.database import open_database
from xnode.store.migrations import all_migrations, apply_migrations
from xnode.store.shards import SHARDS, host_shard
from xnode.web.state import DB, POSTS

PROCESSES = 2


async def _true(value: bool) -> bool:
    return value


async def followers_in_every_shard(tmp_path: Path) -> list[LiveNode]:
    """Ordinary nodes whose hosts fall in each delivery process's shard (two each)."""
    found: list[LiveNode] = []
    per_shard = dict.fromkeys(range(PROCESSES), 0)
    for n in range(24):
        node = await start_node(tmp_path, f"f{n}")
        shard = host_shard(node.domain) % PROCESSES
        if per_shard[shard] < 2:
            per_shard[shard] += 1
            found.append(node)
        else:
            await node.server.close()
        if all(count == 2 for count in per_shard.values()):
            return found
    raise AssertionError("no ports in every shard")  # 24 tries: vanishingly unlikely


@pytest.fixture
async def sharded(tmp_path: Path) -> AsyncIterator[tuple[LiveNode, list[LiveNode]]]:
    a = await start_node(tmp_path, "a", delivery_processes=PROCESSES, helper_idle_stop_s=0)
    await eventually(lambda: _true(a[DELIVERY_PROCESSES].ready), timeout=30)
    followers = await followers_in_every_shard(tmp_path)
    yield a, followers
    for node in followers:
        await node.server.close()
    await a.server.close()


async def test_posts_reach_followers_through_every_delivery_process(sharded):
    a, followers = sharded
    alice = await a.user("alice")
    # Each Follow is taken by A's inbox here; its Accept is queued here and
    # sent by whichever delivery process owns the follower's host.
    for n, node in enumerate(followers):
        await follow_across(node, await node.user(f"f{n}"), a, "alice")
    post = await a[POSTS].publish(alice, Draft("hello to all my followers"))
    for node in followers:
        row = await eventually(lambda node=node: remote_post(node, post.uri))
        assert "hello to all my followers" in row["content_html"]
    rows = await a[DB].fetchall(
        "SELECT host, shard, state FROM deliveries WHERE post_id = ?", (post.id,)
    )
    assert {r["state"] for r in rows} == {"delivered"}
    assert {r["shard"] % PROCESSES for r in rows} == set(range(PROCESSES))
    assert all(r["shard"] == host_shard(r["host"]) for r in rows)
    # The serving process queued them but runs no delivery worker of its own
    # (the followers' ordinary nodes, in this process too, do).
    assert not a[DELIVERY].working
    assert all(node[DELIVERY].working for node in followers)


async def test_a_killed_delivery_process_is_restarted_and_sends_what_was_left(sharded):
    a, followers = sharded
    alice = await a.user("alice")
    node = followers[0]
    await follow_across(node, await node.user("bob"), a, "alice")
    processes = a[DELIVERY_PROCESSES]
    owner = processes.children[host_shard(node.domain) % PROCESSES]
    owner.process.kill()
    await eventually(lambda: _true(not owner.ready))
    post = await a[POSTS].publish(alice, Draft("sent while one sender was down"))
    row = await eventually(lambda: remote_post(node, post.uri), timeout=30)
    assert "sent while one sender was down" in row["content_html"]
    assert owner.starts == 2


async def test_delivery_processes_exit_with_the_serving_process(tmp_path: Path):
    a = await start_node(tmp_path, "a", delivery_processes=PROCESSES, helper_idle_stop_s=0)
    processes = a[DELIVERY_PROCESSES]
    await eventually(lambda: _true(processes.ready), timeout=30)
    running = [child.process for child in processes.children]
    await a.server.close()
    for process in running:
        await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0


async def test_due_rows_are_split_by_shard(tmp_path: Path):
    """Each process reads only its hosts' rows, and every row is some process's."""
    async with open_database(tmp_path / "x.sqlite3") as db:
        hosts = [f"h{n}.example" for n in range(40)]
        rows = [store.NewDelivery("a1", None, None, f"https://{h}/inbox", "{}") for h in hosts]
        await store.insert_many(db, rows, now=0)
        seen: list[str] = []
        for k in range(3):
            due = await store.due(db, 1, per_host=4, limit=100, shard=(k, 3))
            assert {host_shard(d.host) % 3 for d, _ in due} <= {k}
            seen += [d.host for d, _ in due]
        assert sorted(seen) == sorted(hosts)


async def test_the_migration_gives_rows_queued_before_it_their_shard(tmp_path: Path):
    async with aiosqlite.connect(tmp_path / "old.sqlite3") as conn:
        older = [m for m in all_migrations() if m.version < 5]  # m005 adds the shard
        await conn.execute(
            "CREATE TABLE schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in older:
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        await conn.execute(
            "INSERT INTO deliveries (activity_id, inbox_url, host, payload, state,"
            " next_attempt_at, created_at)"
            " VALUES ('a1', 'https://old.example/inbox', 'old.example', '{}', 'pending', 0, 0)"
        )
        await conn.commit()
        assert 5 in await apply_migrations(conn)
        async with conn.execute("SELECT shard FROM deliveries") as cursor:
            (shard,) = await cursor.fetchone()
    assert shard == host_shard("old.example") and 0 <= shard < SHARDS
