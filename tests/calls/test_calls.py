"""Calls between people on one node, through the real live socket (xnode/calls/service.py):
ringing, answering, signalling both ways, the ways a call ends, and who may ring."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_messages_web import closed, frame_of, people  # noqa: F401 (the fixture)

from xnode.web.state import CALLS, RELATIONSHIPS

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 54321 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}  # fmt: skip


async def tabs(clients: dict[str, Any], *names: str) -> dict[str, Any]:
    """An open live socket per person, past its first unread-counts frame."""
    sockets = {}
    for name in names:
        sockets[name] = await clients[name].ws_connect("/live")
        await frame_of(sockets[name], "unread")
    return sockets


async def place(socket: Any, to: str = "@bob", media: list[str] | None = None) -> str | None:
    """Place a call and send the offer once the node gives it an id; the id, or None
    when the call ended at once (the ``call.ended`` frame is then next)."""
    await socket.send_json({"type": "call.place", "ref": "r1", "to": to,
                            "media": media or ["audio", "video"]})  # fmt: skip
    message = await socket.receive(timeout=3)
    frame = message.json()
    if frame["type"] != "call.placed":
        return None
    assert frame["ref"] == "r1" and isinstance(frame["iceServers"], list)
    await socket.send_json({"type": "call.offer", "call": frame["call"], "offer": OFFER})
    return frame["call"]


async def nothing_of(socket: Any, kind: str) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await frame_of(socket, kind, timeout=0.3)


async def test_a_call_rings_is_answered_and_carries_signalling_both_ways(app, people):  # noqa: F811
    accounts, clients = people
    ws = await tabs(clients, "alice", "bob")
    call_id = await place(ws["alice"])
    ringing = await frame_of(ws["alice"], "call.ringing")
    assert ringing["peer"]["acct"] == "bob"
    incoming = await frame_of(ws["bob"], "call.incoming")
    assert incoming["call"] == call_id and incoming["offer"] == OFFER
    assert incoming["from"]["acct"] == "alice" and incoming["media"] == ["audio", "video"]

    # Candidates trickled while bob's tab rings wait for the tab that answers.
    await ws["alice"].send_json({"type": "call.signal", "call": call_id, "candidates": [CANDIDATE]})
    await nothing_of(ws["bob"], "call.signal")
    await ws["bob"].send_json({"type": "call.accept", "call": call_id, "answer": ANSWER})
    accepted = await frame_of(ws["alice"], "call.accepted")
    assert accepted["answer"] == ANSWER
    await frame_of(ws["bob"], "call.taken")
    waited = await frame_of(ws["bob"], "call.signal")
    assert waited["candidates"] == [CANDIDATE] and waited["from"] == str(accounts["alice"].id)

    # Now both ways at once, and a renegotiation (the camera turned on, say).
    await ws["bob"].send_json({"type": "call.signal", "call": call_id, "candidates": [CANDIDATE]})
    assert (await frame_of(ws["alice"], "call.signal"))["candidates"] == [CANDIDATE]
    await ws["alice"].send_json({"type": "call.signal", "call": call_id, "sdpType": "offer",
                                 "sdp": OFFER})  # fmt: skip
    renegotiation = await frame_of(ws["bob"], "call.signal")
    assert (renegotiation["sdpType"], renegotiation["sdp"]) == ("offer", OFFER)

    await ws["bob"].send_json({"type": "call.hangup", "call": call_id})
    for name in ("alice", "bob"):
        assert (await frame_of(ws[name], "call.ended"))["reason"] == "ended"
    call = await app[CALLS].call(int(call_id))
    assert call is not None and call.state == "ended" and call.answered_at is not None
    assert {p.state for p in await app[CALLS].participants(int(call_id))} == {"left"}
    # A late candidate after the hang-up is answered, not passed on, and the tab stays open.
    await ws["alice"].send_json({"type": "call.signal", "call": call_id, "candidates": [CANDIDATE]})
    assert (await frame_of(ws["alice"], "call.error"))["call"] == call_id
    await nothing_of(ws["bob"], "call.signal")
    for socket in ws.values():
        await socket.close()


async def test_frames_for_someone_elses_call_are_refused(app, people):  # noqa: F811
    _, clients = people
    ws = await tabs(clients, "alice", "bob", "carol")
    call_id = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    # carol is not in the call: she can neither take it, nor talk into it, nor end it.
    for frame in (
        {"type": "call.accept", "call": call_id, "answer": ANSWER},
        {"type": "call.signal", "call": call_id, "candidates": [CANDIDATE]},
        {"type": "call.decline", "call": call_id},
    ):
        await ws["carol"].send_json(frame)
        assert (await frame_of(ws["carol"], "call.error"))["call"] == call_id
    await ws["carol"].send_json({"type": "call.hangup", "call": call_id})
    await nothing_of(ws["alice"], "call.accepted")
    await nothing_of(ws["alice"], "call.ended")
    assert (await app[CALLS].call(int(call_id))).state == "ringing"
    for socket in ws.values():
        await socket.close()


@pytest.mark.parametrize(
    ("how", "reason"),
    [("decline", "declined"), ("cancel", "cancelled"), ("timeout", "timeout")],
)
async def test_a_call_that_is_not_answered_ends_for_both_with_its_reason(
    app, people, how, reason  # noqa: F811
):
    _, clients = people
    app[CALLS].ring_timeout_s = 0.3
    ws = await tabs(clients, "alice", "bob")
    call_id = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    if how == "decline":
        await ws["bob"].send_json({"type": "call.decline", "call": call_id})
    elif how == "cancel":
        await ws["alice"].send_json({"type": "call.hangup", "call": call_id})
    for name in ("alice", "bob"):
        assert (await frame_of(ws[name], "call.ended", timeout=3))["reason"] == reason
    if how != "decline":  # the missed call's notification: the badge follows
        assert (await frame_of(ws["bob"], "unread"))["notifications"] >= 1
    # Over is over: an answer now changes nothing.
    await ws["bob"].send_json({"type": "call.accept", "call": call_id, "answer": ANSWER})
    await frame_of(ws["bob"], "call.error")
    assert (await app[CALLS].call(int(call_id))).end_reason == reason
    # A call that rang and was not answered is a missed call; a declined one is not.
    page = await (await clients["bob"].get("/notifications")).text()
    assert ("called you; you missed the call" in page) == (how != "decline")
    for socket in ws.values():
        await socket.close()


async def test_someone_in_a_call_is_busy(app, people):  # noqa: F811
    accounts, clients = people
    await app[RELATIONSHIPS].follow(accounts["bob"].id, accounts["carol"].id)
    ws = await tabs(clients, "alice", "bob", "carol")
    call_id = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    await ws["bob"].send_json({"type": "call.accept", "call": call_id, "answer": ANSWER})
    await frame_of(ws["alice"], "call.accepted")
    await place(ws["carol"], "@bob")
    assert (await frame_of(ws["carol"], "call.ended"))["reason"] == "busy"
    await nothing_of(ws["bob"], "call.incoming")
    for socket in ws.values():
        await socket.close()


@pytest.mark.parametrize("obstacle", ["nobody", "block", "mute", "not followed", "no tab"])
async def test_who_may_not_ring_gets_unavailable_and_never_rings(
    app, people, obstacle  # noqa: F811
):
    accounts, clients = people
    alice, bob = accounts["alice"], accounts["bob"]
    caller, callee = "alice", "bob"
    if obstacle == "nobody":
        await app[CALLS].set_policy(bob.id, "nobody", False)
    elif obstacle == "block":
        # Blocking ends the follow too; "everyone" keeps the block the only obstacle.
        await app[CALLS].set_policy(bob.id, "everyone", False)
        await app[RELATIONSHIPS].block(bob.id, alice.id)
    elif obstacle == "mute":
        await app[RELATIONSHIPS].set_mute(bob.id, alice.id, True)
    elif obstacle == "not followed":
        caller, callee = "bob", "alice"  # alice does not follow bob (policy "following")
    open_tabs = (caller,) if obstacle == "no tab" else (caller, callee)
    ws = await tabs(clients, *open_tabs)
    await place(ws[caller], f"@{callee}")
    assert (await frame_of(ws[caller], "call.ended"))["reason"] == "unavailable"
    if callee in ws:
        await nothing_of(ws[callee], "call.incoming")
    for socket in ws.values():
        await socket.close()


async def test_calls_to_one_person_are_rate_limited(app, people):  # noqa: F811
    _, clients = people
    ws = await tabs(clients, "alice", "bob")
    for _ in range(3):
        call_id = await place(ws["alice"])
        await ws["alice"].send_json({"type": "call.hangup", "call": call_id})
        await frame_of(ws["alice"], "call.ended")
    await ws["alice"].send_json({"type": "call.place", "ref": "r1", "to": "@bob"})
    refused = await frame_of(ws["alice"], "call.error")
    assert refused["ref"] == "r1" and "Too many calls" in refused["error"]
    for socket in ws.values():
        await socket.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "call.offer", "call": "1", "offer": "not sdp"},
        {"type": "call.place", "to": "@bob", "media": ["smell"]},
        {"type": "call.place", "to": 5},
        {"type": "call.accept", "call": "x1", "answer": ANSWER},
        {"type": "call.signal", "call": "1", "candidates": [{"candidate": 5}]},
        {"type": "call.signal", "call": "1", "candidates": [CANDIDATE] * 21},
        {"type": "call.offer", "call": "1", "offer": "v=0" + "x" * 17_000},
    ],
)
async def test_malformed_call_frames_close_the_socket(people, frame):  # noqa: F811
    _, clients = people
    ws = await tabs(clients, "alice")
    await ws["alice"].send_json(frame)
    assert await closed(ws["alice"])


async def test_call_settings_are_saved_from_the_account_page_with_csrf(app, people):  # noqa: F811
    from conftest import csrf_from, post_form

    accounts, clients = people
    bob = clients["bob"]
    page = await (await bob.get("/settings/account")).text()
    assert 'name="call_policy"' in page and 'value="following" selected' in page
    fields = {"call_policy": "nobody", "always_relay": "1"}
    response = await post_form(bob, "/settings/calls", fields, token_page="/settings/account")
    assert response.status == 303
    assert await app[CALLS].policy(accounts["bob"].id) == ("nobody", True)
    # Without the token: refused, nothing changed.
    forged = await bob.post("/settings/calls", data={"call_policy": "everyone"})
    assert forged.status == 403
    assert await app[CALLS].policy(accounts["bob"].id) == ("nobody", True)
    token = await csrf_from(bob, "/settings/account")
    bad = await bob.post("/settings/calls", data={"call_policy": "strangers", "csrf_token": token},
                         allow_redirects=False)  # fmt: skip
    assert bad.status == 303 and await app[CALLS].policy(accounts["bob"].id) == ("nobody", True)


async def test_calls_show_in_the_conversation_history_for_both(app, people):  # noqa: F811
    from test_messages_web import start

    _, clients = people
    conversation, _ = await start(clients["alice"], "@bob", "zqx shall we talk?")
    ws = await tabs(clients, "alice", "bob")
    declined = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    await ws["bob"].send_json({"type": "call.decline", "call": declined})
    await frame_of(ws["alice"], "call.ended")
    answered = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    await ws["bob"].send_json({"type": "call.accept", "call": answered, "answer": ANSWER})
    await frame_of(ws["alice"], "call.accepted")
    await ws["alice"].send_json({"type": "call.hangup", "call": answered})
    await frame_of(ws["bob"], "call.ended")
    for socket in ws.values():
        await socket.close()

    alice_page = await (await clients["alice"].get(f"/messages/{conversation}")).text()
    bob_page = await (await clients["bob"].get(f"/messages/{conversation}")).text()
    for page in (alice_page, bob_page):
        assert "Declined video call" in page and f'id="call-{declined}"' in page
        # After the message, in the order they happened.
        assert page.index("zqx shall we talk?") < page.index(f'id="call-{declined}"')
        assert page.index(f'id="call-{declined}"') < page.index(f'id="call-{answered}"')
        assert 'data-call="@' in page  # the conversation's own Call buttons
    assert "Outgoing video call · 0:00" in alice_page
    assert "Incoming video call · 0:00" in bob_page
    # carol is in no call with them: their calls never show in her conversations.
    carol_conversation, _ = await start(clients["carol"], "@alice", "zqx hi alice")
    carol_page = await (await clients["carol"].get(f"/messages/{carol_conversation}")).text()
    assert "video call" not in carol_page


@pytest.mark.parametrize("who", ["caller", "callee"])
async def test_closing_the_tab_that_holds_a_call_ends_it_for_the_other(app, people, who):  # noqa: F811
    _, clients = people
    ws = await tabs(clients, "alice", "bob")
    other_tab_of_bob = await tabs(clients, "bob")  # a second tab: it must not keep the call
    call_id = await place(ws["alice"])
    await frame_of(ws["bob"], "call.incoming")
    await ws["bob"].send_json({"type": "call.accept", "call": call_id, "answer": ANSWER})
    await frame_of(ws["alice"], "call.accepted")
    closing, staying = ("alice", "bob") if who == "caller" else ("bob", "alice")
    await ws[closing].close()
    assert (await frame_of(ws[staying], "call.ended"))["reason"] == "ended"
    assert (await app[CALLS].call(int(call_id))).is_over
    for socket in (ws[staying], other_tab_of_bob["bob"]):
        await socket.close()
