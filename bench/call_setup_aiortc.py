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
import sys
from pathlib import Path

from call_setup import PASSWORD, summary, two_nodes  # the Chromium bench's nodes, figures
from machine import calibration_line

from xnode.calls.client import CallClient
from xnode.web.state import SETTINGS


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="calls per kind")
    args = parser.parse_args()
    print(calibration_line())
    async with two_nodes() as (a, b, _alice, _bob, handle):
        caller, callee = CallClient(), CallClient(auto_answer=True)
        try:
            await caller.connect(a[SETTINGS].base_url, username="alice", password=PASSWORD)
            await callee.connect(b[SETTINGS].base_url, username="bob", password=PASSWORD)
            results: dict[bool, list[dict[str, float | bool]]] = {False: [], True: []}
            for n in range(2 * args.rounds):
                relay = n % 2 == 1
                result = await one_call(caller, callee, handle, relay)
                assert result["relayed"] == relay, result
                results[relay].append(result)
        finally:
            await caller.close()
            await callee.close()
    print("aiortc to aiortc, two nodes on loopback, video, from the callee's answer:")
    for relay, label in ((False, "direct"), (True, "relayed (caller's node's TURN)")):
        rows = results[relay]
        print(summary(f"  {label}: ICE connected", [float(r["connected"]) for r in rows]))
        print(summary(f"  {label}: first remote frame", [float(r["first_frame"]) for r in rows]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(main())
