"""Shared fixtures: a fresh node per test, an HTTP client, form helpers."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from database_backend import (
    ON_POSTGRES,
    cluster,
    drop_made_databases,
    empty_database_url,
    fresh_database_url,
)
from pg_cluster import PgCluster, PgClusterError, find_bin_dir
from served_node import Pair, make_pair

from xnode.accounts.models import User
from xnode.clock import FakeClock
from xnode.settings import Settings, settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS

# The Fedify peer fixture lives beside the interop tests, the crash tests' fixtures beside
# theirs; registering them here (not in more conftest.py files) keeps `from conftest
# import …` unambiguous.
pytest_plugins = ["interop.fedify_peer", "durability.fixtures"]

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a throwaway node in ``data_dir``."""
    values: dict[str, Any] = {
        "domain": "xnode.test",
        "base_url": "http://xnode.test",
        "registration": "open",
        "allow_private_addresses": True,
        # The call relay binds UDP and TCP ports; only the tests that need it turn it on
        # (tests/calls/conftest.py), with port 0, so nodes never fight over ports.
        "call_relay": False,
        "call_relay_port": 0,
    }
    values.update(overrides)
    if ON_POSTGRES and "database_url" not in values:
        values["database_url"] = fresh_database_url()
    data_dir.mkdir(parents=True, exist_ok=True)
    return settings_from_mapping(data_dir, values, secret_key=secrets.token_bytes(32))


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """On the PostgreSQL pass: drop the databases this test's nodes were given."""
    yield
    drop_made_databases()


@pytest.fixture
def pg_cluster() -> PgCluster:
    """This worker's throwaway PostgreSQL cluster (tests/database_backend.py), whichever
    engine the pass runs nodes on; the test skips where Debian's binaries are missing."""
    if find_bin_dir() is None:
        pytest.skip(
            "Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin) are not"
            " installed: run `make postgres`"
        )
    try:
        return cluster()
    except PgClusterError as error:
        if "system user" in str(error):  # root without a `postgres` user: the machine's
            pytest.skip(str(error))
        raise


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A new PostgreSQL database with no tables (dropped after the test)."""
    return empty_database_url()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (rate limits, expiry)."""
    import time

    return FakeClock(time.time())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh node with open registration."""
    return make_settings(tmp_path / "node")


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], settings: Settings, clock: FakeClock
) -> AsyncIterator[TestClient]:
    """An HTTP client talking to a freshly started node."""
    app = create_app(settings, clock=clock)
    yield await aiohttp_client(app)


@pytest.fixture
def app(client: TestClient) -> web.Application:
    """The running node's application (for direct service calls)."""
    return client.server.app  # type: ignore[return-value]


async def csrf_from(client: TestClient, path: str) -> str:
    """Load a page and return the CSRF token in its forms."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    match = _CSRF.search(await response.text())
    assert match, f"no CSRF token on {path}"
    return match[1]


async def post_form(
    client: TestClient, path: str, data: dict[str, Any], *, token_page: str | None = None
) -> Any:
    """Submit a form the way a browser would: load the page, add its CSRF token, post."""
    token = await csrf_from(client, token_page or path)
    return await client.post(path, data={"csrf_token": token, **data}, allow_redirects=False)


async def create_user(
    app: web.Application, username: str, *, admin: bool = False, password: str = PASSWORD
) -> User:
    """Create an active user directly through the service."""
    return await app[ACCOUNTS].create_user(username, password, is_admin=admin)


async def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    """Log a user in through the login form."""
    response = await post_form(client, "/login", {"username": username, "password": password})
    assert response.status == 303, await response.text()


@pytest.fixture
async def pair_factory(tmp_path: Path, pg_cluster: PgCluster) -> AsyncIterator[Any]:
    """Make (and at the end stop) two-process nodes."""
    made: list[Pair] = []

    async def make(*users: str) -> Pair:
        pair = await make_pair(tmp_path, users)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.stop()
