"""``xnode federation …``: lookup, queue, retry, block, unblock, blocks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from federation.keys import generate_rsa_key, public_key_of
from xnode.cli import main
from xnode.settings import load_settings
from xnode.store import deliveries
from xnode.store.database import Database, open_database

T = TypeVar("T")
# Lets the node's HTTP client reach the loopback test server.
ENV = {"XNODE_ALLOW_PRIVATE_ADDRESSES": "true"}


def run(*args: str) -> Result:
    """Invoke the CLI in-process; a domain error must never surface as a traceback."""
    result = CliRunner().invoke(main, list(args), env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def in_node(data: Path, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``action`` against the node's database, outside the CLI."""

    async def go() -> T:
        async with open_database(load_settings(data, environ={}).database_path) as db:
            return await action(db)

    return asyncio.run(go())


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """An initialised node's data directory."""
    data = tmp_path / "data"
    result = run("init", "--data", str(data), "--domain", "xnode.test", "--http")
    assert result.exit_code == 0, result.output
    return data


def queue_rows(data: Path, rows: list[tuple[str, str]]) -> None:
    """Queue (activity id, inbox) deliveries from the instance actor."""
    new = [deliveries.NewDelivery(a, None, None, inbox, "{}") for a, inbox in rows]
    in_node(data, lambda db: deliveries.insert_many(db, new, 0.0))


def states(data: Path) -> list[tuple[Any, ...]]:
    """(host, state, attempts) of every delivery."""
    async def read(db: Database) -> list[tuple[Any, ...]]:
        found = await db.fetchall("SELECT host, state, attempts FROM deliveries ORDER BY id")
        return [tuple(row) for row in found]

    return in_node(data, read)


# --- queue and retry ---------------------------------------------------------------------


def test_queue_lists_pending_and_failed_per_host(node: Path):
    assert "Nothing is waiting" in run("federation", "queue", "--data", str(node)).output
    queue_rows(node, [("a1", "https://one.test/inbox"), ("a2", "https://one.test/inbox"),
                      ("a1", "https://two.test/inbox")])
    in_node(node, lambda db: db.execute(
        "UPDATE deliveries SET state = 'failed', attempts = 16, last_error = 'HTTP 410'"
        " WHERE host = 'two.test'"
    ))
    result = run("federation", "queue", "--data", str(node))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["HOST", "PENDING", "FAILED", "HEALTH", "LAST", "ERROR"]
    assert lines[1].split()[:3] == ["one.test", "2", "0"]
    assert lines[2].split()[:3] == ["two.test", "0", "1"] and "HTTP 410" in lines[2]


def test_retry_makes_a_hosts_deliveries_due_again(node: Path):
    queue_rows(node, [("a1", "https://two.test/inbox")])
    in_node(node, lambda db: db.execute(
        "UPDATE deliveries SET state = 'failed', attempts = 16, next_attempt_at = 0"
    ))
    result = run("federation", "retry", "TWO.test", "--data", str(node))
    assert result.exit_code == 0, result.output
    assert "1 deliveries to two.test are due now" in result.output
    assert states(node) == [("two.test", "pending", 0)]

    missing = run("federation", "retry", "nowhere.test", "--data", str(node))
    assert missing.exit_code == 1
    assert "no pending or failed deliveries for nowhere.test" in missing.stderr


# --- domain blocks -----------------------------------------------------------------------


def test_block_list_and_unblock(node: Path):
    data = str(node)
    assert "No servers are blocked" in run("federation", "blocks", "--data", data).output
    silenced = run("federation", "block", "Quiet.TEST", "--severity", "silence",
                   "--reason", "noisy bots", "--data", data)
    assert silenced.exit_code == 0, silenced.output
    assert "Blocked quiet.test (silence)." in silenced.output
    listed = run("federation", "blocks", "--data", data).output.splitlines()
    assert listed[1].split()[:2] == ["quiet.test", "silence"] and "noisy bots" in listed[1]

    assert run("federation", "unblock", "quiet.test", "--data", data).exit_code == 0
    again = run("federation", "unblock", "quiet.test", "--data", data)
    assert again.exit_code == 1 and "quiet.test is not blocked" in again.stderr


