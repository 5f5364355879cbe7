"""Complete nodes on loopback ports, for tests that federate over real HTTP.

Each node is ``create_app(settings)`` served by a real TCP server with its
workers running: activities travel as signed requests through the delivery
queues and inboxes, nothing stubbed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import streams, web
from aiohttp.test_utils import TestServer
from ports import free_port

from xnode.accounts.models import Account
from xnode.activitypub.endpoints import RESOLVER
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, DB, RELATIONSHIPS

PASSWORD = "correct horse battery"


@dataclass
class LiveNode:
    """A serving node and shortcuts to its services."""

    app: web.Application
    server: TestServer
    domain: str
    # With ``record_inbox``: (activity id, type) of every activity its inboxes accepted,
    # replays included (so a test can count duplicates).
    received: list[tuple[str, str]] = field(default_factory=list)

    def received_ids(self, kind: str | None = None) -> list[str]:
        """Ids of the activities received (of one type), in arrival order, duplicates kept."""
        return [i for i, t in self.received if kind is None or t == kind]

    def __getitem__(self, key: Any) -> Any:
        return self.app[key]

    async def user(self, name: str) -> Account:
        return (await self.app[ACCOUNTS].create_user(name, PASSWORD)).account

    async def remote(self, handle: str) -> Account:
        return await self.app[RESOLVER].actor_by_handle(handle)


async def start_node(
    tmp: Path, name: str, *, record_inbox: bool = False, **extra: Any
) -> LiveNode:
    """A node named ``name`` serving on a free loopback port; ``extra``: more settings."""
    port = free_port()
    domain = f"127.0.0.1:{port}"
    settings = settings_from_mapping(
        tmp / name,
        {"domain": domain, "base_url": f"http://{domain}", "registration": "open",
         "allow_private_addresses": True, "call_relay": False, "call_relay_port": 0, **extra},
        secret_key=secrets.token_bytes(32),
    )
    (tmp / name).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    node = LiveNode(app, TestServer(app, host="127.0.0.1", port=port), domain)
    if record_inbox:
        app.middlewares.append(_inbox_recorder(node))
    await node.server.start_server()
    return node


def _inbox_recorder(node: LiveNode) -> Any:
    """Middleware noting every activity an inbox accepts (202), replays included."""

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("inbox"):
            return await handler(request)
        body = await request.read()
        # The inbox reads the body as a stream: give it a fresh one with the same bytes.
        stream = streams.StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(body)
        stream.feed_eof()
        request._payload = stream  # test-only: aiohttp has no public way to re-feed a body
        response = await handler(request)
        if response.status == 202:
            activity = json.loads(body)
            node.received.append((activity.get("id", ""), activity.get("type", "")))
        return response

    return record


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[LiveNode, LiveNode]]:
    a = await start_node(tmp_path, "a")
    b = await start_node(tmp_path, "b")
    yield a, b
    await b.server.close()
    await a.server.close()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll until ``check`` returns something truthy (deliveries are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def remote_post(node: LiveNode, uri: str) -> Any:
    return await node[DB].fetchone("SELECT * FROM posts WHERE uri = ?", (uri,))


async def follow_across(node: LiveNode, follower: Account, other: LiveNode, name: str) -> Account:
    """``follower`` (on ``node``) follows ``name`` on ``other``; the followed account, as
    ``node`` knows it, once the Accept arrived."""
    target = await node.remote(f"{name}@{other.domain}")
    await node.app[RELATIONSHIPS].follow(follower.id, target.id)

    async def accepted() -> bool:
        return (await node.app[RELATIONSHIPS].relationship(follower.id, target.id)).following

    await eventually(accepted)
    return target
