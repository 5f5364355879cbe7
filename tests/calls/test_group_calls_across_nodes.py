"""A group call with people on two nodes: alice and carol on one, bob on the other, over
real HTTP and the three live sockets."""

from __future__ import annotations

from live_nodes import follow_across, nodes  # noqa: F401 (the fixture)
from test_messages_web import frame_of

from calls.test_calls_across_nodes import ANSWER, OFFER, sessions, tab_of  # noqa: F401
from xnode.web.state import CALLS, DMS, RELATIONSHIPS


async def test_a_group_call_across_two_nodes_meshes_and_people_leave(nodes, sessions):  # noqa: F811
    a, b = nodes
    alice, carol = await a.user("alice"), await a.user("carol")
    bob = await b.user("bob")
    await follow_across(b, bob, a, "alice")  # bob takes calls from people he follows
    await a[RELATIONSHIPS].follow(carol.id, alice.id)
    bob_on_a = await a.remote(f"bob@{b.domain}")
    message = await a[DMS].start(alice, f"@carol @bob@{b.domain}", "zqx the three of us")
    tabs = {name: await tab_of(a, name, sessions) for name in ("alice", "carol")}
    tabs["bob"] = await tab_of(b, "bob", sessions)

    await tabs["alice"].send_json({"type": "call.place", "ref": "g", "media": ["audio"],
                                   "conversation": str(message.conversation_id)})  # fmt: skip
    on_a = (await frame_of(tabs["alice"], "call.placed"))["call"]
    await frame_of(tabs["carol"], "call.incoming")
    incoming = await frame_of(tabs["bob"], "call.incoming", timeout=10)
    on_b = incoming["call"]
    assert incoming["group"] and len(incoming["participants"]) == 3

    # bob joins on his node: alice hears of it on hers; he offers to her, she answers.
    await tabs["bob"].send_json({"type": "call.accept", "call": on_b})
    peers = (await frame_of(tabs["bob"], "call.peers"))["peers"]
    assert [p["acct"] for p in peers] == [f"alice@{a.domain}"]
    assert (await frame_of(tabs["alice"], "call.joined", timeout=10))["peer"]["id"] == str(
        bob_on_a.id
    )
    await tabs["bob"].send_json({"type": "call.signal", "call": on_b, "to": peers[0]["id"],
                                 "sdpType": "offer", "sdp": OFFER})  # fmt: skip
    offer = await frame_of(tabs["alice"], "call.signal", timeout=10)
    assert (offer["from"], offer["sdpType"]) == (str(bob_on_a.id), "offer")
    await tabs["alice"].send_json({"type": "call.signal", "call": on_a, "to": str(bob_on_a.id),
                                   "sdpType": "answer", "sdp": ANSWER})  # fmt: skip
    assert (await frame_of(tabs["bob"], "call.signal", timeout=10))["sdpType"] == "answer"

    # carol joins: both nodes hear; her offer to bob reaches bob only.
    await tabs["carol"].send_json({"type": "call.accept", "call": on_a})
    peers = (await frame_of(tabs["carol"], "call.peers"))["peers"]
    assert sorted(p["acct"] for p in peers) == sorted(["alice", f"bob@{b.domain}"])
    await frame_of(tabs["alice"], "call.joined")
    carol_on_b = (await frame_of(tabs["bob"], "call.joined", timeout=10))["peer"]
    assert carol_on_b["acct"] == f"carol@{a.domain}"
    await tabs["carol"].send_json({"type": "call.signal", "call": on_a, "to": str(bob_on_a.id),
                                   "sdpType": "offer", "sdp": OFFER})  # fmt: skip
    assert (await frame_of(tabs["bob"], "call.signal", timeout=10))["from"] == carol_on_b["id"]

    # bob leaves: both on the other node see him go; the call goes on there.
    await tabs["bob"].send_json({"type": "call.hangup", "call": on_b})
    for name in ("alice", "carol"):
        assert (await frame_of(tabs[name], "call.left", timeout=10))["peer"] == str(bob_on_a.id)
    assert not (await a[CALLS].call(int(on_a))).is_over
    assert (await b[CALLS].call(int(on_b))).state in ("active", "ended")
