"""Fixtures for interoperability tests against the independent Fedify peer (see fedify_peer.py)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from fedify_peer import (
    CERTS,
    PEER_DIR,
    PEER_HOST,
    PEER_IP,
    FedifyPeer,
    free_port,
    skip_or_fail_when_missing,
)


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
