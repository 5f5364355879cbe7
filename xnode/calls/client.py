"""A call client in Python (aiortc), speaking to a node exactly as a browser tab does.

:class:`CallClient` signs in (a session cookie, or a username and password through the
login form), opens the live socket (``/live``) and speaks the ``call.*`` frames of
``xnode/calls/service.py``: it places calls by handle and answers incoming ones, sends a
synthetic tone and moving frames (or a file: ``client_media.py``), counts the
frames it receives, and reports how the call went: frames both ways, the selected
candidate pair, the round-trip time and the verification code of
``docs/calls-over-activitypub.md``. Used by ``xnode call``, ``xnode calls selftest``, the
tests and ``bench/call_setup_aiortc.py``.

aiortc is imported inside the functions that need it: the serving process imports this
package (``xnode.calls``) and must stay small, and only a client ever needs aiortc.

Two differences from a browser, both handled here:

- aiortc does not trickle ICE: ``setLocalDescription`` returns once every candidate is
  gathered, and they are all in the SDP it sends, so the client never sends
  ``call.signal``. A browser's trickled candidates are added as they come.
- Relay only: aiortc (1.9 and later) has ``iceTransportPolicy``; with ``"relay"`` aioice
  gathers no host or server-reflexive candidates at all, only the allocation on the
  node's TURN server, and pairs only those, as a browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from xnode.calls.client_media import MediaSource

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection

log = logging.getLogger(__name__)

SESSION_COOKIE = "xnode_session"  # xnode/web/middleware.py
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+) (\S+)\s*$", re.MULTILINE)


class CallClientError(Exception):
    """The client cannot go on: not signed in, node unreachable, call refused."""


# --- reports -----------------------------------------------------------------------------


@dataclass
class CallReport:
    """How a call went, from one side."""

    call: str | None
    role: str
    connected: bool = False
    end_reason: str | None = None
    audio_frames_received: int = 0
    video_frames_received: int = 0
    audio_frames_sent: int = 0
    video_frames_sent: int = 0
    local_candidate: str | None = None  # host, srflx or relay
    remote_candidate: str | None = None
    local_address: tuple[str, int] | None = None
    turn_server: tuple[str, int] | None = None
    rtt_ms: float | None = None
    verification_code: str | None = None
    accept_to_connected_s: float | None = None
    accept_to_first_video_s: float | None = None

    @property
    def relayed(self) -> bool:
        """Whether the media went through a TURN relay (either side's)."""
        return "relay" in (self.local_candidate, self.remote_candidate)

    def lines(self) -> list[str]:
        """The report as lines of text, for the command line."""
        rtt = "unknown" if self.rtt_ms is None else f"{self.rtt_ms:.1f} ms"
        return [
            f"call {self.call} ({self.role}): "
            + ("connected" if self.connected else "not connected")
            + (f", ended: {self.end_reason}" if self.end_reason else ""),
            f"  frames received: audio {self.audio_frames_received}, "
            f"video {self.video_frames_received}",
            f"  frames sent: audio {self.audio_frames_sent}, video {self.video_frames_sent}",
            f"  candidate pair: local {self.local_candidate or '-'}, "
            f"remote {self.remote_candidate or '-'}"
            + (" (through the relay)" if self.relayed else ""),
            f"  round-trip time: {rtt}",
            f"  verification code: {self.verification_code or '-'}",
        ]


def verification_code(fingerprints: list[str]) -> str:
    """The 6-digit code of ``docs/calls-over-activitypub.md`` from the two DTLS fingerprints.

    Args:
        fingerprints: both sides' ``"<algorithm> <HEX:HEX:…>"``, in any order.
    """
    lines = sorted(f"{a.lower()} {v.upper()}" for a, v in (f.split(" ", 1) for f in fingerprints))
    digest = hashlib.sha256("\n".join(lines).encode()).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 1_000_000:06d}"


def ice_configuration(
    ice_servers: Sequence[Mapping[str, Any]], relay_only: bool
) -> RTCConfiguration:
    """The peer connection's configuration from the node's ``iceServers`` only.

    An explicit (possibly empty) server list: aiortc's default would be Google's STUN
    server, and xnode never hands a third party its users' addresses.
    """
    from aiortc import RTCConfiguration, RTCIceServer
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    servers = []
    for server in ice_servers:
        urls = server.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls:
            continue
        servers.append(RTCIceServer(
            urls=[u for u in urls if isinstance(u, str)],
            username=server.get("username"), credential=server.get("credential"),
        ))  # fmt: skip
    if relay_only and not any(u.startswith("turn") for s in servers for u in s.urls):
        raise CallClientError("relay only, but the node offers no TURN relay")
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


