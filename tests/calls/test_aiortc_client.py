"""The aiortc call client: real calls between two nodes on loopback, media over real UDP
(directly, and through the caller's node's own TURN relay), and the ``xnode call`` and
``xnode calls selftest`` commands against a served node."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from live_nodes import PASSWORD, LiveNode, follow_across, start_node
from served_node import ServedNode

from xnode.calls.client import CallClient, CallReport, verification_code
from xnode.web.state import CALL_RELAY

XNODE = str(Path(sys.executable).parent / "xnode")


@pytest.fixture
async def relay_nodes(tmp_path: Path) -> AsyncIterator[tuple[LiveNode, LiveNode]]:
    """Two nodes, each running its call relay."""
    a = await start_node(tmp_path, "a", call_relay=True)
    b = await start_node(tmp_path, "b", call_relay=True)
    yield a, b
    await b.server.close()
    await a.server.close()


async def call_across(
    a: LiveNode, b: LiveNode, *, relay: bool
) -> tuple[CallReport, CallReport]:
    """alice on a calls bob on b (who follows her) with video; both reports after media
    flowed both ways for a moment."""
    await a.user("alice")
    bob = await b.user("bob")
    await follow_across(b, bob, a, "alice")
    alice = CallClient()
    bob_client = CallClient(auto_answer=True, relay=relay)
    await alice.connect(f"http://{a.domain}", username="alice", password=PASSWORD)
    await bob_client.connect(f"http://{b.domain}", username="bob", password=PASSWORD)
    try:
        placed = await alice.place(f"@bob@{b.domain}", video=True, relay=relay)
        answered = await asyncio.wait_for(bob_client.answered.get(), 15)
        assert await placed.wait_connected(20), placed.end_reason
        assert await answered.wait_connected(20), answered.end_reason
        assert await placed.wait_media(frames=10) and await answered.wait_media(frames=10)
        # RTCP receiver reports (the round-trip time) come about once a second.
        for _ in range(60):
            if (await placed.report()).rtt_ms is not None:
                break
            await asyncio.sleep(0.1)
        mine, theirs = await placed.report(), await answered.report()
        final = await placed.hangup()
        assert await answered.wait_ended(10) == "ended"
        assert final.end_reason == "ended"
        return mine, theirs
    finally:
        await alice.close()
        await bob_client.close()


async def test_two_aiortc_clients_on_two_nodes_send_audio_and_video_both_ways(relay_nodes):
    a, b = relay_nodes
    mine, theirs = await call_across(a, b, relay=False)
    for report in (mine, theirs):
        assert report.connected
        assert report.audio_frames_received >= 10 and report.video_frames_received >= 10
        assert report.audio_frames_sent >= 10 and report.video_frames_sent >= 10
        assert report.local_candidate == "host" and not report.relayed
    assert mine.rtt_ms is not None and 0 <= mine.rtt_ms < 1000
    # Each side hashed its own certificate and the other's: the same code on both.
    assert mine.verification_code is not None
    assert mine.verification_code == theirs.verification_code
    assert len(mine.verification_code) == 6 and mine.verification_code.isdigit()


async def test_relay_forced_the_media_go_through_the_nodes_own_turn_relay(relay_nodes):
    a, b = relay_nodes
    before = {node.domain: node[CALL_RELAY].counters() for node in (a, b)}
    mine, theirs = await call_across(a, b, relay=True)
    for report, node in ((mine, a), (theirs, b)):
        assert report.local_candidate == "relay" and report.remote_candidate == "relay"
        # Each side's allocation is on its own node's relay.
        server = node[CALL_RELAY].server
        assert report.turn_server == ("127.0.0.1", server.udp_address[1])
        assert report.local_address is not None
        assert report.video_frames_received >= 10 and report.audio_frames_received >= 10
        after = node[CALL_RELAY].counters()
        moved = before[node.domain]
        assert after.allocations_total > moved.allocations_total
        assert after.packets_to_peers > moved.packets_to_peers
        assert after.packets_to_clients > moved.packets_to_clients
    assert mine.verification_code == theirs.verification_code is not None


def test_the_code_is_the_documented_hash_of_both_fingerprints():
    one = "sha-256 " + ":".join(["AB"] * 32)
    two = "sha-256 " + ":".join(["0F"] * 32)
    code = verification_code([one, two])
    assert code == verification_code([two, one.lower().replace("sha-256", "SHA-256")])
    import hashlib

    n = int.from_bytes(hashlib.sha256(f"{two}\n{one}".encode()).digest()[:4], "big")
    assert code == f"{n % 1_000_000:06d}"


# --- the commands, against a served node ------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedNode]:
    """A real ``xnode serve`` with its call relay, and one user, alice."""
    node = await ServedNode.create(tmp_path, "served", users=("alice",), call_relay="true")
    node.start()
    try:
        await node.wait_serving()
        yield node
    finally:
        node.stop()


def run_xnode(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XNODE_")}
    return subprocess.run([XNODE, *args], capture_output=True, text=True, timeout=60,
                          env=environ)  # fmt: skip


async def test_selftest_through_the_served_nodes_relay(served):
    done = await asyncio.to_thread(
        run_xnode, "calls", "selftest", "--data", str(served.data_dir), "--seconds", "2"
    )
    assert done.returncode == 0, done.stdout + done.stderr + served.log()
    assert "media flowed both ways: yes" in done.stdout
    assert "candidate pair: local relay, remote relay" in done.stdout
    assert "round-trip time:" in done.stdout
    # The relay's state, as the serving process recorded it for the command line.
    status = await asyncio.to_thread(run_xnode, "calls", "relay", "--data", str(served.data_dir))
    assert status.returncode == 0, status.stderr
    assert "relay: running on UDP and TCP port" in status.stdout
    assert "allocations_total:" in status.stdout


async def test_an_unknown_user_or_a_stopped_node_fails_clearly(served):
    unknown = await asyncio.to_thread(
        run_xnode, "call", "@nobody", "--data", str(served.data_dir), "--as", "alice"
    )
    assert unknown.returncode == 1
    assert "@nobody could not be found" in unknown.stderr
    no_such_caller = await asyncio.to_thread(
        run_xnode, "call", "@alice", "--data", str(served.data_dir), "--as", "nobody"
    )
    assert no_such_caller.returncode == 1 and "Error:" in no_such_caller.stderr
    served.stop()
    not_running = await asyncio.to_thread(
        run_xnode, "calls", "selftest", "--data", str(served.data_dir)
    )
    assert not_running.returncode == 1 and "is it running?" in not_running.stderr


def test_the_serving_process_never_imports_aiortc():
    # The command line (which registers the call commands) and the web application; the
    # relay's use of aioice's STUN codec is its own business. The client modules load
    # aiortc and PyAV only once a call is made.
    script = (
        "import sys, xnode.cli, xnode.web.app, xnode.calls.client_cli, xnode.calls.client\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiortc', 'av')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


async def test_the_client_answers_a_renegotiation_offer():
    """A browser renegotiates (camera on, a screen shared) with a ``call.signal`` offer:
    the client applies it and sends its answer back as a ``call.signal`` answer."""
    from aiortc import RTCPeerConnection

    from xnode.calls.client import ActiveCall

    client = CallClient()
    sent: list[dict[str, object]] = []

    async def send(frame: dict[str, object]) -> None:
        sent.append(frame)

    client.send = send  # type: ignore[method-assign]
    active = ActiveCall(client, "callee", video=False, relay_only=False, call="c1")
    active.start_connection([], relay_only=False)
    client._calls["c1"] = active
    browser = RTCPeerConnection()
    try:
        browser.addTransceiver("audio")
        await browser.setLocalDescription(await browser.createOffer())
        offer = browser.localDescription.sdp
        await client._dispatch({"type": "call.signal", "call": "c1", "sdpType": "offer",
                                "sdp": offer})  # fmt: skip
        (answer,) = sent
        assert (answer["type"], answer["call"], answer["sdpType"]) == (
            "call.signal", "c1", "answer"
        )
        assert isinstance(answer["sdp"], str) and answer["sdp"].startswith("v=0")
        assert active.pc is not None and active.pc.remoteDescription.sdp == offer
    finally:
        await active.finish("ended")
        await browser.close()


def test_answer_takes_calls_from_the_handle_asked_for_only():
    from xnode.calls.client_cli import _same_person

    here = "xnode.test"
    for wanted in ("@bob", "bob", " @Bob ", "bob@xnode.test", "@bob@XNODE.test"):
        assert _same_person(wanted, "bob", here), wanted
    assert _same_person("@bob@other.example", "bob@other.example", here)
    assert not _same_person("@bob", "bob@other.example", here)  # not the bob asked for
    assert not _same_person("@bob@other.example", "bob", here)
    assert not _same_person("@bo", "bob", here)
