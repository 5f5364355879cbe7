"""The call relay: a STUN and TURN server (RFC 8489, RFC 8656) in the node's event loop.

Browsers behind NATs that cannot reach each other send their call's media through a relay.
This one answers STUN Binding requests to anyone, and gives TURN allocations (UDP relayed
addresses) only to holders of short-lived credentials the node issues
(``xnode.calls.turn_credentials``, the "TURN REST API" scheme coturn also understands). It
listens on one port number for UDP and for TCP (STUN messages and ChannelData framed on the
stream, ChannelData padded to 4 bytes). Each allocation's relayed address is its own UDP
socket and asyncio endpoint; the allocation object is that endpoint's protocol.

It is never an open relay: no allocation without valid credentials; nothing goes from a
relayed address to a peer, or from a peer to the client, without a live permission for the
peer's IP; peers on private, loopback, link-local, multicast, reserved or unspecified
addresses (or the relay's own) are refused unless ``allow_private_addresses``; allocations
per user and in all are capped, each allocation has a bandwidth budget (token bucket), and
every table is bounded (nonces are stateless, permissions and channels are capped per
allocation, expired state is swept every ``sweep_interval_s``).

The forwarding path (ChannelData, Send and Data indications) reads headers with ``struct``
and never builds a STUN message; requests are decoded with aioice's STUN codec.

Wiring into ``xnode serve`` (still to do, in the serving process's ``cleanup_ctx``)::

    relay = TurnServer(RelaySettings(secret=..., realm=settings.domain, port=3478,
                                     advertised_address=public_ip_or_None))
    await relay.start()
    yield
    await relay.close()

The node gives a signed-in caller ``issue_credentials(secret, str(user_id), ttl_s, now)``
and the ICE servers ``turn:HOST:3478?transport=udp`` and ``turn:HOST:3478?transport=tcp``
with that username and password; the admin page shows ``relay.counters()``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, cast

from aioice import stun

from xnode.calls.turn_credentials import parse_username, turn_password
from xnode.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

SOFTWARE = "xnode"
UDP_TRANSPORT = 17 << 24  # REQUESTED-TRANSPORT carries the protocol number in its first byte
CHANNEL_MIN = 0x4000
CHANNEL_MAX = 0x4FFF
COOKIE = stun.COOKIE

_CHANNEL_HEADER = struct.Struct("!HH")
_STUN_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")
_XOR_PEER_IPV4 = struct.Struct("!HHBBHI")
_SEND_INDICATION = stun.Method.SEND | stun.Class.INDICATION
_DATA_INDICATION = stun.Method.DATA | stun.Class.INDICATION
_ATTR_XOR_PEER_ADDRESS = 0x0012
_ATTR_DATA = 0x0013
_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017
_ATTR_MESSAGE_INTEGRITY = 0x0008
_ATTR_UNKNOWN_ATTRIBUTES = 0x000A
# Attributes we act on or may ignore; any other comprehension-required one (type below
# 0x8000) gets a 420, as RFC 8489 asks: aioice's parser drops unknown attributes silently,
# and a client asking for DONT-FRAGMENT, EVEN-PORT or a reservation must hear we do not
# support them rather than get an allocation without them.
_KNOWN_ATTRIBUTES = frozenset(stun.ATTRIBUTES_BY_TYPE) | {_ATTR_REQUESTED_ADDRESS_FAMILY}

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    508: "Insufficient Capacity",
}
# Most bytes queued for a TCP client before relayed data to it is dropped: media is
# useless late, and a client that stops reading must not grow the node's memory.
_TCP_WRITE_LIMIT = 256 * 1024
_PORT_ATTEMPTS = 32
_LISTENER_BUFFER_BYTES = 4 * 1024 * 1024

Address = tuple[Any, ...]


@dataclass(frozen=True)
class RelaySettings:
    """How the relay listens, whom it serves and how much it gives each allocation."""

    secret: bytes
    realm: str = "xnode"
    host: str = "0.0.0.0"
    port: int = 3478
    tcp: bool = True
    # Relayed sockets bind here (default: ``host``); IPv4 only.
    relay_host: str | None = None
    # The address put in XOR-RELAYED-ADDRESS when the relayed sockets' own address is not
    # the one peers reach (a 1:1 NAT, or a wildcard bind): the node's public IPv4.
    advertised_address: str | None = None
    # Relayed ports come from this inclusive range when set (for firewalls), else ephemeral.
    relay_port_range: tuple[int, int] | None = None
    allow_private_addresses: bool = False
    default_lifetime_s: int = 600
    max_lifetime_s: int = 3600
    permission_lifetime_s: int = 300
    channel_lifetime_s: int = 600
    nonce_lifetime_s: int = 600
    max_allocations: int = 1000
    max_allocations_per_user: int = 10
    max_permissions_per_allocation: int = 64
    max_channels_per_allocation: int = 64
    # Payload bytes per second each allocation may relay (both directions together):
    # 1 MB/s is 8 Mbit/s, an HD video call each way with room to spare.
    bandwidth_bytes_per_s: int = 1_000_000
    bandwidth_burst_bytes: int = 256 * 1024
    max_tcp_connections: int = 1000
    # TCP connections that hold no allocation are closed after this long.
    tcp_idle_s: float = 30.0
    sweep_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the relay needs a non-empty secret")
        if not 0 <= self.port <= 65535:
            raise ValueError("the relay port must be within 0-65535")
        if self.relay_port_range is not None:
            low, high = self.relay_port_range
            if not 1024 <= low <= high <= 65535:
                raise ValueError("relay_port_range must be within 1024-65535, low <= high")
        if not 0 < self.default_lifetime_s <= self.max_lifetime_s:
            raise ValueError("default_lifetime_s must be positive and at most max_lifetime_s")
        for name in ("bandwidth_bytes_per_s", "bandwidth_burst_bytes", "max_allocations"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.bandwidth_burst_bytes < 65535:
            # A burst smaller than the largest datagram would drop that datagram forever.
            raise ValueError("bandwidth_burst_bytes must be at least 65535")


@dataclass(frozen=True)
class RelayCounters:
    """A snapshot of the relay's counters, for the admin page."""

    allocations_current: int
    allocations_total: int
    packets_to_peers: int
    bytes_to_peers: int
    packets_to_clients: int
    bytes_to_clients: int
    # Requests answered with an error, by reason (401 challenges before the first
    # authenticated request are normal and not counted).
    refusals: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # Datagrams not relayed, by reason.
    drops: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))


