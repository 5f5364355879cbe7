"""The independent Fedify peer for interoperability tests: helpers and the session fixture.

`make test-deps` (part of `make test`) installs the peer from ../shared into
.cache/fedify-peer, maps fedify.test / xnode-a.test to 127.0.0.x in /etc/hosts
and issues certificates from a local test CA. Both servers speak HTTPS on port
443 of their own loopback address, as real servers would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ports import free_port

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


@pytest.fixture(scope="session")
def fedify_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FedifyPeer]:
    """The Fedify peer at https://fedify.test (one per test session)."""
    skip_or_fail_when_missing()
    data = tmp_path_factory.mktemp("fedify-data")
    control = free_port()
    log = (data / "peer.log").open("wb")
    process = subprocess.Popen(
        [
            str(PEER_DIR / "node_modules" / ".bin" / "node"), str(PEER_DIR / "peer.mjs"),
            "--host", PEER_HOST, "--listen", f"{PEER_IP}:443",
            "--cert", str(CERTS / "fedify.test.crt"), "--key", str(CERTS / "fedify.test.key"),
            "--ca", str(CERTS / "ca.crt"), "--data", str(data / "state"),
            "--control", f"127.0.0.1:{control}", "--log-level", "warning",
        ],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    peer = FedifyPeer(control, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            if peer.ctl("/health").get("host") == PEER_HOST:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError((data / "peer.log").read_text()[-2000:])
        time.sleep(0.1)
    yield peer
    process.terminate()
    process.wait(timeout=10)
    log.close()
