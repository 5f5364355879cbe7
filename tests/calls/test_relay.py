"""The call relay over real UDP and TCP on loopback, driven by aioice's own TURN client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aioice import stun
from aioice.turn import (
    TurnClientMixin,
    TurnClientTcpProtocol,
    TurnClientUdpProtocol,
    make_integrity_key,
)

from xnode.calls.relay import RelaySettings, TurnServer
from xnode.calls.turn_credentials import TurnCredentials, issue_credentials, parse_username
from xnode.clock import FakeClock

SECRET = b"relay test secret"
REALM = "xnode.test"
QUIET_S = 0.25  # how long "nothing arrives" is watched for
TIMEOUT_S = 5.0


class Inbox(asyncio.DatagramProtocol):
    """A datagram endpoint that queues what it receives (a peer, or a TURN client's app)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait((data, addr[:2]))

    async def next(self) -> tuple[bytes, Any]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT_S)

    async def nothing(self) -> bool:
        """True if nothing arrives within QUIET_S."""
        await asyncio.sleep(QUIET_S)
        return self.queue.empty()


class RecordingUdpClient(TurnClientUdpProtocol):
    """aioice's UDP TURN client, also keeping every Data indication the relay sends it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.indications: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data, addr) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            message = None
        if message is not None and message.message_method == stun.Method.DATA:
            self.indications.put_nowait(
                (message.attributes["DATA"], message.attributes["XOR-PEER-ADDRESS"])
            )
        super().datagram_received(data, addr)


def credentials(user: str = "alice", ttl_s: int = 600, now: float | None = None):
    return issue_credentials(SECRET, user, ttl_s, time.time() if now is None else now)


@pytest.fixture
async def start_relay() -> AsyncIterator[Callable[..., Awaitable[TurnServer]]]:
    """Start relays on 127.0.0.1, port 0; loopback peers are allowed unless overridden."""
    servers: list[TurnServer] = []

    async def start(clock: FakeClock | None = None, **overrides: Any) -> TurnServer:
        values: dict[str, Any] = {
            "secret": SECRET,
            "realm": REALM,
            "host": "127.0.0.1",
            "port": 0,
            "allow_private_addresses": True,
        }
        values.update(overrides)
        server = TurnServer(RelaySettings(**values), clock=clock)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def open_client(start_relay) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Open aioice TURN clients (not yet allocated); deleted again after the test."""
    clients: list[TurnClientMixin] = []

    async def open_(
        server: TurnServer, creds: TurnCredentials, transport: str = "udp"
    ) -> TurnClientMixin:
        loop = asyncio.get_running_loop()
        options = {"username": creds.username, "password": creds.password,
                   "lifetime": 600, "channel_refresh_time": 500}
        client: TurnClientMixin
        if transport == "tcp":
            address = server.tcp_address
            assert address is not None
            _, client = await loop.create_connection(
                lambda: TurnClientTcpProtocol(address, **options), *address
            )
        else:
            address = server.udp_address
            _, client = await loop.create_datagram_endpoint(
                lambda: RecordingUdpClient(address, **options), remote_addr=address
            )
        client.receiver = Inbox()
        clients.append(client)
        return client

    yield open_
    for client in clients:
        if client.refresh_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.delete(), 1.0)
        client.transport.close()


async def open_peer(host: str = "127.0.0.1") -> Inbox:
    """A plain UDP socket standing for the other side of a call."""
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        Inbox, local_addr=(host, 0)
    )
    return peer


def address_of(endpoint: Inbox) -> tuple[str, int]:
    assert endpoint.transport is not None
    return endpoint.transport.get_extra_info("sockname")[:2]


async def allocate(client: TurnClientMixin) -> tuple[str, int]:
    return await asyncio.wait_for(client.connect(), TIMEOUT_S)


async def request(client: TurnClientMixin, method: stun.Method, **attributes: Any):
    message = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
    message.attributes.update({k.replace("_", "-"): v for k, v in attributes.items()})
    response, _ = await asyncio.wait_for(client.request_with_retry(message), TIMEOUT_S)
    return response


async def refused_with(awaitable: Awaitable[Any]) -> int | None:
    """The error code a TURN transaction failed with."""
    with pytest.raises(stun.TransactionFailed) as failure:
        await asyncio.wait_for(awaitable, TIMEOUT_S)
    return failure.value.response.error_code


def send_indication(client: TurnClientMixin, peer: tuple[str, int], data: bytes) -> None:
    message = stun.Message(
        message_method=stun.Method.SEND,
        message_class=stun.Class.INDICATION,
        attributes={"XOR-PEER-ADDRESS": peer, "DATA": data},
    )
    client.send_stun(message, client.server)


