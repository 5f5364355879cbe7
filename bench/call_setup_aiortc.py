"""Call setup with the aiortc client: from "accept" to ICE connected and to the first frame.

Two nodes on loopback (each ``create_app`` served on a free port, with its own relay), a
caller on one and a callee on the other, each an aiortc :class:`CallClient` in this
process (one clock for both). Each round: the caller places a video call (a tone and
moving frames), the callee's client answers as soon as it rings; the time is taken from
the moment the callee starts answering (``answer()``: it then makes its connection,
applies the offer and sends the answer, as a browser does after the click) to the moment
both connections are "connected" (ICE and DTLS), and to the moment both have decoded
their first remote video frame. Direct (host candidates) and relayed (the caller relays
only, so media go through the caller's node's TURN relay) rounds alternate.

The Chromium-to-Chromium figures are ``bench/call_setup.py``'s.

Usage: python bench/call_setup_aiortc.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from machine import calibration_line

from xnode.activitypub.appkeys import RESOLVER
from xnode.calls.client import CallClient
from xnode.ratelimit import Limit
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, CALLS, RELATIONSHIPS

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve_node(tmp: Path, name: str) -> tuple[web.Application, web.AppRunner, str]:
    port = free_port()
    domain = f"127.0.0.1:{port}"
    settings = settings_from_mapping(
        tmp / name,
        {"domain": domain, "base_url": f"http://{domain}", "registration": "open",
         "allow_private_addresses": True, "call_relay_port": 0},
        secret_key=secrets.token_bytes(32),
    )  # fmt: skip
    (tmp / name).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return app, runner, f"http://{domain}"


async def one_call(caller: CallClient, callee: CallClient, handle: str, relay: bool
                   ) -> dict[str, float | bool]:  # fmt: skip
    placed = await caller.place(handle, video=True, relay=relay)
    answered = await asyncio.wait_for(callee.answered.get(), 20)
    assert await placed.wait_connected(20) and await answered.wait_connected(20)
    assert await placed.wait_media(frames=1) and await answered.wait_media(frames=1)
    report = await placed.report()
    start = answered.accepted_at
    assert start is not None and placed.connected_at and answered.connected_at
    assert placed.first_video_at and answered.first_video_at
    result = {
        "connected": max(placed.connected_at, answered.connected_at) - start,
        "first_frame": max(placed.first_video_at, answered.first_video_at) - start,
        "relayed": report.relayed,
    }
    await placed.hangup()
    await answered.wait_ended(10)
    return result


def summary(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"{label:<52} p50 {p50:5.2f} s  p99 {p99:5.2f} s  (n={len(values)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="calls per kind")
    args = parser.parse_args()
    print(calibration_line())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        a, runner_a, base_a = await serve_node(tmp, "a")
        b, runner_b, base_b = await serve_node(tmp, "b")
        caller, callee = CallClient(), CallClient(auto_answer=True)
        try:
            await a[ACCOUNTS].create_user("alice", PASSWORD)
            bob = (await b[ACCOUNTS].create_user("bob", PASSWORD)).account
            for node in (a, b):  # many calls a minute between the same two people
                node[CALLS].caller_limit = node[CALLS].pair_limit = Limit(10_000, 60.0)
            target = await b[RESOLVER].actor_by_handle(f"alice@{base_a.split('//')[1]}")
            await b[RELATIONSHIPS].follow(bob.id, target.id)
            await caller.connect(base_a, username="alice", password=PASSWORD)
            await callee.connect(base_b, username="bob", password=PASSWORD)
            handle = f"@bob@{base_b.split('//')[1]}"
            results: dict[bool, list[dict[str, float | bool]]] = {False: [], True: []}
            for n in range(2 * args.rounds):
                relay = n % 2 == 1
                result = await one_call(caller, callee, handle, relay)
                assert result["relayed"] == relay, result
                results[relay].append(result)
        finally:
            await caller.close()
            await callee.close()
            await runner_b.cleanup()
            await runner_a.cleanup()
    print("aiortc to aiortc, two nodes on loopback, video, from the callee's answer:")
    for relay, label in ((False, "direct"), (True, "relayed (caller's node's TURN)")):
        rows = results[relay]
        print(summary(f"  {label}: ICE connected", [float(r["connected"]) for r in rows]))
        print(summary(f"  {label}: first remote frame", [float(r["first_frame"]) for r in rows]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(main())
