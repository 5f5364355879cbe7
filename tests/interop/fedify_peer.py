"""Helpers for interoperability tests against the independent Fedify peer.

`make test-deps` (part of `make test`) installs the peer from ../shared into
.cache/fedify-peer, maps fedify.test / xnode-a.test to 127.0.0.x in /etc/hosts
and issues certificates from a local test CA. Both servers speak HTTPS on port
443 of their own loopback address, as real servers would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_PEER = ROOT.parent / "shared" / "interop" / "fedify-peer"
PEER_DIR = ROOT / ".cache" / "fedify-peer"
CERTS = PEER_DIR / "certs"
PEER_HOST, PEER_IP = "fedify.test", "127.0.0.12"
NODE_HOST, NODE_IP = "xnode-a.test", "127.0.0.21"


def skip_or_fail_when_missing() -> None:
    if not SHARED_PEER.is_dir():
        pytest.skip("../shared/interop/fedify-peer is absent: interop tests need it")
    node = PEER_DIR / "node_modules" / ".bin" / "node"
    assert node.exists(), "the Fedify peer is not installed: run `make test-deps`"
    assert (CERTS / "xnode-a.test.crt").exists(), "test certificates missing: `make test-deps`"
    for host, ip in ((PEER_HOST, PEER_IP), (NODE_HOST, NODE_IP)):
        assert socket.gethostbyname(host) == ip, f"{host} must map to {ip} (make test-deps)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FedifyPeer:
    """A running peer and its JSON control API."""

    def __init__(self, control_port: int, process: subprocess.Popen[bytes]) -> None:
        self.control_port = control_port
        self.process = process
        self.origin = f"https://{PEER_HOST}"

    def ctl(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the control API (POST with a body, else GET)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            method="POST" if body is not None else "GET",
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=130) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)

    def actor(self, name: str) -> str:
        """A peer actor's id."""
        return f"{self.origin}/users/{name}"