# -- credentials -------------------------------------------------------------------------


def test_credentials_follow_the_turn_rest_api_scheme() -> None:
    creds = issue_credentials(SECRET, "42", ttl_s=3600, now=1_800_000_000.5)
    assert creds.username == "1800003600:42"
    assert creds.expires_at == 1_800_003_600
    assert creds.ttl == 3600
    expected = hmac.new(SECRET, b"1800003600:42", hashlib.sha1).digest()
    assert base64.b64decode(creds.password) == expected
    assert parse_username(creds.username) == (1_800_003_600, "42")
    assert parse_username("alice") is None
    with pytest.raises(ValueError):
        issue_credentials(SECRET, "a:b", ttl_s=60, now=0)
    with pytest.raises(ValueError):
        issue_credentials(SECRET, "a", ttl_s=0, now=0)


# -- STUN and allocations ----------------------------------------------------------------


async def test_binding_request_is_answered_without_credentials(start_relay) -> None:
    server = await start_relay()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT_S)
        request_ = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        sock.sendto(bytes(request_), server.udp_address)
        data, _ = await asyncio.to_thread(sock.recvfrom, 2048)
        response = stun.parse_message(data)
        assert response.message_class == stun.Class.RESPONSE
        assert response.transaction_id == request_.transaction_id
        assert response.attributes["XOR-MAPPED-ADDRESS"] == sock.getsockname()
        assert response.attributes["SOFTWARE"] == "xnode"
        assert "FINGERPRINT" in response.attributes


async def test_port_zero_picks_again_when_the_tcp_port_number_is_taken(
    start_relay, monkeypatch
) -> None:
    """With port 0 the TCP listener wants the kernel-picked UDP number; if another socket holds
    it, the relay picks a new UDP port instead of failing to start."""
    loop = asyncio.get_running_loop()
    real_create_server = loop.create_server
    refused_ports: list[int] = []

    async def create_server_taken_once(*args: Any, **kwargs: Any) -> Any:
        if not refused_ports:
            refused_ports.append(kwargs["port"])
            raise OSError(errno.EADDRINUSE, "address already in use")
        return await real_create_server(*args, **kwargs)

    monkeypatch.setattr(loop, "create_server", create_server_taken_once)
    server = await start_relay()
    assert len(refused_ports) == 1
    assert server.tcp_address is not None
    assert server.tcp_address[1] == server.udp_address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT_S)
        sock.sendto(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)),
                    server.udp_address)
        data, _ = await asyncio.to_thread(sock.recvfrom, 2048)
        assert stun.parse_message(data).message_class == stun.Class.RESPONSE


async def test_a_configured_port_already_taken_is_an_error(start_relay) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(OSError) as raised:
            await start_relay(port=taken)
        assert raised.value.errno == errno.EADDRINUSE


async def test_allocate_then_relay_both_ways_over_channels(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials())
    relayed = await allocate(client)
    assert relayed[0] == "127.0.0.1" and relayed[1] != server.udp_address[1]
    assert client.mapped_address == client.transport.get_extra_info("sockname")
    peer = await open_peer()

    await client.send_data(b"hello peer", address_of(peer))  # ChannelBind, then ChannelData
    assert await peer.next() == (b"hello peer", relayed)
    assert client.peer_to_channel[address_of(peer)] >= 0x4000

    peer.transport.sendto(b"hello client", relayed)
    assert await client.receiver.next() == (b"hello client", address_of(peer))

    counters = server.counters()
    assert (counters.allocations_current, counters.allocations_total) == (1, 1)
    assert (counters.packets_to_peers, counters.bytes_to_peers) == (1, len(b"hello peer"))
    assert (counters.packets_to_clients, counters.bytes_to_clients) == (1, len(b"hello client"))


async def test_send_and_data_indications_after_create_permission(start_relay, open_client):
    server = await start_relay()
    client = await open_client(server, credentials())
    relayed = await allocate(client)
    peer = await open_peer()
    await request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=address_of(peer))

    send_indication(client, address_of(peer), b"via send")
    assert await peer.next() == (b"via send", relayed)

    peer.transport.sendto(b"via data indication!", relayed)  # 20 bytes: no padding case
    data, source = await asyncio.wait_for(client.indications.get(), TIMEOUT_S)
    assert (data, source) == (b"via data indication!", address_of(peer))
    peer.transport.sendto(b"odd", relayed)  # padded DATA attribute
    assert await asyncio.wait_for(client.indications.get(), TIMEOUT_S) == (
        b"odd", address_of(peer))


