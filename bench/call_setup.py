"""Call setup: from "accept" to ICE connected and to the first remote video frame.

Two nodes on loopback (each ``create_app`` served on a free port, with its own relay), a
caller on one and a callee on the other, each in headless Chromium (Debian's, with a fake
camera and microphone). Each round: the caller places a video call, the callee's tab
rings, the callee clicks "Accept with video"; the pages record (``calls.js``) when the
click happened, when each side's connection reached "connected" and when each drew the
first remote frame. Direct (host candidates) and relayed (the caller always relays, so
media go through the caller's node's TURN relay) rounds alternate.

Target (issue 16), Chromium to Chromium: p50 <= 1.0 s and p99 <= 2.0 s from accept to
the first remote frame. The aiortc-to-aiortc figures come with the aiortc call client.

Usage: python bench/call_setup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from machine import calibration_line
from playwright.async_api import Browser, Page, async_playwright

from xnode.accounts.models import Account
from xnode.activitypub.appkeys import RESOLVER
from xnode.ratelimit import Limit
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, CALLS, LIVE, RELATIONSHIPS, SETTINGS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", "--disable-background-networking"]  # fmt: skip
PASSWORD = "correct horse battery staple"
P50_TARGET_S, P99_TARGET_S = 1.0, 2.0


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


@contextlib.asynccontextmanager
async def two_nodes() -> AsyncIterator[
    tuple[web.Application, web.Application, Account, Account, str]
]:
    """Nodes a and b served on loopback, alice on a and bob on b; yields (a, b, alice, bob,
    the handle alice calls bob by). bob follows alice (so he takes her calls under the
    "following" policy) and the call rate limits are raised for many calls a minute
    between the same two people."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        a, runner_a, base_a = await serve_node(tmp, "a")
        b, runner_b, base_b = await serve_node(tmp, "b")
        try:
            alice = (await a[ACCOUNTS].create_user("alice", PASSWORD)).account
            bob = (await b[ACCOUNTS].create_user("bob", PASSWORD)).account
            for node in (a, b):
                node[CALLS].caller_limit = node[CALLS].pair_limit = Limit(10_000, 60.0)
            target = await b[RESOLVER].actor_by_handle(f"alice@{base_a.split('//')[1]}")
            await b[RELATIONSHIPS].follow(bob.id, target.id)
            yield a, b, alice, bob, f"@bob@{base_b.split('//')[1]}"
        finally:
            await runner_b.cleanup()
            await runner_a.cleanup()


async def signed_in(browser: Browser, base: str, username: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/")
    return page


async def wait_for(page: Page, script: str, timeout_s: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await page.evaluate(script)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(script)
        await asyncio.sleep(0.02)


async def one_call(
    caller: Page, caller_base: str, callee: Page, callee_handle: str
) -> dict[str, float]:
    await caller.goto(f"{caller_base}/{callee_handle}")
    await caller.get_by_role("button", name="Video call").click()
    banner = callee.get_by_role("alertdialog", name="Incoming video call")
    await banner.wait_for(timeout=20_000)
    await banner.get_by_role("button", name="Accept with video").click()
    timing = "(() => { const a = window.xnodeCalls.active(); return a && a.timings })()"
    done = "(() => { const a = window.xnodeCalls.active(); return a && a.timings.firstFrameAt"
    done += " && a.timings.connectedAt })()"
    await wait_for(caller, done)
    await wait_for(callee, done)
    mine, theirs = await caller.evaluate(timing), await callee.evaluate(timing)
    path = (await caller.evaluate("window.xnodeCalls.quality()"))["path"]
    accepted = theirs["acceptedAt"]
    result = {
        "connected": (max(mine["connectedAt"], theirs["connectedAt"]) - accepted) / 1000,
        "first_frame": (max(mine["firstFrameAt"], theirs["firstFrameAt"]) - accepted) / 1000,
        "relayed": path == "relay",
    }
    await caller.get_by_role("button", name="Hang up").click()
    for page in (caller, callee):
        await wait_for(page, "window.xnodeCalls.active() === null")
        # The "Call ended" views linger a few seconds; the next round starts clean.
        await page.evaluate("document.querySelectorAll('.call-view').forEach((v) => v.remove())")
    return result


def p50_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def summary(label: str, values: list[float]) -> str:
    p50, p99 = p50_p99(values)
    return f"{label:<52} p50 {p50:5.2f} s  p99 {p99:5.2f} s  (n={len(values)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="calls per kind")
    args = parser.parse_args()
    print(calibration_line())
    async with two_nodes() as (a, b, alice, bob, handle), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS
        )
        caller = await signed_in(browser, a[SETTINGS].base_url, "alice")
        callee = await signed_in(browser, b[SETTINGS].base_url, "bob")
        while not (a[LIVE].is_connected(alice.id) and b[LIVE].is_connected(bob.id)):
            await asyncio.sleep(0.05)
        results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for n in range(2 * args.rounds):
            relay = n % 2 == 1
            await a[CALLS].set_policy(alice.id, "following", relay)
            result = await one_call(caller, a[SETTINGS].base_url, callee, handle)
            assert result["relayed"] == relay, result
            results[relay].append(result)
        await browser.close()
    print("Chromium to Chromium, two nodes on loopback, video, from the callee's click:")
    for relay, label in ((False, "direct"), (True, "relayed (caller's node's TURN)")):
        rows = results[relay]
        print(summary(f"  {label}: ICE connected", [r["connected"] for r in rows]))
        print(summary(f"  {label}: first remote frame", [r["first_frame"] for r in rows]))
    p50, p99 = p50_p99([r["first_frame"] for rows in results.values() for r in rows])
    verdict = "PASS" if p50 <= P50_TARGET_S and p99 <= P99_TARGET_S else "FAIL"
    print(f"target: first frame p50 <= {P50_TARGET_S} s, p99 <= {P99_TARGET_S} s -> {verdict}"
          f" (p50 {p50:.2f} s, p99 {p99:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(main())
