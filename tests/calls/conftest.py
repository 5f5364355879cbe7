"""Nodes in these tests run the call relay (on a free port pair)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from xnode.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh node with open registration and the call relay on."""
    return make_settings(tmp_path / "node", call_relay=True)