async def test_refresh_with_lifetime_zero_deletes_the_allocation(start_relay, open_client):
    server = await start_relay()
    client = await open_client(server, credentials())
    relayed = await allocate(client)
    response = await request(client, stun.Method.REFRESH, LIFETIME=0)
    assert response.attributes["LIFETIME"] == 0
    assert server.counters().allocations_current == 0
    client.refresh_task.cancel()
    client.refresh_task = None
    # The relayed socket is closed: the port can be bound again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(relayed)


async def test_a_second_allocate_on_the_same_five_tuple_is_a_mismatch(start_relay, open_client):
    server = await start_relay()
    client = await open_client(server, credentials())
    await allocate(client)
    assert await refused_with(client.connect()) == 437
    assert server.counters().refusals["allocation_mismatch"] == 1


async def test_only_udp_relaying_is_offered(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials())
    tcp = 6 << 24
    assert await refused_with(
        request(client, stun.Method.ALLOCATE, REQUESTED_TRANSPORT=tcp, LIFETIME=600)
    ) == 442
    assert await refused_with(request(client, stun.Method.ALLOCATE, LIFETIME=600)) == 400
    assert server.counters().allocations_total == 0


async def test_channel_numbers_outside_the_range_are_refused(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials())
    await allocate(client)
    peer = address_of(await open_peer())
    assert await refused_with(client.channel_bind(0x5000, peer)) == 400
    assert await refused_with(client.channel_bind(0x3FFF, peer)) == 400
    await client.channel_bind(0x4FFF, peer)
    # One channel, one peer: the same number for another peer is refused.
    other = address_of(await open_peer())
    assert await refused_with(client.channel_bind(0x4FFF, other)) == 400


# -- credentials at the relay ------------------------------------------------------------


async def test_wrong_password_is_refused(start_relay, open_client) -> None:
    server = await start_relay()
    good = credentials()
    bad = TurnCredentials(good.username, "not-the-password", good.ttl, good.expires_at)
    client = await open_client(server, bad)
    assert await refused_with(client.connect()) == 401
    counters = server.counters()
    assert counters.allocations_total == 0
    assert counters.refusals["wrong_credentials"] == 1


async def test_credentials_signed_with_another_secret_are_refused(start_relay, open_client):
    server = await start_relay()
    forged = issue_credentials(b"another secret", "mallory", 600, time.time())
    client = await open_client(server, forged)
    assert await refused_with(client.connect()) == 401
    assert server.counters().allocations_total == 0


async def test_expired_username_is_refused(start_relay, open_client) -> None:
    server = await start_relay()
    expired = credentials(ttl_s=60, now=time.time() - 120)
    client = await open_client(server, expired)
    assert await refused_with(client.connect()) == 401
    counters = server.counters()
    assert counters.allocations_total == 0
    assert counters.refusals["expired_credentials"] == 1


async def test_another_user_cannot_use_an_allocation(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials("alice"))
    await allocate(client)
    bob = credentials("bob")
    client.username, client.password = bob.username, bob.password
    client.integrity_key = make_integrity_key(bob.username, REALM, bob.password)
    peer = address_of(await open_peer())
    assert await refused_with(
        request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=peer)
    ) == 441


async def test_a_stale_nonce_is_renewed(start_relay, open_client) -> None:
    clock = FakeClock(time.time())
    server = await start_relay(clock=clock, nonce_lifetime_s=60)
    client = await open_client(server, credentials(ttl_s=3600, now=clock.now()))
    await allocate(client)
    clock.advance(120)
    peer = address_of(await open_peer())
    # aioice retries a 438 with the new nonce, as browsers do.
    await request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=peer)
    assert server.counters().refusals["stale_nonce"] == 1


# -- never an open relay -----------------------------------------------------------------


async def test_nothing_reaches_a_peer_without_a_permission(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials())
    await allocate(client)
    peer = await open_peer()
    send_indication(client, address_of(peer), b"unasked")
    assert await peer.nothing()
    assert server.counters().packets_to_peers == 0
    assert server.counters().drops["no_permission"] == 1


async def test_nothing_from_a_peer_without_a_permission_reaches_the_client(
    start_relay, open_client
) -> None:
    server = await start_relay()
    client = await open_client(server, credentials())
    relayed = await allocate(client)
    # A permission for 127.0.0.2 says nothing about 127.0.0.1, whatever the port.
    await request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=("127.0.0.2", 9))
    stranger = await open_peer("127.0.0.1")
    stranger.transport.sendto(b"let me in", relayed)
    await asyncio.sleep(QUIET_S)
    assert client.indications.empty()
    assert server.counters().packets_to_clients == 0
    assert server.counters().drops["no_permission"] == 1
    # The permitted IP does get through, from any port.
    friend = await open_peer("127.0.0.2")
    friend.transport.sendto(b"hi", relayed)
    assert await asyncio.wait_for(client.indications.get(), TIMEOUT_S) == (
        b"hi", address_of(friend))


