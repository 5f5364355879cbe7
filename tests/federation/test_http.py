"""The SSRF-safe client against real aiohttp servers on loopback.

Loopback is exactly what the client must refuse, so most tests allow one
loopback address (127.0.0.2) through ``allowed_networks`` and check that
127.0.0.1 stays forbidden. Names are mapped to loopback addresses by a static
resolver, the way aiohttp's ``fake_server`` example does.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation import http as fh

ALLOWED = (ipaddress.ip_network("127.0.0.2/32"),)


class StaticResolver(AbstractResolver):
    """Resolves test names from a dict; ``answers`` may give a sequence per name (rebinding)."""

    def __init__(self, answers: dict[str, str | list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        self.calls.append(host)
        answer = self.answers[host]
        address = answer.pop(0) if isinstance(answer, list) else answer
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": 0}
        ]  # fmt: skip

    async def close(self) -> None:
        pass


def json_app(hits: list[str] | None = None) -> web.Application:
    """An app with JSON, redirect, size, slow and echo endpoints; records request paths."""
    app = web.Application()
    seen = hits if hits is not None else []

    async def record(request: web.Request) -> None:
        seen.append(request.path)

    async def actor(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response(
            {"id": "https://example.test/actor", "type": "Person"},
            content_type="application/activity+json",
        )

    async def hop(request: web.Request) -> web.Response:
        await record(request)
        remaining = int(request.match_info["n"])
        if remaining == 0:
            return web.json_response({"hops": "done"})
        raise web.HTTPFound(f"/hop/{remaining - 1}")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"signature": request.headers.get("Signature"),
                                  "ua": request.headers.get("User-Agent")})  # fmt: skip

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="[" * 5000 + "]" * 5000, content_type="application/json")

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "gone"}, status=404)

    app.router.add_get("/actor", actor)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/big", big)
    app.router.add_get("/stream", stream)
    app.router.add_get("/slow", slow)
    app.router.add_get("/echo", echo)
    app.router.add_get("/html", html)
    app.router.add_get("/deep", deep)
    app.router.add_get("/missing", missing)
    return app


def redirector(target: Callable[[], str]) -> web.Application:
    """An app whose every path redirects to ``target()``."""
    app = web.Application()

    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(target())

    app.router.add_get("/{tail:.*}", go)
    return app


@pytest.fixture
async def public_server(aiohttp_server):
    """A server on 127.0.0.2, the one loopback address the tests treat as public."""
    hits: list[str] = []
    server = await aiohttp_server(json_app(hits), host="127.0.0.2")
    server.hits = hits
    return server


@pytest.fixture
async def private_server(aiohttp_server):
    """A server on 127.0.0.1, which must never be reached unless private addresses are allowed."""
    hits: list[str] = []
    server = await aiohttp_server(json_app(hits), host="127.0.0.1")
    server.hits = hits
    return server


def fetcher(resolver: AbstractResolver | None = None, **settings: Any) -> fh.Fetcher:
    settings.setdefault("allowed_networks", ALLOWED)
    settings.setdefault("timeout_s", 5.0)
    return fh.Fetcher(fh.FetchSettings(**settings), resolver=resolver)


# --- the address policy -------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
        "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1",
        "64:ff9b::7f00:1", "::127.0.0.1", "not an address",
    ],
)  # fmt: skip
def test_non_global_addresses_are_forbidden(address):
    assert fh.is_forbidden_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_global_addresses_are_allowed(address):
    assert not fh.is_forbidden_address(address)


def test_allowed_networks_open_a_hole_only_for_themselves():
    assert not fh.is_forbidden_address("127.0.0.2", allowed_networks=ALLOWED)
    assert fh.is_forbidden_address("127.0.0.1", allowed_networks=ALLOWED)


# --- refusing private targets --------------------------------------------------


async def test_loopback_literal_is_refused_by_default(private_server):
    async with fetcher() as client:
        with pytest.raises(fh.ForbiddenAddress):
            await client.fetch_json(str(private_server.make_url("/actor")))
    assert private_server.hits == []


async def test_loopback_is_allowed_when_private_addresses_are_allowed(private_server):
    async with fetcher(allow_private_addresses=True) as client:
        doc = await client.fetch_json(str(private_server.make_url("/actor")))
    assert doc["type"] == "Person"


async def test_name_resolving_to_loopback_is_refused_at_connect_time(private_server):
    resolver = StaticResolver({"innocent.test": "127.0.0.1"})
    async with fetcher(resolver) as client:
        with pytest.raises(fh.ForbiddenAddress):
            await client.fetch_json(f"http://innocent.test:{private_server.port}/actor")
    assert resolver.calls == ["innocent.test"]
    assert private_server.hits == []


async def test_raw_session_from_factory_enforces_the_policy_too(private_server):
    resolver = StaticResolver({"a.test": "127.0.0.1"})
    session = fh.create_session(fh.FetchSettings(), resolver=resolver)
    try:
        for url in (
            str(private_server.make_url("/actor")),
            f"http://a.test:{private_server.port}/actor",
        ):
            with pytest.raises(fh.ForbiddenAddress):
                async with session.get(url):
                    pass
    finally:
        await session.close()
    assert private_server.hits == []


async def test_every_connection_resolves_again_so_rebinding_is_caught(public_server):
    # First answer public (allowed), second answer loopback: the second connection
    # must be checked again, not trusted because the first lookup was fine.
    resolver = StaticResolver({"rebind.test": ["127.0.0.2", "127.0.0.1"]})
    url = f"http://rebind.test:{public_server.port}/actor"
    async with fetcher(resolver) as client:
        first = await client.get(url, headers={"Connection": "close"})
        assert first.status == 200
        with pytest.raises(fh.ForbiddenAddress):
            await client.get(url)
    assert resolver.calls == ["rebind.test", "rebind.test"]


async def test_redirect_to_private_name_is_refused(aiohttp_server, private_server):
    bouncer = await aiohttp_server(
        redirector(lambda: f"http://private.test:{private_server.port}/actor"), host="127.0.0.2"
    )
    resolver = StaticResolver({"public.test": "127.0.0.2", "private.test": "127.0.0.1"})
    async with fetcher(resolver) as client:
        with pytest.raises(fh.ForbiddenAddress):
            await client.fetch_json(f"http://public.test:{bouncer.port}/start")
    assert resolver.calls == ["public.test", "private.test"]
    assert private_server.hits == []


async def test_redirect_to_private_literal_is_refused(aiohttp_server, private_server):
    bouncer = await aiohttp_server(
        redirector(lambda: str(private_server.make_url("/actor"))), host="127.0.0.2"
    )
    async with fetcher() as client:
        with pytest.raises(fh.ForbiddenAddress):
            await client.fetch_json(str(bouncer.make_url("/start")))
    assert private_server.hits == []


@pytest.mark.parametrize("url", ["ftp://example.test/x", "/relative", "file:///etc/passwd", "x"])
async def test_only_absolute_http_urls_are_fetched(url):
    async with fetcher() as client:
        with pytest.raises(fh.InvalidURL):
            await client.get(url)


# --- redirects, limits, timeouts -----------------------------------------------


async def test_up_to_three_redirects_are_followed(public_server):
    async with fetcher() as client:
        response = await client.get(str(public_server.make_url("/hop/3")))
    assert response.status == 200
    assert response.url.endswith("/hop/0")
    assert public_server.hits == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]


async def test_a_fourth_redirect_is_refused(public_server):
    async with fetcher() as client:
        with pytest.raises(fh.TooManyRedirects):
            await client.get(str(public_server.make_url("/hop/4")))
    assert "/hop/0" not in public_server.hits


async def test_declared_size_over_the_limit_is_refused(public_server):
    async with fetcher(max_bytes=1000) as client:
        with pytest.raises(fh.TooLarge):
            await client.get(str(public_server.make_url("/big")))
        allowed = await client.get(str(public_server.make_url("/big")), max_bytes=5000)
    assert len(allowed.body) == 5000


async def test_streamed_body_is_cut_off_at_the_limit(public_server):
    async with fetcher(max_bytes=2500) as client:
        with pytest.raises(fh.TooLarge):
            await client.get(str(public_server.make_url("/stream")))


async def test_slow_server_times_out(public_server):
    started = time.monotonic()
    async with fetcher(timeout_s=0.3) as client:
        with pytest.raises(fh.Timeout):
            await client.get(str(public_server.make_url("/slow")))
    assert time.monotonic() - started < 2


async def test_error_status_is_typed(public_server):
    async with fetcher() as client:
        with pytest.raises(fh.BadStatus) as caught:
            await client.get(str(public_server.make_url("/missing")))
        assert caught.value.status == 404
        response = await client.get(str(public_server.make_url("/missing")), raise_for_status=False)
    assert response.status == 404


async def test_signer_is_called_for_every_hop(public_server):
    calls: list[tuple[str, str]] = []

    async def sign(method, url, headers, body):
        calls.append((method, url))
        return {**headers, "Signature": f"signed {url}"}

    async with fetcher() as client:
        await client.get(str(public_server.make_url("/hop/2")), sign=sign)
        echoed = await client.fetch_json(str(public_server.make_url("/echo")), sign=sign)
    assert [url.rsplit("/", 2)[-2:] for _, url in calls[:3]] == [
        ["hop", "2"], ["hop", "1"], ["hop", "0"]
    ]  # fmt: skip
    assert echoed["signature"].endswith("/echo")
    assert echoed["ua"] == fh.DEFAULT_USER_AGENT


# --- fetch_json ----------------------------------------------------------------


async def test_fetch_json_refuses_html(public_server):
    async with fetcher() as client:
        with pytest.raises(fh.UnexpectedContentType):
            await client.fetch_json(str(public_server.make_url("/html")))


async def test_fetch_json_refuses_deeply_nested_json(public_server):
    async with fetcher() as client:
        with pytest.raises(fh.InvalidJsonResponse):
            await client.fetch_json(str(public_server.make_url("/deep")))


async def test_module_level_fetch_json_uses_a_short_lived_client(public_server):
    settings = fh.FetchSettings(allowed_networks=ALLOWED)
    doc = await fh.fetch_json(str(public_server.make_url("/actor")), settings=settings)
    assert doc["id"] == "https://example.test/actor"


# --- TLS -----------------------------------------------------------------------


def _write_test_pki(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA and a server certificate for 127.0.0.1; returns the CA file and a server context."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xnode test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return ca_file, server_context


async def test_ca_file_is_trusted_in_addition_to_the_system_store(aiohttp_server, tmp_path):
    ca_file, server_context = _write_test_pki(tmp_path)
    server = await aiohttp_server(json_app(), host="127.0.0.2", ssl=server_context)
    url = f"https://127.0.0.2:{server.port}/actor"
    async with fetcher(ca_file=ca_file) as client:
        assert (await client.fetch_json(url))["type"] == "Person"
    async with fetcher() as client:
        with pytest.raises(fh.ConnectError):
            await client.fetch_json(url)