# --- one call ----------------------------------------------------------------------------


@dataclass
class Incoming:
    """A call ringing this client (``call.incoming``)."""

    call: str
    caller: str  # the caller's acct
    media: list[str]
    offer: str
    ice_servers: list[dict[str, Any]]
    relay_only: bool


@dataclass
class ActiveCall:
    """One call of the client: its peer connection, what it received, how it ended."""

    client: CallClient
    role: str
    video: bool
    relay_only: bool
    call: str | None = None
    pc: RTCPeerConnection | None = None
    sent: list[Any] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    accepted_at: float | None = None
    connected_at: float | None = None
    first_video_at: float | None = None
    end_reason: str | None = None
    final: CallReport | None = None
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)
    _turn_server: tuple[str, int] | None = None

    def start_connection(self, ice_servers: list[dict[str, Any]], relay_only: bool) -> None:
        """Make the peer connection with the node's ICE servers and add this side's tracks."""
        from aiortc import RTCPeerConnection

        config = ice_configuration(ice_servers, relay_only or self.relay_only)
        self.relay_only = relay_only or self.relay_only
        for server in config.iceServers or []:
            turn = [u for u in server.urls if u.startswith("turn:")]
            if turn and self._turn_server is None:
                host, port = turn[0][5:].split("?")[0].rsplit(":", 1)
                self._turn_server = (host, int(port))
        pc = RTCPeerConnection(configuration=config)
        self.pc = pc
        for track in self.client.media.tracks(self.video):
            self.sent.append(track)
            pc.addTrack(track)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.create_task(self._count(track)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
                self._connected.set()
            elif pc.connectionState == "failed" and self.pc is pc:
                await self.client.send({"type": "call.hangup", "call": self.call})
                await self.finish("failed")

    async def _count(self, track: MediaStreamTrack) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                self.received[track.kind] = self.received.get(track.kind, 0) + 1
                if track.kind == "video" and self.first_video_at is None:
                    self.first_video_at = time.monotonic()

    async def set_remote(self, kind: str, sdp: str) -> None:
        """Apply the other side's offer or answer, then the candidates that came first."""
        from aiortc import RTCSessionDescription

        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        waiting, self._pending = self._pending, []
        await self.add_candidates(waiting)

    async def answer_offer(self, sdp: str) -> str:
        """Apply the other side's offer; this side's answer (every candidate is in it)."""
        assert self.pc is not None
        await self.set_remote("offer", sdp)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer: str = self.pc.localDescription.sdp
        return answer

    async def add_candidates(self, candidates: list[dict[str, Any]]) -> None:
        """Add trickled candidates (a browser's), as ``RTCIceCandidateInit`` dictionaries."""
        from aiortc.sdp import candidate_from_sdp

        if self.pc is None or self.pc.remoteDescription is None:
            self._pending.extend(candidates)
            return
        for item in candidates:
            text = str(item.get("candidate") or "")
            if not text:
                continue  # end of candidates: aiortc needs no word of it
            try:
                candidate = candidate_from_sdp(text.removeprefix("candidate:"))
                candidate.sdpMid = item.get("sdpMid")
                candidate.sdpMLineIndex = item.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
            except (ValueError, AssertionError, IndexError) as exc:
                log.info("a candidate was refused (%s): %s", exc, text)

    async def wait_connected(self, timeout_s: float = 60.0) -> bool:
        """Wait until ICE connects (True) or the call ends (False)."""
        connected = asyncio.ensure_future(self._connected.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({connected, ended}, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            connected.cancel()
            ended.cancel()
        return self._connected.is_set() and not self._ended.is_set()

    async def wait_media(self, frames: int = 10, timeout_s: float = 20.0) -> bool:
        """Wait until ``frames`` frames of each kind sent to us arrived; False on timeout."""
        kinds = ("audio", "video") if self.video else ("audio",)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._ended.is_set():
            if all(self.received.get(kind, 0) >= frames for kind in kinds):
                return True
            await asyncio.sleep(0.05)
        return all(self.received.get(kind, 0) >= frames for kind in kinds)

    async def wait_ended(self, timeout_s: float | None = None) -> str | None:
        """Wait until the call ends; its reason (None if still going after ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), timeout_s)
        return self.end_reason

    async def report(self) -> CallReport:
        """How the call goes now (or went, once it ended)."""
        if self.final is not None:
            return self.final
        report = CallReport(
            call=self.call, role=self.role, connected=self.connected_at is not None,
            end_reason=self.end_reason,
            audio_frames_received=self.received.get("audio", 0),
            video_frames_received=self.received.get("video", 0),
            audio_frames_sent=sum(t.frames_sent for t in self.sent if t.kind == "audio"),
            video_frames_sent=sum(t.frames_sent for t in self.sent if t.kind == "video"),
            turn_server=self._turn_server,
        )  # fmt: skip
        if self.accepted_at is not None:
            if self.connected_at is not None:
                report.accept_to_connected_s = self.connected_at - self.accepted_at
            if self.first_video_at is not None:
                report.accept_to_first_video_s = self.first_video_at - self.accepted_at
        if self.pc is not None and report.connected:
            self._describe_path(report)
            report.rtt_ms = await self._rtt_ms()
            report.verification_code = self._code()
        return report

    def _ice(self) -> Any:
        assert self.pc is not None
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.transport is not None:
                return transceiver.sender.transport
        return None

    def _describe_path(self, report: CallReport) -> None:
        dtls = self._ice()
        if dtls is None:
            return
        # aiortc's getStats has no candidate-pair entries and aioice no public getter for
        # the nominated pair: read it from the connection (one component with bundle).
        connection = getattr(dtls.transport, "_connection", None)
        nominated = getattr(connection, "_nominated", {}) or {}
        pair = nominated.get(1)
        if pair is None:
            return
        report.local_candidate = pair.local_candidate.type
        report.remote_candidate = pair.remote_candidate.type
        report.local_address = (pair.local_candidate.host, pair.local_candidate.port)

    async def _rtt_ms(self) -> float | None:
        """The round-trip time the other side's RTCP receiver reports tell (None before any)."""
        assert self.pc is not None
        stats = await self.pc.getStats()
        times = [
            s.roundTripTime for s in stats.values()
            if s.type == "remote-inbound-rtp" and getattr(s, "roundTripTime", None) is not None
        ]  # fmt: skip
        return 1000 * min(times) if times else None

    def _code(self) -> str | None:
        """The verification code from this side's certificate and the other side's."""
        dtls = self._ice()
        assert self.pc is not None
        remote_sdp = self.pc.remoteDescription.sdp if self.pc.remoteDescription else ""
        if dtls is None or dtls.state != "connected":
            return None
        # Both in SHA-256, as browsers report them (getStats' certificate entries). The
        # remote one is the SDP's: aiortc ends the DTLS handshake when the certificate
        # presented does not match it, so once connected it is the one negotiated.
        local = next((f.value for f in dtls.getLocalParameters().fingerprints
                      if f.algorithm == "sha-256"), None)  # fmt: skip
        remote = next((v for a, v in _FINGERPRINT.findall(remote_sdp)
                       if a.lower() == "sha-256"), None)  # fmt: skip
        if local is None or remote is None:
            return None
        return verification_code([f"sha-256 {local}", f"sha-256 {remote}"])

    async def hangup(self) -> CallReport:
        """Hang up (cancel, before an answer); the final report."""
        if self.end_reason is None and self.call is not None:
            await self.client.send({"type": "call.hangup", "call": self.call})
        await self.finish("ended" if self.connected_at is not None else "cancelled")
        assert self.final is not None
        return self.final

    async def finish(self, reason: str) -> None:
        """End the call here once: keep the final report, close the connection."""
        if self._ended.is_set():
            return
        self.end_reason = reason
        self.final = await self.report()
        self._ended.set()
        self.client.forget(self)
        for track in self.sent:
            track.stop()
        if self.pc is not None:
            # Shielded: a second close() awaits the first one's future, and cancelling
            # it (the reader task stopping) would leave aiortc setting a cancelled future.
            await asyncio.shield(self.pc.close())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the client --------------------------------------------------------------------------


class CallClient:
    """A signed-in tab of one person on one node, for calls only."""

    def __init__(self, media: MediaSource | None = None, *, auto_answer: bool = False,
                 answer_video: bool = True, relay: bool = False) -> None:  # fmt: skip
        """``auto_answer``: answer every incoming call at once (with video when asked and
        ``answer_video``; relay only when ``relay``)."""
        self.media = media or MediaSource()
        self.auto_answer = auto_answer
        self.answer_video = answer_video
        self.relay = relay
        self.base_url = ""
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue()
        self.answered: asyncio.Queue[ActiveCall] = asyncio.Queue()
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: dict[str, ActiveCall] = {}
        self._placing: dict[str, tuple[asyncio.Future[dict[str, Any]], ActiveCall]] = {}
        self._refs = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def connect(
        self, base_url: str, *, session_token: str | None = None,
        username: str | None = None, password: str | None = None,
    ) -> None:
        """Sign in (a session token, or a username and password) and open the live socket.

        Raises:
            CallClientError: the node is not reachable, or refused the sign-in.
        """
        self.base_url = base_url.rstrip("/")
        host = urlsplit(self.base_url).hostname or ""
        # unsafe: keep cookies for an IP-address host (nodes on loopback).
        jar = aiohttp.CookieJar(unsafe=True)
        self._session = aiohttp.ClientSession(cookie_jar=jar)
        try:
            if session_token is not None:
                jar.update_cookies({SESSION_COOKIE: session_token}, URL(self.base_url))
            elif username is not None and password is not None:
                await self._login(username, password)
            else:
                raise CallClientError("a session token, or a username and password, is needed")
            self._socket = await self._session.ws_connect(f"{self.base_url}/live")
        except aiohttp.WSServerHandshakeError as exc:
            await self.close()
            if exc.status == 401:
                raise CallClientError(f"{host}: not signed in (session refused)") from None
            raise CallClientError(f"{host}: the live socket was refused ({exc.status})") from None
        except (aiohttp.ClientError, OSError) as exc:
            await self.close()
            raise CallClientError(
                f"the node at {self.base_url} is not reachable (is it running?): {exc}"
            ) from None
        except BaseException:
            await self.close()
            raise
        # The node counts the tab as open once it has sent its first frames: wait for one,
        # or a call placed at once could find the callee "unavailable".
        with contextlib.suppress(TimeoutError):
            first = await asyncio.wait_for(self._socket.receive(), 5.0)
            if first.type == aiohttp.WSMsgType.TEXT:
                await self._dispatch(first.json())
        self._reader = asyncio.create_task(self._read(), name="call-client-reader")

    async def _login(self, username: str, password: str) -> None:
        assert self._session is not None
        async with self._session.get(f"{self.base_url}/login") as response:
            found = _CSRF.search(await response.text())
        if found is None:
            raise CallClientError(f"{self.base_url}/login has no login form")
        form = {"username": username, "password": password, "csrf_token": found[1]}
        async with self._session.post(f"{self.base_url}/login", data=form,
                                      allow_redirects=False) as response:  # fmt: skip
            if response.status != 303:
                raise CallClientError(f"login as {username} refused ({response.status})")

    async def close(self) -> None:
        """Hang up every call, close the socket and the HTTP session."""
        for active in list(self._calls.values()):
            with contextlib.suppress(Exception):
                await active.hangup()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame to the node (dropped once the socket is closed)."""
        if self._socket is not None and not self._socket.closed:
            await self._socket.send_json(frame)

    def forget(self, active: ActiveCall) -> None:
        """Stop routing frames to a call that ended."""
        if active.call is not None and self._calls.get(active.call) is active:
            del self._calls[active.call]

    # --- placing and answering -------------------------------------------------------------

    async def place(self, handle: str, *, video: bool = False, relay: bool = False,
                    timeout_s: float = 10.0) -> ActiveCall:  # fmt: skip
        """Call ``handle``; the call once the offer went (it rings, or ends at once).

        ``relay``: relay only, whatever the node's setting (which also forces it).

        Raises:
            CallClientError: the node refused the call (unknown handle, rate limit…).
        """
        ref = f"aiortc-{next(self._refs)}-{secrets.token_hex(3)}"
        placed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        active = ActiveCall(self, "caller", video, relay)
        self._placing[ref] = (placed, active)
        media = ["audio", "video"] if video else ["audio"]
        try:
            await self.send({"type": "call.place", "ref": ref, "to": handle, "media": media})
            frame = await asyncio.wait_for(placed, timeout_s)
        except TimeoutError:
            raise CallClientError("the node did not answer call.place in time") from None
        finally:
            self._placing.pop(ref, None)
        if frame["type"] == "call.error" or active.call is None:
            raise CallClientError(str(frame.get("error") or "the call was refused"))
        if active.end_reason is not None:
            return active  # ended at once (unavailable, busy)
        try:
            active.start_connection(frame.get("iceServers") or [], bool(frame.get("relayOnly")))
        except CallClientError:
            await active.hangup()  # the node placed it: cancel it there too
            raise
        assert active.pc is not None
        # Returns once every candidate is gathered: they are all in this SDP.
        await active.pc.setLocalDescription(await active.pc.createOffer())
        if active.end_reason is None:
            await self.send({"type": "call.offer", "call": active.call,
                             "offer": active.pc.localDescription.sdp})  # fmt: skip
        return active

    async def answer(self, incoming: Incoming, *, video: bool = True,
                     relay: bool = False) -> ActiveCall:  # fmt: skip
        """Take an incoming call (with video if it is a video call and ``video``)."""
        active = ActiveCall(self, "callee", video and "video" in incoming.media, relay,
                            call=incoming.call, accepted_at=time.monotonic())  # fmt: skip
        try:
            active.start_connection(incoming.ice_servers, incoming.relay_only)
        except CallClientError:
            await self.decline(incoming)  # it would ring on until the timeout
            raise
        self._calls[incoming.call] = active
        answer = await active.answer_offer(incoming.offer)
        await self.send({"type": "call.accept", "call": incoming.call, "answer": answer})
        return active

    async def decline(self, incoming: Incoming) -> None:
        """Decline an incoming call."""
        await self.send({"type": "call.decline", "call": incoming.call})

    # --- frames from the node --------------------------------------------------------------

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                await self._dispatch(message.json())
            except Exception:
                log.exception("call frame %s", message.data[:200])
        log.info("live socket closed (%s)", self._socket.close_code)
        for ending in list(self._calls.values()):
            await ending.finish("failed")

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if not isinstance(kind, str) or not kind.startswith("call."):
            return
        ref, call = frame.get("ref"), frame.get("call")
        if kind in ("call.placed", "call.error") and ref in self._placing:
            placed, placing = self._placing[ref]
            if kind == "call.placed" and isinstance(call, str):
                # Known at once: the call's end may be the very next frame.
                placing.call = call
                self._calls[call] = placing
            if not placed.done():
                placed.set_result(frame)
            return
        active = self._calls.get(call) if isinstance(call, str) else None
        if kind == "call.incoming":
            await self._incoming(frame)
        elif active is None:
            return
        elif kind == "call.accepted":
            active.accepted_at = time.monotonic()
            await active.set_remote("answer", frame["answer"])
        elif kind == "call.signal" and "candidates" in frame:
            await active.add_candidates(list(frame["candidates"]))
        elif kind == "call.signal" and frame.get("sdpType") == "offer":
            # The other side renegotiates (camera on, a screen shared): answer it.
            answer = await active.answer_offer(frame["sdp"])
            await self.send({"type": "call.signal", "call": active.call, "sdpType": "answer",
                             "sdp": answer})  # fmt: skip
        elif kind == "call.ended":
            await active.finish(str(frame.get("reason") or "ended"))
        elif kind == "call.error" and active.pc is None:
            await active.finish("failed")

    async def _incoming(self, frame: dict[str, Any]) -> None:
        sender = frame.get("from") or {}
        incoming = Incoming(
            call=str(frame["call"]), caller=str(sender.get("acct", "")),
            media=list(frame.get("media") or ["audio"]), offer=str(frame["offer"]),
            ice_servers=list(frame.get("iceServers") or []),
            relay_only=bool(frame.get("relayOnly")),
        )  # fmt: skip
        if not self.auto_answer:
            await self.incoming.put(incoming)
            return
        # Answered in a task: the reader must go on reading while aiortc gathers.
        task = asyncio.create_task(self._auto_answer(incoming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_answer(self, incoming: Incoming) -> None:
        try:
            active = await self.answer(incoming, video=self.answer_video, relay=self.relay)
        except CallClientError as exc:
            log.warning("call %s from @%s declined: %s", incoming.call, incoming.caller, exc)
            return
        await self.answered.put(active)
