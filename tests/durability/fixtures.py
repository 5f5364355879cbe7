"""Fixtures for crash tests (registered in tests/conftest.py): a real `xnode serve` process
group (A) and an ordinary node (B)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from live_nodes import LiveNode, start_node
from served_node import ServedNode, WebUser


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedNode]:
    """Node A, initialised with the user alice; each test starts it (with its fault armed)."""
    # Helpers always on (not started by load): every crash kills them too.
    node = await ServedNode.create(tmp_path, "a", users=("alice",), helper_idle_stop_s=0)
    yield node
    node.stop()


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[LiveNode]:
    """Node B, in this process, recording every activity its inboxes accept."""
    node = await start_node(tmp_path, "b", record_inbox=True)
    yield node
    await node.server.close()


@pytest.fixture
async def alice(served: ServedNode) -> AsyncIterator[WebUser]:
    """alice's browser on node A (sign in once A serves)."""
    user = WebUser(served)
    yield user
    await user.close()
