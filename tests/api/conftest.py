"""Shared fixtures for the client API: tokens made through the OAuth service, an API
client, and Mastodon.py pointed at the test node (run in a thread: it is synchronous)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import make_settings
from ports import free_port

from xnode.accounts.models import User
from xnode.api.auth import OAUTH
from xnode.clock import FakeClock
from xnode.web.app import create_app

REDIRECT = "urn:ietf:wg:oauth:2.0:oob"


async def token_for(
    app: web.Application, user: User | None, scopes: str = "read write follow push",
    *, app_name: str = "Test app",
) -> str:
    """An access token for ``user`` (None: the app's own token) with ``scopes``, issued
    the way the consent page and /oauth/token do it."""
    oauth = app[OAUTH]
    registered = await oauth.register(app_name, [REDIRECT], scopes)
    application = registered.application
    if user is None:
        return (await oauth.client_token(application, scopes)).access_token
    granted = oauth.check_request(application, REDIRECT, scopes, user)
    code = await oauth.issue_code(application, user, REDIRECT, granted)
    return (await oauth.exchange_code(application, code, REDIRECT, None)).access_token


class Api:
    """JSON requests to the test node with a bearer token."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client = client
        self.token = token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    async def call(self, method: str, path: str, *, expect: int | None = 200,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """Make a request; check the status (unless ``expect`` is None) and return the JSON."""
        response = await self.client.request(method, path, headers=self._headers(headers),
                                             **kwargs)
        text = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {text}"
        self.last = response
        if response.content_type == "application/json":
            return await response.json()
        return text

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.call("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.call("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.call("DELETE", path, **kwargs)


@pytest.fixture
def api_as(client: TestClient, app: web.Application) -> Callable[..., Any]:
    """``await api_as(user, "read write")``: an :class:`Api` acting for ``user``
    (None: an app token; ``token=False``: no token at all)."""

    async def make(user: User | None, scopes: str = "read write follow push",
                   *, token: bool = True) -> Api:
        if not token:
            return Api(client, None)
        return Api(client, await token_for(app, user, scopes))

    return make


@pytest.fixture
async def addressed_client(
    aiohttp_client: Callable[..., Any], tmp_path: Path, clock: FakeClock
) -> TestClient:
    """A node whose base URL is the loopback address it serves on, for clients that follow
    the URLs the node announces (Mastodon.py's OAuth endpoints and streaming base)."""
    port = free_port()
    settings = make_settings(tmp_path / "node", base_url=f"http://127.0.0.1:{port}")
    return await aiohttp_client(create_app(settings, clock=clock), server_kwargs={"port": port})


def base_url(client: TestClient) -> str:
    """The test node's real loopback URL (for clients that open their own connections)."""
    return str(client.make_url("")).rstrip("/")


async def mastodon_for(client: TestClient, access_token: str | None, **kwargs: Any) -> Any:
    """A Mastodon.py client for the test node (built in a thread: it calls the server)."""
    from mastodon import Mastodon

    def build() -> Any:
        return Mastodon(access_token=access_token, api_base_url=base_url(client),
                        request_timeout=20, **kwargs)

    return await asyncio.to_thread(build)


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a Mastodon.py call (blocking) while the test node keeps serving."""
    return await asyncio.to_thread(call, *args, **kwargs)