async def test_permissions_and_channels_expire(start_relay, open_client) -> None:
    clock = FakeClock(time.time())
    server = await start_relay(clock=clock, max_lifetime_s=3600, default_lifetime_s=3600)
    client = await open_client(server, credentials(ttl_s=7200, now=clock.now()))
    relayed = await allocate(client)
    peer = await open_peer()
    await client.send_data(b"one", address_of(peer))
    assert (await peer.next())[0] == b"one"

    clock.advance(301)  # permissions last 300 s; the channel still stands
    await client.send_data(b"two", address_of(peer))
    assert await peer.nothing()
    peer.transport.sendto(b"back", relayed)
    assert await client.receiver.nothing()
    assert server.counters().drops["no_permission"] == 2

    server.sweep()
    # A ChannelBind refresh installs the permission again.
    await client.channel_bind(client.peer_to_channel[address_of(peer)], address_of(peer))
    await client.send_data(b"three", address_of(peer))
    assert (await peer.next())[0] == b"three"


async def test_private_peers_are_refused_unless_allowed(start_relay, open_client) -> None:
    server = await start_relay(allow_private_addresses=False)
    client = await open_client(server, credentials())
    await allocate(client)  # the client may be anywhere; only peers are checked
    for forbidden in [("127.0.0.1", 5000), ("10.1.2.3", 5000), ("169.254.1.1", 5000),
                      ("224.0.0.1", 5000), ("0.0.0.0", 5000), ("192.168.1.1", 5000)]:
        assert await refused_with(
            request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=forbidden)
        ) == 403, forbidden
    assert await refused_with(client.channel_bind(0x4000, ("10.0.0.7", 5000))) == 403
    # A public address is fine (nothing is sent to it).
    await request(client, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=("8.8.8.8", 53))
    assert server.counters().refusals["forbidden_peer"] == 7


async def test_allocations_per_user_are_capped(start_relay, open_client) -> None:
    server = await start_relay(max_allocations_per_user=2)
    first = await open_client(server, credentials("alice"))
    await allocate(first)
    await allocate(await open_client(server, credentials("alice")))
    third = await open_client(server, credentials("alice"))
    assert await refused_with(third.connect()) == 486
    # The quota is per user id, whatever the username's expiry.
    another_username = credentials("alice", ttl_s=1200)
    assert await refused_with((await open_client(server, another_username)).connect()) == 486
    await allocate(await open_client(server, credentials("bob")))
    assert server.counters().refusals["user_quota"] == 2

    await request(first, stun.Method.REFRESH, LIFETIME=0)
    first.refresh_task.cancel()
    first.refresh_task = None
    await allocate(await open_client(server, credentials("alice")))


async def test_total_allocations_are_capped(start_relay, open_client) -> None:
    server = await start_relay(max_allocations=1)
    await allocate(await open_client(server, credentials("alice")))
    assert await refused_with((await open_client(server, credentials("bob"))).connect()) == 508
    assert server.counters().allocations_current == 1


async def test_bandwidth_beyond_the_quota_is_dropped(start_relay, open_client) -> None:
    burst = 65_535
    server = await start_relay(bandwidth_bytes_per_s=1_000, bandwidth_burst_bytes=burst)
    client = await open_client(server, credentials())
    await allocate(client)
    peer = await open_peer()
    payload = bytes(1_000)
    for _ in range(100):
        await client.send_data(payload, address_of(peer))
    await asyncio.sleep(QUIET_S)
    received = peer.queue.qsize()
    # The burst lets 65 through, plus the trickle refilled while sending (1 KB/s).
    assert 60 <= received <= 70
    counters = server.counters()
    assert counters.packets_to_peers == received
    # Loopback may lose a few of a burst of 100 before the relay reads them.
    assert 20 <= counters.drops["bandwidth"] <= 100 - received


