"""The Fedify peer starts and serves its actors over HTTPS signed by the test CA."""

from __future__ import annotations

import json
import ssl
import urllib.request

from fedify_peer import CERTS, FedifyPeer


def test_peer_serves_actor_over_https(fedify_peer: FedifyPeer):
    context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
    request = urllib.request.Request(
        fedify_peer.actor("alice"), headers={"Accept": "application/activity+json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        actor = json.load(response)
    assert actor["id"] == fedify_peer.actor("alice")
    assert "publicKey" in actor
