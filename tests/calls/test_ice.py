"""The ICE servers a call's tabs get: the node's own relay with credentials it accepts,
an external TURN server when configured, and never a third party's STUN server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aioice.turn import TurnClientUdpProtocol
from conftest import make_settings
from test_messages_web import frame_of, people  # noqa: F401 (the fixture)

from calls.test_calls import tabs
from xnode.calls.ice import CallRelay
from xnode.calls.turn_credentials import turn_password
from xnode.clock import SystemClock
from xnode.web.state import CALL_RELAY


async def placed_ice_servers(clients: dict[str, Any]) -> list[dict[str, Any]]:
    ws = await tabs(clients, "alice", "bob")
    await ws["alice"].send_json({"type": "call.place", "ref": "r", "to": "@bob"})
    servers = (await frame_of(ws["alice"], "call.placed"))["iceServers"]
    for socket in ws.values():
        await socket.close()
    return servers


async def test_a_call_gets_the_nodes_relay_and_its_credentials_open_it(app, people):  # noqa: F811
    _, clients = people
    stun, turn = await placed_ice_servers(clients)
    relay = app[CALL_RELAY]
    assert relay.server is not None
    port = relay.server.udp_address[1]
    assert stun == {"urls": [f"stun:xnode.test:{port}"]}
    assert turn["urls"] == [f"turn:xnode.test:{port}?transport=udp",
                            f"turn:xnode.test:{port}?transport=tcp"]  # fmt: skip
    address = ("127.0.0.1", port)
    _, client = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            address, username=turn["username"], password=turn["credential"], lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=address,
    )
    try:
        relayed = await asyncio.wait_for(client.connect(), 5)
        assert relayed[1] > 0
        assert relay.counters().allocations_current == 1
    finally:
        await asyncio.wait_for(client.delete(), 2)
        client.transport.close()


async def test_without_a_relay_there_is_no_ice_server_at_all(tmp_path: Path):
    relay = CallRelay(make_settings(tmp_path, call_relay=False), SystemClock())
    await relay.start()
    assert relay.ice_servers(1) == [] and relay.status == "off"


async def test_an_external_turn_server_gets_credentials_it_can_check(tmp_path: Path):
    settings = make_settings(tmp_path, turn_server="turn.example.org:3478", turn_secret="s3cret")
    relay = CallRelay(settings, SystemClock())
    await relay.start()
    assert relay.server is None  # the built-in one stays off
    stun, turn = relay.ice_servers(42)
    assert stun["urls"] == ["stun:turn.example.org:3478"]
    assert turn["username"].endswith(":42")
    assert turn["credential"] == turn_password(b"s3cret", turn["username"])


async def test_a_taken_port_leaves_the_node_serving_without_a_relay(tmp_path: Path):
    first = CallRelay(make_settings(tmp_path / "a", call_relay=True), SystemClock())
    await first.start()
    assert first.server is not None
    taken = first.server.udp_address[1]
    second = CallRelay(
        make_settings(tmp_path / "b", call_relay=True, call_relay_port=taken), SystemClock()
    )
    try:
        await second.start()
        assert second.server is None and second.status.startswith("not running")
        assert second.ice_servers(1) == []
    finally:
        await first.close()
        await second.close()


async def test_admins_see_the_relay_running_and_its_counters(client, app):
    from activitypub.test_federation_admin import PAGE, as_admin

    await as_admin(client, app)
    page = await (await client.get(PAGE)).text()
    port = app[CALL_RELAY].server.udp_address[1]
    assert f"running on UDP and TCP port {port}" in page
    assert "Allocations now / since start</th><td>0 / 0" in page


async def test_the_relay_reports_its_state_for_the_cli(app):
    import json

    from xnode.store import calls as call_store
    from xnode.web.state import DB

    async def reported() -> dict[str, Any] | None:
        found = await call_store.relay_report(app[DB])
        return json.loads(found[0]) if found else None

    report = await reported()
    for _ in range(50):
        if report:
            break
        await asyncio.sleep(0.05)
        report = await reported()
    assert report is not None and report["status"].startswith("running on UDP and TCP port")
    assert report["counters"]["allocations_current"] == 0


async def test_an_unchanged_relay_report_is_not_written_again(app, clock):
    from xnode.store import calls as call_store
    from xnode.web.state import DB

    relay = app[CALL_RELAY]
    await relay.save_report()
    first = await call_store.relay_report(app[DB])
    clock.advance(60)
    await relay.save_report()  # nothing moved: an idle node leaves the disk alone
    assert await call_store.relay_report(app[DB]) == first
    relay.status = "not running: a test"
    await relay.save_report()
    assert (await call_store.relay_report(app[DB]))[1] == first[1] + 60