async def test_an_idle_allocation_expires_at_its_lifetime(start_relay, open_client) -> None:
    clock = FakeClock(time.time())
    server = await start_relay(clock=clock, default_lifetime_s=60, max_lifetime_s=60)
    client = await open_client(server, credentials(ttl_s=3600, now=clock.now()))
    relayed = await allocate(client)
    peer = await open_peer()
    await client.send_data(b"ping", address_of(peer))
    await peer.next()

    clock.advance(59)
    server.sweep()
    assert server.counters().allocations_current == 1
    clock.advance(2)
    server.sweep()
    assert server.counters().allocations_current == 0
    peer.transport.sendto(b"anyone?", relayed)
    assert await client.receiver.nothing()
    assert await refused_with(request(client, stun.Method.REFRESH, LIFETIME=60)) == 437
    client.refresh_task.cancel()
    client.refresh_task = None


async def test_a_refresh_keeps_an_allocation(start_relay, open_client) -> None:
    clock = FakeClock(time.time())
    server = await start_relay(clock=clock, default_lifetime_s=60, max_lifetime_s=60)
    client = await open_client(server, credentials(ttl_s=3600, now=clock.now()))
    await allocate(client)
    clock.advance(50)
    response = await request(client, stun.Method.REFRESH, LIFETIME=600)
    assert response.attributes["LIFETIME"] == 60  # capped at the maximum
    clock.advance(50)
    server.sweep()
    assert server.counters().allocations_current == 1


# -- TCP ---------------------------------------------------------------------------------


async def test_turn_over_tcp_relays_both_ways(start_relay, open_client) -> None:
    server = await start_relay()
    assert server.tcp_address is not None and server.tcp_address[1] == server.udp_address[1]
    client = await open_client(server, credentials(), transport="tcp")
    relayed = await allocate(client)
    peer = await open_peer()
    for size in (1, 2, 3, 4, 1100):  # every ChannelData padding length
        payload = bytes([size % 256]) * size
        await client.send_data(payload, address_of(peer))
        assert await peer.next() == (payload, relayed)
        peer.transport.sendto(payload[::-1], relayed)
        assert await client.receiver.next() == (payload[::-1], address_of(peer))
    assert server.counters().packets_to_peers == 5


async def test_a_closed_tcp_connection_frees_its_allocation(start_relay, open_client) -> None:
    server = await start_relay()
    client = await open_client(server, credentials(), transport="tcp")
    await allocate(client)
    assert server.counters().allocations_current == 1
    client.refresh_task.cancel()
    client.refresh_task = None
    client.transport.close()
    for _ in range(50):
        if server.counters().allocations_current == 0:
            break
        await asyncio.sleep(0.01)
    assert server.counters().allocations_current == 0


async def test_garbage_on_tcp_closes_the_connection(start_relay) -> None:
    server = await start_relay()
    assert server.tcp_address is not None
    reader, writer = await asyncio.open_connection(*server.tcp_address)
    writer.write(b"\xff" * 64)
    assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
    writer.close()
    assert server.counters().drops["malformed"] == 1


async def test_relayed_ports_come_from_the_configured_range(start_relay, open_client) -> None:
    server = await start_relay(relay_port_range=(47000, 47099))
    for user in ("alice", "bob"):
        relayed = await allocate(await open_client(server, credentials(user)))
        assert 47000 <= relayed[1] <= 47099


async def test_two_relayed_people_reach_each_other_but_nothing_else_on_the_relay(
    start_relay, open_client
) -> None:
    # Both sides relay only: each one's peer is the other's relayed address, which is the
    # relay's own address. That one kind of own-address peer is allowed, never other ports.
    server = await start_relay(allow_private_addresses=False)
    alice = await open_client(server, credentials("alice"))
    bob = await open_client(server, credentials("bob"))
    alice_relayed, bob_relayed = await allocate(alice), await allocate(bob)
    await request(alice, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=bob_relayed)
    await request(bob, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=alice_relayed)
    send_indication(alice, bob_relayed, b"relay to relay")
    data, source = await asyncio.wait_for(bob.indications.get(), TIMEOUT_S)
    assert (data, source) == (b"relay to relay", alice_relayed)
    # Another port of the relay's own address: refused, and Send to it (under the permission
    # for the address) is dropped.
    other_port = (bob_relayed[0], bob_relayed[1] + 1 if bob_relayed[1] < 65535 else 1024)
    assert await refused_with(
        request(alice, stun.Method.CREATE_PERMISSION, XOR_PEER_ADDRESS=other_port)
    ) == 403
    before = server.counters().drops.get("forbidden_peer", 0)
    send_indication(alice, other_port, b"to a port that is no allocation")
    for _ in range(50):
        if server.counters().drops.get("forbidden_peer", 0) > before:
            break
        await asyncio.sleep(0.02)
    assert server.counters().drops.get("forbidden_peer", 0) == before + 1