class _Link(Protocol):
    """Where a client's messages came from and how to answer it (UDP 5-tuple or TCP)."""

    @property
    def key(self) -> object: ...

    @property
    def client_address(self) -> Address: ...

    def send(self, data: bytes) -> None: ...


class _UdpLink:
    """A client of the UDP listener."""

    __slots__ = ("client_address", "transport")

    def __init__(self, transport: asyncio.DatagramTransport, client_address: Address) -> None:
        self.transport = transport
        self.client_address = client_address

    @property
    def key(self) -> object:
        return self.client_address

    def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.client_address)


@dataclass(frozen=True)
class _Auth:
    username: str
    user: str
    key: bytes


class _Allocation(asyncio.DatagramProtocol):
    """One TURN allocation: the protocol of its relayed socket, its permissions and channels."""

    def __init__(self, server: TurnServer, link: _Link, auth: _Auth, expires_at: float) -> None:
        self.server = server
        self.link = link
        self.to_client = link.send
        self.username = auth.username
        self.user = auth.user
        self.key = auth.key
        self.expires_at = expires_at
        self.permissions: dict[str, float] = {}
        # channel number -> (peer address, expiry); peer address -> channel number
        self.channels: dict[int, tuple[Address, float]] = {}
        self.peer_channels: dict[Address, int] = {}
        self.tokens = float(server.settings.bandwidth_burst_bytes)
        self.refilled_at = server.now()
        self.transport: asyncio.DatagramTransport | None = None
        self.relayed_address: Address = ("0.0.0.0", 0)
        self.allocate_transaction = b""
        self.allocate_response = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not declared a DatagramTransport subclass on Python 3.11, though it is one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def spend(self, size: int, now: float) -> bool:
        """Take ``size`` bytes from the bandwidth budget; False (and nothing taken) if short."""
        settings = self.server.settings
        tokens = self.tokens + (now - self.refilled_at) * settings.bandwidth_bytes_per_s
        if tokens > settings.bandwidth_burst_bytes:
            tokens = settings.bandwidth_burst_bytes
        self.refilled_at = now
        if tokens < size:
            self.tokens = tokens
            return False
        self.tokens = tokens - size
        return True

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """A peer sent to the relayed address: pass it on to the client if permitted."""
        server = self.server
        now = server.now()
        if self.permissions.get(addr[0], 0.0) < now:
            server.drops["no_permission"] += 1
            return
        size = len(data)
        if not self.spend(size, now):
            server.drops["bandwidth"] += 1
            return
        channel = self.peer_channels.get(addr)
        if channel is not None and self.channels[channel][1] >= now:
            self.to_client(_CHANNEL_HEADER.pack(channel, size) + data)
        else:
            self.to_client(_data_indication(addr, data))
        tally = server.tally
        tally.packets_to_clients += 1
        tally.bytes_to_clients += size

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from peers (port unreachable) are normal on a relay; media is lossy.
        logger.debug("relayed socket %s: %s", self.relayed_address, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._forget(self)


class _Tally:
    """The fast path's counters (plain attributes: cheaper than a dict per packet)."""

    __slots__ = (
        "allocations_total",
        "bytes_to_clients",
        "bytes_to_peers",
        "packets_to_clients",
        "packets_to_peers",
    )

    def __init__(self) -> None:
        self.allocations_total = 0
        self.bytes_to_clients = 0
        self.bytes_to_peers = 0
        self.packets_to_clients = 0
        self.packets_to_peers = 0


class TurnServer:
    """The STUN/TURN relay: ``await start()``, ``await close()``, ``counters()``."""

    def __init__(self, settings: RelaySettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.now = (clock or SystemClock()).now
        self.tally = _Tally()
        self.refusals: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self._allocations: dict[object, _Allocation] = {}
        self._pending: set[object] = set()
        self._per_user: Counter[str] = Counter()
        self._nonce_key = os.urandom(32)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_connections: set[_TcpConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._relay_host = settings.relay_host or settings.host
        self._advertised: str | None = settings.advertised_address
        self._own_addresses: frozenset[str] = frozenset()
        # Relayed address -> its allocation: the one kind of peer on the relay's own address
        # allowed (two people who both relay only talk relay to relay).
        self._relayed: dict[Address, _Allocation] = {}
        self._lab = settings.allow_private_addresses  # tests and labs: loopback peers too
        self._handlers: dict[int, Callable[[stun.Message, bytes, _Link, _Auth], None]] = {
            stun.Method.REFRESH: self._refresh,
            stun.Method.CREATE_PERMISSION: self._create_permission,
            stun.Method.CHANNEL_BIND: self._channel_bind,
        }

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP listener (and the TCP one on the same port number) and start sweeping."""
        settings = self.settings
        # With port 0 the UDP port is whatever the kernel picks, and the TCP listener wants
        # the same number, which another socket may already hold: pick again a few times.
        attempts = 8 if settings.port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind_listeners()
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
        if self._advertised is None:
            self._advertised = _reachable_address(self._relay_host)
        self._own_addresses = frozenset({self._advertised, self.udp_address[0]})
        self._sweeper = asyncio.create_task(self._sweep_forever())
        logger.info("call relay listening on %s (udp%s)", self.udp_address,
                    "+tcp" if self._tcp else "")

    async def _bind_listeners(self) -> None:
        """Bind the UDP listener and, when enabled, the TCP one on the same port number."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpListener(self), local_addr=(settings.host, settings.port)
        )
        sock = self._udp.get_extra_info("socket")
        if sock is not None:
            # Media arrives in bursts (a video key frame is dozens of datagrams at once).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _LISTENER_BUFFER_BYTES)
        if settings.tcp:
            try:
                self._tcp = await loop.create_server(
                    lambda: _TcpConnection(self),
                    host=settings.host,
                    port=self.udp_address[1],
                    reuse_address=True,
                )
            except BaseException:
                self._udp.close()
                self._udp = None
                raise

    async def close(self) -> None:
        """Stop listening, drop every allocation and close every socket."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        for allocation in list(self._allocations.values()):
            self._delete(allocation)
        if self._udp is not None:
            self._udp.close()
        for connection in list(self._tcp_connections):
            connection.transport.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)

    @property
    def udp_address(self) -> tuple[str, int]:
        """The address the UDP listener is bound to."""
        assert self._udp is not None, "start() the relay first"
        host, port = self._udp.get_extra_info("sockname")[:2]
        return host, port

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The address the TCP listener is bound to, or None without TCP."""
        if self._tcp is None:
            return None
        host, port = self._tcp.sockets[0].getsockname()[:2]
        return host, port

    def counters(self) -> RelayCounters:
        """A snapshot of the counters."""
        tally = self.tally
        return RelayCounters(
            allocations_current=len(self._allocations),
            allocations_total=tally.allocations_total,
            packets_to_peers=tally.packets_to_peers,
            bytes_to_peers=tally.bytes_to_peers,
            packets_to_clients=tally.packets_to_clients,
            bytes_to_clients=tally.bytes_to_clients,
            refusals=MappingProxyType(dict(self.refusals)),
            drops=MappingProxyType(dict(self.drops)),
        )

    def sweep(self) -> None:
        """Delete expired allocations, permissions and channels; close idle TCP connections."""
        now = self.now()
        for allocation in list(self._allocations.values()):
            if allocation.expires_at <= now:
                logger.debug("allocation %s expired", allocation.relayed_address)
                self._delete(allocation)
                continue
            for ip, expires_at in list(allocation.permissions.items()):
                if expires_at < now:
                    del allocation.permissions[ip]
            for channel, (peer, expires_at) in list(allocation.channels.items()):
                if expires_at < now:
                    del allocation.channels[channel]
                    del allocation.peer_channels[peer]
        for connection in list(self._tcp_connections):
            if connection.idle_since is not None and now - connection.idle_since > (
                self.settings.tcp_idle_s
            ):
                connection.transport.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                self.sweep()
            except Exception:
                logger.exception("the call relay's sweep failed")

    # -- the forwarding path: client to peer ----------------------------------------------

    def relay_channel_data(self, allocation: _Allocation | None, data: bytes) -> None:
        """ChannelData from a client: send its payload to the channel's peer."""
        if allocation is None:
            self.drops["no_allocation"] += 1
            return
        channel, size = _CHANNEL_HEADER.unpack_from(data)
        bound = allocation.channels.get(channel)
        if bound is None or len(data) < 4 + size:
            self.drops["bad_channel"] += 1
            return
        peer, channel_expires_at = bound
        now = self.now()
        if channel_expires_at < now or allocation.permissions.get(peer[0], 0.0) < now:
            self.drops["no_permission"] += 1
            return
        if peer[0] in self._own_addresses and peer not in self._relayed and not self._lab:
            self.drops["forbidden_peer"] += 1  # the allocation it named has gone
            return
        if not allocation.spend(size, now):
            self.drops["bandwidth"] += 1
            return
        assert allocation.transport is not None
        allocation.transport.sendto(data[4 : 4 + size], peer)
        tally = self.tally
        tally.packets_to_peers += 1
        tally.bytes_to_peers += size

    def _relay_send_indication(self, allocation: _Allocation | None, data: bytes) -> None:
        """A Send indication from a client: send its DATA to its XOR-PEER-ADDRESS."""
        if allocation is None:
            self.drops["no_allocation"] += 1
            return
        peer = payload = None
        for kind, value in _raw_attributes(data):
            if kind == _ATTR_XOR_PEER_ADDRESS:
                peer = _unxor_ipv4(value)
            elif kind == _ATTR_DATA:
                payload = value
        if peer is None or payload is None:
            self.drops["malformed"] += 1
            return
        now = self.now()
        if allocation.permissions.get(peer[0], 0.0) < now:
            self.drops["no_permission"] += 1
            return
        if peer[0] in self._own_addresses and peer not in self._relayed and not self._lab:
            # A permission for the relay's own address covers its allocations only.
            self.drops["forbidden_peer"] += 1
            return
        if not allocation.spend(len(payload), now):
            self.drops["bandwidth"] += 1
            return
        assert allocation.transport is not None
        allocation.transport.sendto(payload, peer)
        tally = self.tally
        tally.packets_to_peers += 1
        tally.bytes_to_peers += len(payload)

    # -- STUN requests ------------------------------------------------------------------

    def handle_stun(self, data: bytes, link: _Link) -> None:
        """A STUN message from a client (over UDP or a TCP stream)."""
        if len(data) >= 20 and (data[0] << 8 | data[1]) == _SEND_INDICATION:
            self._relay_send_indication(self._allocations.get(link.key), data)
            return
        try:
            message = stun.parse_message(data)
        except (ValueError, UnicodeDecodeError, struct.error):
            self.drops["malformed"] += 1
            return
        if message.message_class != stun.Class.REQUEST:
            return  # indications other than Send, and stray responses, are ignored
        if message.message_method == stun.Method.BINDING:
            self._reply(link, message, None, {"XOR-MAPPED-ADDRESS": link.client_address[:2]})
            return
        auth = self._authenticate(message, link)
        if auth is None:
            return
        unknown = [t for t, _ in _raw_attributes(data, stop_at_integrity=True)
                   if t < 0x8000 and t not in _KNOWN_ATTRIBUTES]
        if unknown:
            extra = struct.pack(f"!HH{len(unknown)}H", _ATTR_UNKNOWN_ATTRIBUTES,
                                2 * len(unknown), *unknown)
            extra += bytes(-len(extra) % 4)
            self._refuse(link, message, auth.key, 420, "unknown_attribute", extra=extra)
            return
        if message.message_method == stun.Method.ALLOCATE:
            self._allocate(message, data, link, auth)
            return
        allocation = self._allocations.get(link.key)
        if allocation is None:
            self._refuse(link, message, auth.key, 437, "allocation_mismatch")
        elif allocation.username != auth.username:
            self._refuse(link, message, auth.key, 441, "wrong_user")
        elif (handler := self._handlers.get(message.message_method)) is not None:
            handler(message, data, link, auth)
        else:
            self._refuse(link, message, auth.key, 400, "bad_request")

    def _authenticate(self, message: stun.Message, link: _Link) -> _Auth | None:
        """Check the long-term credential (RFC 8489 §9.2); answer and return None if wrong."""
        attributes = message.attributes
        if "MESSAGE-INTEGRITY" not in attributes:
            self._challenge(link, message, 401)
            return None
        username = attributes.get("USERNAME")
        realm = attributes.get("REALM")
        nonce = attributes.get("NONCE")
        if not username or not realm or not nonce:
            self._refuse(link, message, None, 400, "bad_request")
            return None
        if not self._nonce_is_fresh(nonce):
            self.refusals["stale_nonce"] += 1
            self._challenge(link, message, 438)
            return None
        parsed = parse_username(username)
        if parsed is None or realm != self.settings.realm:
            self.refusals["wrong_credentials"] += 1
            self._challenge(link, message, 401)
            return None
        expires_at, user = parsed
        if expires_at < self.now():
            self.refusals["expired_credentials"] += 1
            self._challenge(link, message, 401)
            return None
        password = turn_password(self.settings.secret, username)
        key = hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()
        if not message.check_message_integrity(key):
            self.refusals["wrong_credentials"] += 1
            self._challenge(link, message, 401)
            return None
        return _Auth(username=username, user=user, key=key)

    def _allocate(self, message: stun.Message, data: bytes, link: _Link, auth: _Auth) -> None:
        """Allocate (RFC 8656 §7.2): a relayed UDP address for this 5-tuple."""
        settings = self.settings
        existing = self._allocations.get(link.key)
        if existing is not None:
            if existing.allocate_transaction == message.transaction_id:
                link.send(existing.allocate_response)  # a retransmission: same answer
            else:
                self._refuse(link, message, auth.key, 437, "allocation_mismatch")
            return
        if link.key in self._pending:
            return  # a retransmission while the relayed socket is being opened
        transport = message.attributes.get("REQUESTED-TRANSPORT")
        if transport is None:
            self._refuse(link, message, auth.key, 400, "bad_request")
            return
        if transport != UDP_TRANSPORT:
            self._refuse(link, message, auth.key, 442, "unsupported_transport")
            return
        for kind, value in _raw_attributes(data, stop_at_integrity=True):
            if kind == _ATTR_REQUESTED_ADDRESS_FAMILY and value[:1] != b"\x01":
                self._refuse(link, message, auth.key, 440, "unsupported_family")
                return
        if self._per_user[auth.user] >= settings.max_allocations_per_user:
            self._refuse(link, message, auth.key, 486, "user_quota")
            return
        if len(self._allocations) + len(self._pending) >= settings.max_allocations:
            self._refuse(link, message, auth.key, 508, "capacity")
            return
        requested = message.attributes.get("LIFETIME", settings.default_lifetime_s)
        lifetime = max(settings.default_lifetime_s, min(requested, settings.max_lifetime_s))
        self._pending.add(link.key)
        self._per_user[auth.user] += 1
        task = asyncio.create_task(self._open_allocation(message, link, auth, lifetime))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_allocation(
        self, message: stun.Message, link: _Link, auth: _Auth, lifetime: int
    ) -> None:
        allocation = _Allocation(self, link, auth, self.now() + lifetime)
        opened = False
        try:
            sock = self._bind_relay_socket()
            if sock is None:
                self._refuse(link, message, auth.key, 508, "no_port")
                return
            try:
                loop = asyncio.get_running_loop()
                await loop.create_datagram_endpoint(lambda: allocation, sock=sock)
            except BaseException:
                sock.close()
                raise
            if getattr(link, "closed", False):
                # The TCP connection went away while the socket was opening.
                assert allocation.transport is not None
                allocation.transport.close()
                return
            opened = True
        finally:
            self._pending.discard(link.key)
            if not opened:
                self._release_user(auth.user)
        port = sock.getsockname()[1]
        allocation.relayed_address = (self._advertised, port)
        self._allocations[link.key] = allocation
        self._relayed[allocation.relayed_address] = allocation
        self.tally.allocations_total += 1
        response = self._reply(link, message, auth.key, {
            "XOR-RELAYED-ADDRESS": allocation.relayed_address,
            "LIFETIME": lifetime,
            "XOR-MAPPED-ADDRESS": link.client_address[:2],
        })
        allocation.allocate_transaction = message.transaction_id
        allocation.allocate_response = response
        logger.debug("allocation %s for %s", allocation.relayed_address, auth.user)

    def _bind_relay_socket(self) -> socket.socket | None:
        """A UDP socket for a relayed address: from the port range if set, else ephemeral."""
        port_range = self.settings.relay_port_range
        candidates: Iterator[int]
        if port_range is None:
            candidates = iter([0])
        else:
            low, high = port_range
            candidates = (random.randint(low, high) for _ in range(_PORT_ATTEMPTS))
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self._relay_host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return sock
        return None

    def _refresh(self, message: stun.Message, data: bytes, link: _Link, auth: _Auth) -> None:
        """Refresh (RFC 8656 §8): a new lifetime, or 0 to delete the allocation."""
        allocation = self._allocations[link.key]
        settings = self.settings
        requested = message.attributes.get("LIFETIME", settings.default_lifetime_s)
        lifetime = min(requested, settings.max_lifetime_s)
        if lifetime == 0:
            self._delete(allocation)
        else:
            allocation.expires_at = self.now() + lifetime
        self._reply(link, message, auth.key, {"LIFETIME": lifetime})

    def _create_permission(
        self, message: stun.Message, data: bytes, link: _Link, auth: _Auth
    ) -> None:
        """CreatePermission (RFC 8656 §10): allow traffic with these peers' IPs."""
        allocation = self._allocations[link.key]
        peers = [stun.unpack_xor_address(value, message.transaction_id)
                 for kind, value in _raw_attributes(data, stop_at_integrity=True)
                 if kind == _ATTR_XOR_PEER_ADDRESS]
        if not peers:
            self._refuse(link, message, auth.key, 400, "bad_request")
            return
        for peer in peers:
            if not self._check_peer(peer, message, link, auth):
                return
        new_ips = {ip for ip, _ in peers if ip not in allocation.permissions}
        limit = self.settings.max_permissions_per_allocation
        if len(allocation.permissions) + len(new_ips) > limit:
            self._refuse(link, message, auth.key, 508, "too_many_permissions")
            return
        expires_at = self.now() + self.settings.permission_lifetime_s
        for ip, _ in peers:
            allocation.permissions[ip] = expires_at
        self._reply(link, message, auth.key, {})

    def _channel_bind(self, message: stun.Message, data: bytes, link: _Link, auth: _Auth) -> None:
        """ChannelBind (RFC 8656 §11): a channel number for a peer, and a permission for it."""
        allocation = self._allocations[link.key]
        settings = self.settings
        channel = message.attributes.get("CHANNEL-NUMBER")
        peer = message.attributes.get("XOR-PEER-ADDRESS")
        if channel is None or peer is None or not CHANNEL_MIN <= channel <= CHANNEL_MAX:
            self._refuse(link, message, auth.key, 400, "bad_request")
            return
        if not self._check_peer(peer, message, link, auth):
            return
        bound = allocation.channels.get(channel)
        bound_channel = allocation.peer_channels.get(peer)
        if (bound is not None and bound[0] != peer) or (
            bound_channel is not None and bound_channel != channel
        ):
            self._refuse(link, message, auth.key, 400, "channel_in_use")
            return
        if bound is None and len(allocation.channels) >= settings.max_channels_per_allocation:
            self._refuse(link, message, auth.key, 508, "too_many_channels")
            return
        if peer[0] not in allocation.permissions and (
            len(allocation.permissions) >= settings.max_permissions_per_allocation
        ):
            self._refuse(link, message, auth.key, 508, "too_many_permissions")
            return
        now = self.now()
        allocation.channels[channel] = (peer, now + settings.channel_lifetime_s)
        allocation.peer_channels[peer] = channel
        allocation.permissions[peer[0]] = now + settings.permission_lifetime_s
        self._reply(link, message, auth.key, {})

    def _check_peer(
        self, peer: tuple[str, int], message: stun.Message, link: _Link, auth: _Auth
    ) -> bool:
        """Refuse (and answer) a peer the relay must not send to; True if it may."""
        address = ipaddress.ip_address(peer[0])
        if address.version != 4:
            self._refuse(link, message, auth.key, 443, "peer_family")
            return False
        if self.settings.allow_private_addresses:
            return True
        if peer[0] in self._own_addresses:
            # The relay's own address: only another live allocation (both sides relay only);
            # never another port on this machine.
            if (peer[0], peer[1]) in self._relayed:
                return True
            self._refuse(link, message, auth.key, 403, "forbidden_peer")
            return False
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
        ):
            self._refuse(link, message, auth.key, 403, "forbidden_peer")
            return False
        return True

    def _delete(self, allocation: _Allocation) -> None:
        """Give up an allocation now: close its relayed socket and forget it."""
        self._forget(allocation)
        if allocation.transport is not None:
            allocation.transport.close()

    def _forget(self, allocation: _Allocation) -> None:
        key = allocation.link.key
        if self._relayed.get(allocation.relayed_address) is allocation:
            del self._relayed[allocation.relayed_address]
        if self._allocations.get(key) is allocation:
            del self._allocations[key]
            self._release_user(allocation.user)

    def _release_user(self, user: str) -> None:
        self._per_user[user] -= 1
        if self._per_user[user] <= 0:
            del self._per_user[user]

    def _tcp_connection_lost(self, connection: _TcpConnection) -> None:
        self._tcp_connections.discard(connection)
        allocation = self._allocations.get(connection)
        if allocation is not None:
            self._delete(allocation)

    def _tcp_connection_allowed(self) -> bool:
        if len(self._tcp_connections) >= self.settings.max_tcp_connections:
            self.refusals["tcp_connections"] += 1
            return False
        return True

    # -- answers ------------------------------------------------------------------------

    def _new_nonce(self) -> bytes:
        # Stateless nonces (expiry and its MAC) keep no table a flood of requests could grow.
        expiry = f"{int(self.now()) + self.settings.nonce_lifetime_s:x}"
        mac = hmac.new(self._nonce_key, expiry.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{expiry}.{mac}".encode()

    def _nonce_is_fresh(self, nonce: bytes) -> bool:
        expiry, _, mac = nonce.partition(b".")
        expected = hmac.new(self._nonce_key, expiry, hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(mac, expected.encode()):
            return False
        try:
            return int(expiry, 16) >= self.now()
        except ValueError:
            return False

    def _challenge(self, link: _Link, message: stun.Message, code: int) -> None:
        """401 or 438 with the realm and a fresh nonce, unsigned (RFC 8489 §9.2.4)."""
        self._reply(link, message, None, {
            "ERROR-CODE": (code, _REASONS[code]),
            "REALM": self.settings.realm,
            "NONCE": self._new_nonce(),
        })

    def _refuse(
        self,
        link: _Link,
        message: stun.Message,
        key: bytes | None,
        code: int,
        reason: str,
        extra: bytes = b"",
    ) -> None:
        """An error response, signed when the request was authenticated (aioice, like
        browsers, ignores unsigned errors to authenticated requests), and counted."""
        self.refusals[reason] += 1
        self._reply(link, message, key, {"ERROR-CODE": (code, _REASONS[code])}, extra)

    def _reply(
        self,
        link: _Link,
        request: stun.Message,
        key: bytes | None,
        attributes: dict[str, Any],
        extra: bytes = b"",
    ) -> bytes:
        """Send a response to ``request`` (an error if ERROR-CODE is given) and return it."""
        error = "ERROR-CODE" in attributes
        response = stun.Message(
            request.message_method,
            stun.Class.ERROR if error else stun.Class.RESPONSE,
            request.transaction_id,
            {**attributes, "SOFTWARE": SOFTWARE},
        )
        data = _sign(bytes(response) + extra, key)
        link.send(data)
        return data


class _UdpListener(asyncio.DatagramProtocol):
    """The UDP port clients talk to."""

    def __init__(self, server: TurnServer) -> None:
        self.server = server
        self.allocations = server._allocations
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not declared a DatagramTransport subclass on Python 3.11, though it is one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) >= 4 and data[0] & 0xC0 == 0x40:
            self.server.relay_channel_data(self.allocations.get(addr), data)
            return
        assert self.transport is not None
        self.server.handle_stun(data, _UdpLink(self.transport, addr))

    def error_received(self, exc: Exception) -> None:
        logger.debug("call relay UDP listener: %s", exc)


class _TcpConnection(asyncio.Protocol):
    """A client on TCP: STUN messages and ChannelData (padded to 4 bytes) on one stream."""

    transport: asyncio.Transport

    def __init__(self, server: TurnServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.closed = False
        self.client_address: Address = ("0.0.0.0", 0)
        self.idle_since: float | None = server.now()

    @property
    def key(self) -> object:
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client_address = transport.get_extra_info("peername")
        if not self.server._tcp_connection_allowed():
            transport.close()
            return
        self.server._tcp_connections.add(self)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        server = self.server
        while len(buffer) >= 4:
            kind = buffer[0] >> 6
            (length,) = struct.unpack_from("!H", buffer, 2)
            if kind == 1:
                total = 4 + length + (-length % 4)
            elif kind == 0:
                total = 20 + length
            else:
                # Neither STUN nor ChannelData: the stream cannot be resynchronised.
                server.drops["malformed"] += 1
                self.transport.close()
                return
            if len(buffer) < total:
                return
            frame = bytes(buffer[:total])
            del buffer[:total]
            allocation = server._allocations.get(self)
            if allocation is not None:
                self.idle_since = None
            if kind == 1:
                server.relay_channel_data(allocation, frame)
            else:
                server.handle_stun(frame, self)

    def send(self, data: bytes) -> None:
        """Write a STUN message or ChannelData to the client, padded to 4 bytes."""
        transport = self.transport
        if transport.get_write_buffer_size() > _TCP_WRITE_LIMIT:
            self.server.drops["tcp_backlog"] += 1
            return
        padding = -len(data) % 4
        transport.write(data + bytes(padding) if padding else data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._tcp_connection_lost(self)


def _raw_attributes(data: bytes, stop_at_integrity: bool = False) -> Iterator[tuple[int, bytes]]:
    """The (type, value) pairs of a STUN message, in order, without decoding them."""
    pos = 20
    end = len(data)
    while pos + 4 <= end:
        kind, length = _ATTR_HEADER.unpack_from(data, pos)
        if stop_at_integrity and kind == _ATTR_MESSAGE_INTEGRITY:
            return
        yield kind, data[pos + 4 : pos + 4 + length]
        pos += 4 + length + (-length % 4)


def _unxor_ipv4(value: bytes) -> Address | None:
    """An XOR-PEER-ADDRESS value holding an IPv4 address and port, or None."""
    if len(value) != 8 or value[1] != 1:
        return None
    port, ip = struct.unpack_from("!HI", value, 2)
    return socket.inet_ntoa((ip ^ COOKIE).to_bytes(4, "big")), port ^ (COOKIE >> 16)


def _data_indication(peer: Address, data: bytes) -> bytes:
    """A Data indication carrying ``data`` from ``peer`` (IPv4), built by hand for speed."""
    ip = int.from_bytes(socket.inet_aton(peer[0]), "big")
    size = len(data)
    padding = -size % 4
    body = (
        _XOR_PEER_IPV4.pack(_ATTR_XOR_PEER_ADDRESS, 8, 0, 1, peer[1] ^ (COOKIE >> 16), ip ^ COOKIE)
        + _ATTR_HEADER.pack(_ATTR_DATA, size)
        + data
        + bytes(padding)
    )
    # Indications are never answered, so their transaction ids need not be unpredictable.
    header = _STUN_HEADER.pack(_DATA_INDICATION, len(body), COOKIE, random.randbytes(12))
    return header + body


def _sign(data: bytes, key: bytes | None) -> bytes:
    """Append MESSAGE-INTEGRITY (with ``key``) and FINGERPRINT to an encoded message."""
    if key is not None:
        integrity = stun.message_integrity(data, key)
        data = stun.set_body_length(data + _ATTR_HEADER.pack(0x0008, 20) + integrity,
                                    len(data) - 20 + 24)
    fingerprint = stun.message_fingerprint(data)
    return stun.set_body_length(data + struct.pack("!HHI", 0x8028, 4, fingerprint),
                                len(data) - 20 + 8)


def _reachable_address(host: str) -> str:
    """The address peers should see for relayed sockets bound to ``host``.

    A wildcard bind has no single address; ask the routing table which local address
    reaches the Internet (connecting a UDP socket sends nothing).
    """
    if host not in ("0.0.0.0", ""):
        return host
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routed like any public address
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