def test_suspending_cancels_queued_deliveries(node: Path):
    queue_rows(node, [("a1", "https://social.bad.test/inbox"), ("a1", "https://ok.test/inbox")])
    result = run("federation", "block", "bad.test", "--data", str(node))  # suspend by default
    assert result.exit_code == 0, result.output
    assert "Blocked bad.test (suspend)." in result.output
    assert "Cancelled 1 queued deliveries." in result.output
    assert states(node) == [("social.bad.test", "failed", 0), ("ok.test", "pending", 0)]


@pytest.mark.parametrize("bad", ["not a domain", "localhost", "127.0.0.1", "-x-.test", "a..test"])
def test_block_refuses_what_is_not_a_domain(node: Path, bad: str):
    result = run("federation", "block", "--data", str(node), "--", bad)
    assert result.exit_code == 1
    assert "domain name" in result.stderr


# --- lookup ------------------------------------------------------------------------------


def _peer_app(base: list[str]) -> web.Application:
    """WebFinger and an actor for zoe, on whatever port the server got (``base[0]``)."""
    pem = public_key_of(generate_rsa_key()).to_pem()

    async def webfinger(request: web.Request) -> web.Response:
        host = base[0].removeprefix("http://")
        if request.query.get("resource") != f"acct:zoe@{host}":
            return web.Response(status=404)
        return web.json_response({
            "subject": f"acct:zoe@{host}",
            "links": [{"rel": "self", "type": "application/activity+json",
                       "href": f"{base[0]}/users/zoe"}],
        }, content_type="application/jrd+json")

    async def actor(request: web.Request) -> web.Response:
        actor_id = f"{base[0]}/users/zoe"
        return web.json_response({
            "@context": ["https://www.w3.org/ns/activitystreams"],
            "id": actor_id, "type": "Person", "preferredUsername": "zoe", "name": "Zoe Peer",
            "inbox": f"{actor_id}/inbox", "endpoints": {"sharedInbox": f"{base[0]}/inbox"},
            "followers": f"{actor_id}/followers", "manuallyApprovesFollowers": True,
            "publicKey": {"id": f"{actor_id}#main-key", "owner": actor_id, "publicKeyPem": pem},
        }, content_type="application/activity+json")

    app = web.Application()
    app.router.add_get("/.well-known/webfinger", webfinger)
    app.router.add_get("/users/zoe", actor)
    return app


@pytest.fixture
def peer() -> Iterator[str]:
    """A remote server on loopback, in its own thread (the CLI runs its own event loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    base: list[str] = []

    async def start() -> web.AppRunner:
        runner = web.AppRunner(_peer_app(base))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base.append(f"http://127.0.0.1:{port}")
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield base[0]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_lookup_resolves_and_stores_a_remote_account(node: Path, peer: str):
    host = peer.removeprefix("http://")
    result = run("federation", "lookup", f"@zoe@{host}", "--data", str(node))
    assert result.exit_code == 0, result.output
    assert f"@zoe@{host}" in result.output
    assert "Zoe Peer" in result.output
    assert f"{peer}/users/zoe/inbox" in result.output
    assert "locked:       yes" in result.output

    async def stored(db: Database) -> Any:
        return await db.fetchone("SELECT uri, shared_inbox_url FROM accounts WHERE domain = ?",
                                 (host,))

    row = in_node(node, stored)
    assert tuple(row) == (f"{peer}/users/zoe", f"{peer}/inbox")


def test_lookup_of_an_unknown_account_is_an_error(node: Path, peer: str):
    host = peer.removeprefix("http://")
    result = run("federation", "lookup", f"nobody@{host}", "--data", str(node))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error:")
