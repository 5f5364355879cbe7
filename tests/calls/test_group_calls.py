"""Group calls on one node: a mesh of up to four among the people of a conversation, over
the real live sockets (xnode/calls/service.py)."""

from __future__ import annotations

from typing import Any

from test_messages_web import frame_of, people, start  # noqa: F401 (the fixture)

from calls.test_calls import ANSWER, OFFER, nothing_of, tabs
from xnode.web.state import CALLS


async def group_call(ws: dict[str, Any], conversation: int) -> str:
    await ws["alice"].send_json({"type": "call.place", "ref": "g", "media": ["audio", "video"],
                                 "conversation": str(conversation)})  # fmt: skip
    placed = await frame_of(ws["alice"], "call.placed")
    assert placed["group"] is True and placed["ref"] == "g"
    return placed["call"]


async def test_a_group_call_is_a_mesh_people_join_and_leave(app, people):  # noqa: F811
    accounts, clients = people
    ids = {name: str(account.id) for name, account in accounts.items()}
    conversation, _ = await start(clients["alice"], "@bob @carol", "zqx the three of us")
    ws = await tabs(clients, "alice", "bob", "carol")
    call_id = await group_call(ws, conversation)
    ringing = await frame_of(ws["alice"], "call.ringing")
    assert sorted(p["acct"] for p in ringing["peers"]) == ["bob", "carol"]
    for name in ("bob", "carol"):
        incoming = await frame_of(ws[name], "call.incoming")
        assert incoming["group"] and "offer" not in incoming
        assert sorted(p["acct"] for p in incoming["participants"]) == ["alice", "bob", "carol"]

    # bob joins: he is told who is in (alice), alice that he came; he offers, she answers.
    await ws["bob"].send_json({"type": "call.accept", "call": call_id})
    assert [p["acct"] for p in (await frame_of(ws["bob"], "call.peers"))["peers"]] == ["alice"]
    assert (await frame_of(ws["alice"], "call.joined"))["peer"]["acct"] == "bob"
    await ws["bob"].send_json({"type": "call.signal", "call": call_id, "to": ids["alice"],
                               "sdpType": "offer", "sdp": OFFER})  # fmt: skip
    offer = await frame_of(ws["alice"], "call.signal")
    assert (offer["from"], offer["sdpType"]) == (ids["bob"], "offer")
    await ws["alice"].send_json({"type": "call.signal", "call": call_id, "to": ids["bob"],
                                 "sdpType": "answer", "sdp": ANSWER})  # fmt: skip
    assert (await frame_of(ws["bob"], "call.signal"))["sdpType"] == "answer"

    # carol joins: both are in already; her signal for bob reaches bob only.
    await ws["carol"].send_json({"type": "call.accept", "call": call_id})
    peers = (await frame_of(ws["carol"], "call.peers"))["peers"]
    assert sorted(p["acct"] for p in peers) == ["alice", "bob"]
    for name in ("alice", "bob"):
        assert (await frame_of(ws[name], "call.joined"))["peer"]["acct"] == "carol"
    await ws["carol"].send_json({"type": "call.signal", "call": call_id, "to": ids["bob"],
                                 "sdpType": "offer", "sdp": OFFER})  # fmt: skip
    assert (await frame_of(ws["bob"], "call.signal"))["from"] == ids["carol"]
    await nothing_of(ws["alice"], "call.signal")

    # bob leaves: the others go on; carol leaves: alice is alone, the call is over.
    await ws["bob"].send_json({"type": "call.hangup", "call": call_id})
    assert (await frame_of(ws["bob"], "call.ended"))["reason"] == "ended"
    for name in ("alice", "carol"):
        assert (await frame_of(ws[name], "call.left"))["peer"] == ids["bob"]
    assert not (await app[CALLS].call(int(call_id))).is_over
    await ws["carol"].send_json({"type": "call.hangup", "call": call_id})
    assert (await frame_of(ws["alice"], "call.ended"))["reason"] == "ended"
    assert (await app[CALLS].call(int(call_id))).is_over
    for socket in ws.values():
        await socket.close()


async def test_signals_in_a_group_call_go_only_to_people_in_it(app, people):  # noqa: F811
    accounts, clients = people
    conversation, _ = await start(clients["alice"], "@bob @carol", "zqx group")
    ws = await tabs(clients, "alice", "bob", "carol")
    call_id = await group_call(ws, conversation)
    await ws["bob"].send_json({"type": "call.accept", "call": call_id})
    await frame_of(ws["bob"], "call.peers")
    # carol still rings: nobody may signal to her, and she may not signal.
    await ws["bob"].send_json({"type": "call.signal", "call": call_id,
                               "to": str(accounts["carol"].id), "sdpType": "offer",
                               "sdp": OFFER})  # fmt: skip
    assert (await frame_of(ws["bob"], "call.error"))["call"] == call_id
    await ws["carol"].send_json({"type": "call.signal", "call": call_id,
                                 "to": str(accounts["alice"].id), "sdpType": "offer",
                                 "sdp": OFFER})  # fmt: skip
    assert (await frame_of(ws["carol"], "call.error"))["call"] == call_id
    await nothing_of(ws["alice"], "call.signal")
    for socket in ws.values():
        await socket.close()


async def test_a_group_call_nobody_answers_ends_and_leaves_missed_calls(app, people):  # noqa: F811
    _, clients = people
    app[CALLS].ring_timeout_s = 0.3
    conversation, _ = await start(clients["alice"], "@bob @carol", "zqx anyone?")
    ws = await tabs(clients, "alice", "bob", "carol")
    await group_call(ws, conversation)
    assert (await frame_of(ws["alice"], "call.ended", timeout=3))["reason"] == "timeout"
    for name in ("bob", "carol"):
        assert (await frame_of(ws[name], "call.ended", timeout=3))["reason"] == "timeout"
        page = await (await clients[name].get("/notifications")).text()
        assert "you missed the call" in page
    for socket in ws.values():
        await socket.close()


async def test_only_members_place_a_group_call(app, people):  # noqa: F811
    _, clients = people
    conversation, _ = await start(clients["alice"], "@bob", "zqx just us")
    ws = await tabs(clients, "carol")
    await ws["carol"].send_json({"type": "call.place", "ref": "x",
                                 "conversation": str(conversation)})  # fmt: skip
    refused = await frame_of(ws["carol"], "call.error")
    assert refused["ref"] == "x" and refused["error"] == "No such conversation."
    await ws["carol"].close()


async def test_a_group_call_has_at_most_four_people(app, people):  # noqa: F811
    from conftest import create_user

    _, clients = people
    for name in ("dave", "erin"):
        await create_user(app, name)
    conversation, _ = await start(clients["alice"], "@bob @carol @dave @erin", "zqx five")
    ws = await tabs(clients, "alice")
    await ws["alice"].send_json({"type": "call.place", "ref": "five",
                                 "conversation": str(conversation)})  # fmt: skip
    refused = await frame_of(ws["alice"], "call.error")
    assert refused["ref"] == "five" and "at most 4 people" in refused["error"]
    await ws["alice"].close()
