"""Calls between people on two nodes over real HTTP: signed signals on the fast path,
the live sockets of both people, and the ways such a call ends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from activitypub.test_inbox_process import split_nodes  # noqa: F401 (the fixture)
from aiohttp import web
from live_nodes import PASSWORD, LiveNode, eventually, follow_across, nodes  # noqa: F401
from test_messages_web import frame_of

from xnode.activitypub.appkeys import CALL_SIGNALS
from xnode.calls.models import Call
from xnode.web.state import CALLS

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 54321 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}  # fmt: skip


async def tab_of(node: LiveNode, username: str, sessions: list[aiohttp.ClientSession]) -> Any:
    """A signed-in live socket of ``username`` on ``node``, past its first frame."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    sessions.append(session)
    base = f"http://{node.domain}"
    async with session.get(f"{base}/login") as response:
        token = re.search(r'name="csrf_token" value="([^"]+)"', await response.text())[1]
    form = {"username": username, "password": PASSWORD, "csrf_token": token}
    async with session.post(f"{base}/login", data=form, allow_redirects=False) as response:
        assert response.status == 303
    socket = await session.ws_connect(f"{base}/live")
    await frame_of(socket, "unread")
    return socket


@pytest.fixture
async def sessions() -> AsyncIterator[list[aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for session in opened:
        await session.close()


async def ring(a: LiveNode, b: LiveNode, sessions: list[Any]) -> tuple[Any, Any, str, str]:
    """alice on a calls bob on b (who follows her); (alice's tab, bob's tab, the call's id on
    a, its id on b) once bob's tab rings."""
    await a.user("alice")
    bob = await b.user("bob")
    await follow_across(b, bob, a, "alice")
    alice_tab = await tab_of(a, "alice", sessions)
    bob_tab = await tab_of(b, "bob", sessions)
    await alice_tab.send_json({"type": "call.place", "ref": "r", "to": f"@bob@{b.domain}",
                               "media": ["audio", "video"]})  # fmt: skip
    placed = await frame_of(alice_tab, "call.placed")
    await alice_tab.send_json({"type": "call.offer", "call": placed["call"], "offer": OFFER})
    await frame_of(alice_tab, "call.ringing")
    incoming = await frame_of(bob_tab, "call.incoming", timeout=10)
    assert incoming["offer"] == OFFER and incoming["from"]["acct"] == f"alice@{a.domain}"
    assert incoming["media"] == ["audio", "video"]
    return alice_tab, bob_tab, placed["call"], incoming["call"]


async def test_a_call_across_nodes_rings_connects_signals_and_hangs_up(nodes, sessions):  # noqa: F811
    a, b = nodes
    alice_tab, bob_tab, on_a, on_b = await ring(a, b, sessions)
    # alice's candidates wait on her node until bob answers, then follow the answer.
    await alice_tab.send_json({"type": "call.signal", "call": on_a, "candidates": [CANDIDATE]})
    await bob_tab.send_json({"type": "call.accept", "call": on_b, "answer": ANSWER})
    assert (await frame_of(alice_tab, "call.accepted", timeout=10))["answer"] == ANSWER
    assert (await frame_of(bob_tab, "call.signal", timeout=10))["candidates"] == [CANDIDATE]
    await bob_tab.send_json({"type": "call.signal", "call": on_b, "candidates": [CANDIDATE]})
    assert (await frame_of(alice_tab, "call.signal", timeout=10))["candidates"] == [CANDIDATE]

    await alice_tab.send_json({"type": "call.hangup", "call": on_a})
    assert (await frame_of(bob_tab, "call.ended", timeout=10))["reason"] == "ended"
    assert (await frame_of(alice_tab, "call.ended"))["reason"] == "ended"
    call_on_b = await b[CALLS].call(int(on_b))
    assert call_on_b.state == "ended" and call_on_b.answered_at is not None
    assert call_on_b.uri == (await a[CALLS].call(int(on_a))).uri


@pytest.mark.parametrize("how", ["decline", "cancel"])
async def test_a_call_across_nodes_that_is_not_answered_ends_on_both(nodes, sessions, how):  # noqa: F811
    a, b = nodes
    alice_tab, bob_tab, on_a, on_b = await ring(a, b, sessions)
    if how == "decline":
        await bob_tab.send_json({"type": "call.decline", "call": on_b})
        reason = "declined"
    else:
        await alice_tab.send_json({"type": "call.hangup", "call": on_a})
        reason = "cancelled"
    for tab in (alice_tab, bob_tab):
        assert (await frame_of(tab, "call.ended", timeout=10))["reason"] == reason

    async def ended_on_both() -> bool:
        return (await a[CALLS].call(int(on_a))).is_over and (await b[CALLS].call(int(on_b))).is_over

    await eventually(ended_on_both)


async def test_a_remote_callee_who_may_not_be_rung_is_unavailable(nodes, sessions):  # noqa: F811
    a, b = nodes
    await a.user("alice")
    bob = await b.user("bob")
    await b[CALLS].set_policy(bob.id, "nobody", False)
    alice_tab = await tab_of(a, "alice", sessions)
    bob_tab = await tab_of(b, "bob", sessions)
    await alice_tab.send_json({"type": "call.place", "ref": "r", "to": f"@bob@{b.domain}"})
    placed = await frame_of(alice_tab, "call.placed", timeout=10)
    await alice_tab.send_json({"type": "call.offer", "call": placed["call"], "offer": OFFER})
    assert (await frame_of(alice_tab, "call.ended", timeout=10))["reason"] == "unavailable"
    with pytest.raises(asyncio.TimeoutError):
        await frame_of(bob_tab, "call.incoming", timeout=0.5)


async def test_signals_from_someone_outside_the_call_are_dropped(nodes, sessions):  # noqa: F811
    a, b = nodes
    alice_tab, bob_tab, on_a, on_b = await ring(a, b, sessions)
    await bob_tab.send_json({"type": "call.accept", "call": on_b, "answer": ANSWER})
    await frame_of(alice_tab, "call.accepted", timeout=10)
    # carol on b is not in the call; her server signs her Add and Leave properly.
    carol = await b.user("carol")
    alice_on_b = await b.remote(f"alice@{a.domain}")
    call_on_b: Call = await b[CALLS].call(int(on_b))
    b[CALL_SIGNALS].send(carol, alice_on_b, call_on_b, "Add", candidates=[CANDIDATE])
    b[CALL_SIGNALS].send(carol, alice_on_b, call_on_b, "Leave", object_id=call_on_b.uri,
                         reason="ended")  # fmt: skip
    with pytest.raises(asyncio.TimeoutError):
        await frame_of(alice_tab, "call.signal", timeout=1.0)
    assert not (await a[CALLS].call(int(on_a))).is_over


async def test_calls_ring_at_once_when_an_inbox_process_handles_the_queue(split_nodes, sessions):  # noqa: F811
    with_inbox_process, plain = split_nodes
    # bob's node hands its inbox to a second process; his tab still rings, and the call
    # connects, because call signals never wait in that queue.
    alice_tab, bob_tab, _, on_split = await ring(plain, with_inbox_process, sessions)
    await bob_tab.send_json({"type": "call.accept", "call": on_split, "answer": ANSWER})
    assert (await frame_of(alice_tab, "call.accepted", timeout=10))["answer"] == ANSWER
    assert (await with_inbox_process[CALLS].call(int(on_split))).state == "active"


async def test_a_server_without_calls_is_never_sent_a_signal(tmp_path, sessions):
    """A Mastodon-like server (its actor has no supportsCalls): the caller is told, and
    nothing at all is posted to that server's inboxes."""
    from live_nodes import start_node
    from ports import free_port

    port = free_port()
    host = f"127.0.0.1:{port}"
    actor = f"http://{host}/users/ana"
    posted: list[str] = []

    async def webfinger(request: web.Request) -> web.Response:
        return web.json_response({"subject": f"acct:ana@{host}", "links": [
            {"rel": "self", "type": "application/activity+json", "href": actor}]})

    async def actor_doc(request: web.Request) -> web.Response:
        return web.json_response({
            "@context": ["https://www.w3.org/ns/activitystreams",
                         {"toot": "http://joinmastodon.org/ns#"}],
            "id": actor, "type": "Person", "preferredUsername": "ana",
            "inbox": f"{actor}/inbox", "endpoints": {"sharedInbox": f"http://{host}/inbox"},
        }, content_type="application/activity+json")  # fmt: skip

    async def inbox(request: web.Request) -> web.Response:
        posted.append(await request.text())
        return web.Response(status=202)

    mastodon = web.Application()
    mastodon.router.add_get("/.well-known/webfinger", webfinger)
    mastodon.router.add_get("/users/ana", actor_doc)
    mastodon.router.add_post("/users/ana/inbox", inbox)
    mastodon.router.add_post("/inbox", inbox)
    runner = web.AppRunner(mastodon)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    a = await start_node(tmp_path, "a")
    try:
        await a.user("alice")
        alice_tab = await tab_of(a, "alice", sessions)
        await alice_tab.send_json({"type": "call.place", "ref": "r", "to": f"@ana@{host}"})
        placed = await frame_of(alice_tab, "call.placed", timeout=10)
        ended = await frame_of(alice_tab, "call.ended", timeout=10)
        assert ended["call"] == placed["call"] and ended["reason"] == "unavailable"
        assert ended["detail"] == "Their server does not support calls."
        await alice_tab.send_json({"type": "call.offer", "call": placed["call"], "offer": OFFER})
        await frame_of(alice_tab, "call.error")
        await asyncio.sleep(1.0)  # any signal would have been posted by now
        assert posted == []
    finally:
        await a.server.close()
        await runner.cleanup()
