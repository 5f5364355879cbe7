"""Complete nodes on loopback ports, for tests that federate over real HTTP.

Each node is ``create_app(settings)`` served by a real TCP server with its
workers running: activities travel as signed requests through the delivery
queues and inboxes, nothing stubbed.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from xnode.accounts.models import Account
from xnode.activitypub.endpoints import RESOLVER
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, DB, RELATIONSHIPS

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveNode:
    """A serving node and shortcuts to its services."""

    app: web.Application
    server: TestServer
    domain: str

    def __getitem__(self, key: Any) -> Any:
        return self.app[key]

    async def user(self, name: str) -> Account:
        return (await self.app[ACCOUNTS].create_user(name, PASSWORD)).account

    async def remote(self, handle: str) -> Account:
        return await self.app[RESOLVER].actor_by_handle(handle)


async def start_node(tmp: Path, name: str, **extra: Any) -> LiveNode:
    """A node named ``name`` serving on a free loopback port; ``extra``: more settings."""
    port = free_port()
    domain = f"127.0.0.1:{port}"
    settings = settings_from_mapping(
        tmp / name,
        {"domain": domain, "base_url": f"http://{domain}", "registration": "open",
         "allow_private_addresses": True, **extra},
        secret_key=secrets.token_bytes(32),
    )
    (tmp / name).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return LiveNode(app, server, domain)


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
