"""SSRF-safe HTTP fetching for federation: actors, WebFinger, NodeInfo, deliveries.

Every URL we fetch comes from someone else's document, so the client refuses to
reach private, loopback, link-local, multicast, reserved or unspecified
addresses. The check runs where the connection is made: a resolver wrapper
filters what DNS returns, so a name cannot resolve to a public address when we
check and to ``127.0.0.1`` when we connect (DNS rebinding). IP literals, which
aiohttp never hands to the resolver, are checked by the connector and again
before each request. Redirects are followed by hand, at most ``max_redirects``,
each hop checked and (optionally) signed again. Bodies are streamed and cut off
at ``max_bytes``; the whole exchange runs under one deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from federation.jsonld import DocumentTooComplex, InvalidJson, parse_json

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_USER_AGENT: Final = "xnode-federation/1.0"
DEFAULT_MAX_BYTES: Final = 1024 * 1024
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_REDIRECTS: Final = 3
ACTIVITY_ACCEPT: Final = (
    'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
)
JSON_ACCEPT: Final = "application/json"
JRD_ACCEPT: Final = "application/jrd+json, application/json"
# Content types fetch_json accepts (parameters such as charset or profile ignored).
# Servers label documents loosely: Lemmy answers WebFinger as application/json,
# Mastodon as application/jrd+json, NodeInfo adds a profile parameter, and some
# ActivityPub servers answer an activity+json request with ld+json or plain json.
JSON_CONTENT_TYPES: Final = frozenset(
    {"application/activity+json", "application/ld+json", "application/json", "application/jrd+json"}
)
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

# ``sign(method, url, headers, body) -> headers``: called before every request,
# including each redirect hop, so the signature covers the URL actually requested.
Signer = Callable[
    [str, str, Mapping[str, str], bytes | None],
    Mapping[str, str] | Awaitable[Mapping[str, str]],
]


class FetchError(Exception):
    """A fetch failed; ``url`` is the URL being requested when it did."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class InvalidURL(FetchError):
    """Not an absolute http(s) URL."""


class ForbiddenAddress(FetchError):
    """The target resolves to an address we refuse to contact."""


class TooLarge(FetchError):
    """The response body exceeds the size limit."""


class BadStatus(FetchError):
    """The final response had a non-success status."""

    def __init__(self, status: int, *, url: str | None = None) -> None:
        super().__init__(f"HTTP status {status}", url=url)
        self.status = status


class Timeout(FetchError):
    """The exchange did not finish before the deadline."""


class TooManyRedirects(FetchError):
    """More redirects than allowed."""


class ConnectError(FetchError):
    """The connection or TLS handshake failed."""


class UnexpectedContentType(FetchError):
    """The response is not of an accepted content type."""


class InvalidJsonResponse(FetchError):
    """The response body is not acceptable JSON (syntax, depth or size)."""


# --- address policy ------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_forbidden_address(
    address: str | IPAddress, *, allowed_networks: Iterable[IPNetwork] = ()
) -> bool:
    """Whether federation traffic must not go to this address.

    Private, loopback, link-local, multicast, reserved, unspecified and other
    non-global addresses are forbidden, including IPv4 addresses hidden in IPv6
    (IPv4-mapped ``::ffff:127.0.0.1``, 6to4, Teredo, NAT64).

    Args:
        address: an IP address (IPv6 may be in brackets).
        allowed_networks: networks allowed even though they are not global
            (e.g. the loopback range used by interop test peers).
    """
    if isinstance(address, str):
        try:
            ip: IPAddress = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return True
    else:
        ip = address
    networks = tuple(allowed_networks)
    if any(ip.version == net.version and ip in net for net in networks):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is that IPv4 address on a dual-stack socket.
            return is_forbidden_address(ip.ipv4_mapped, allowed_networks=networks)
        embedded = _embedded_ipv4(ip)
        if embedded is not None and is_forbidden_address(embedded, allowed_networks=networks):
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class FetchSettings:
    """Limits and trust settings for outgoing requests.

    Attributes:
        allow_private_addresses: allow every address (tests, single-host setups).
        allowed_networks: non-global networks to allow even when the above is False.
        max_redirects: redirects followed before giving up.
        max_bytes: largest response body read.
        timeout_s: deadline for the whole exchange, redirects included.
        user_agent: the User-Agent header.
        ca_file: PEM bundle trusted in addition to the system store.
        cut_off_bodies: keep the first ``max_bytes`` of a longer body instead of
            failing with ``TooLarge`` (for HTML pages read for their ``<head>``).
    """

    allow_private_addresses: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    user_agent: str = DEFAULT_USER_AGENT
    ca_file: str | Path | None = None
    cut_off_bodies: bool = False

    def forbids(self, address: str | IPAddress) -> bool:
        """Whether these settings refuse to contact ``address``."""
        if self.allow_private_addresses:
            return False
        return is_forbidden_address(address, allowed_networks=self.allowed_networks)

    def check_literal_host(self, host: str | None, *, url: str | None = None) -> None:
        """Refuse a URL host that is a forbidden IP literal (names are checked on resolve).

        Raises:
            ForbiddenAddress: the host is a forbidden IP address.
        """
        if not host:
            return
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        if self.forbids(ip):
            raise ForbiddenAddress(f"refusing to contact {ip}", url=url)


class SafeResolver(AbstractResolver):
    """A resolver that refuses names resolving to forbidden addresses.

    Because aiohttp connects to exactly the addresses the resolver returns, this is
    the point where the check cannot be raced. If any returned address is forbidden
    the whole name is refused: a mixed answer is what a rebinding attack looks like.
    """

    def __init__(self, settings: FetchSettings, inner: AbstractResolver | None = None) -> None:
        self._settings = settings
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve through the inner resolver, then apply the address policy."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if self._settings.forbids(result["host"]):
                logger.info("refusing %s: resolves to %s", host, result["host"])
                raise ForbiddenAddress(f"{host} resolves to forbidden address {result['host']}")
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


class _SafeConnector(aiohttp.TCPConnector):
    """TCP connector that also checks IP-literal hosts, which skip the resolver."""

    def __init__(self, *, settings: FetchSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings

    async def _resolve_host(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self._settings.check_literal_host(host)
        return await super()._resolve_host(host, port, *args, **kwargs)


def make_ssl_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the system store plus ``ca_file`` if given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def create_session(
    settings: FetchSettings | None = None, *, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """An aiohttp session whose connections obey the address policy.

    ``trust_env`` stays off: an HTTP(S)_PROXY from the environment would make
    aiohttp resolve the proxy instead of the target, bypassing the check.

    Args:
        settings: limits and trust settings (defaults apply when None).
        resolver: the DNS resolver to wrap (tests map names to loopback ports).
    """
    settings = settings or FetchSettings()
    connector = _SafeConnector(
        settings=settings,
        resolver=SafeResolver(settings, resolver),
        ssl=make_ssl_context(settings.ca_file),
        use_dns_cache=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        headers={"User-Agent": settings.user_agent},
        # Federation requests carry no cookies: a peer's Set-Cookie must not
        # follow us to the next request (and the jar costs time per request).
        cookie_jar=aiohttp.DummyCookieJar(),
        # The deadline is ``Fetcher.request``'s, over all hops; aiohttp's own
        # five-minute default would only add a timer per request.
        timeout=aiohttp.ClientTimeout(total=None),
    )


# --- fetching ------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResponse:
    """A fully read response."""

    url: str
    status: int
    headers: Mapping[str, str] = field(repr=False)  # case-insensitive (aiohttp's)
    body: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ('' when absent)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")


def _parse_url(url: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise InvalidURL(f"invalid URL {url!r}", url=url) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host or not parsed.is_absolute():
        raise InvalidURL(f"only absolute http(s) URLs can be fetched: {url!r}", url=url)
    return parsed


async def _read_limited(
    response: aiohttp.ClientResponse, max_bytes: int, url: str, *, cut_off: bool = False
) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes and not cut_off:
        raise TooLarge(f"response declares {declared} bytes (limit {max_bytes})", url=url)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        if total + len(chunk) > max_bytes:
            if not cut_off:
                raise TooLarge(f"response exceeds {max_bytes} bytes", url=url)
            # The rest is never read: leaving the block closes the connection.
            chunks.append(chunk[: max_bytes - total])
            break
        total += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


class Fetcher:
    """Makes SSRF-safe requests with a shared session; use as an async context manager."""

    def __init__(
        self,
        settings: FetchSettings | None = None,
        *,
        resolver: AbstractResolver | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Create a fetcher.

        Args:
            settings: limits and trust settings.
            resolver: DNS resolver to wrap (ignored when ``session`` is given).
            session: a session from ``create_session`` to share; not closed by us.
        """
        self.settings = settings or FetchSettings()
        self._owns_session = session is None
        self._session = session
        self._resolver = resolver

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying session, created on first use (aiohttp wants a running loop)."""
        if self._session is None:
            self._session = create_session(self.settings, resolver=self._resolver)
        return self._session

    async def close(self) -> None:
        """Close the session if this fetcher created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        sign: Signer | None = None,
        max_bytes: int | None = None,
        raise_for_status: bool = True,
    ) -> FetchResponse:
        """Send a request, following redirects by hand, and read the whole body.

        Args:
            method: HTTP method.
            url: absolute http(s) URL.
            headers: extra request headers.
            body: request body (kept on 307/308, dropped when a redirect turns it into GET).
            sign: called before every hop to add signature headers.
            max_bytes: body limit (defaults to the settings).
            raise_for_status: raise ``BadStatus`` for a final status outside 200-299.

        Returns:
            The final response.

        Raises:
            InvalidURL, ForbiddenAddress, TooLarge, BadStatus, Timeout,
            TooManyRedirects, ConnectError: see their docstrings.
        """
        limit = self.settings.max_bytes if max_bytes is None else max_bytes
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self._follow(
                    method.upper(), url, dict(headers or {}), body, sign, limit, raise_for_status
                )
        except TimeoutError as exc:
            raise Timeout(f"no complete answer within {self.settings.timeout_s}s", url=url) from exc

    async def _follow(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        sign: Signer | None,
        max_bytes: int,
        raise_for_status: bool,
    ) -> FetchResponse:
        current = _parse_url(url)
        for hop in range(self.settings.max_redirects + 1):
            self.settings.check_literal_host(current.host, url=str(current))
            response = await self._send(method, current, headers, body, sign, max_bytes)
            location = response.headers.get("Location")
            if response.status not in _REDIRECT_STATUSES or not location:
                if raise_for_status and not 200 <= response.status < 300:
                    raise BadStatus(response.status, url=response.url)
                return response
            if hop == self.settings.max_redirects:
                break
            try:
                target = current.join(URL(location))
            except ValueError as exc:
                raise InvalidURL(f"bad redirect target {location!r}", url=str(current)) from exc
            current = _parse_url(str(target))
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            logger.debug("following redirect %s -> %s", response.url, current)
        raise TooManyRedirects(
            f"more than {self.settings.max_redirects} redirects", url=str(current)
        )

    async def _send(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        sign: Signer | None,
        max_bytes: int,
    ) -> FetchResponse:
        request_headers: Mapping[str, str] = headers
        if sign is not None:
            # The signer returns the complete header set to send (ours plus its own).
            signed = sign(method, str(url), dict(headers), body)
            request_headers = await signed if inspect.isawaitable(signed) else signed
        try:
            async with self.session.request(
                method,
                url,
                headers=dict(request_headers),
                data=body,
                allow_redirects=False,
            ) as response:
                data = await _read_limited(
                    response, max_bytes, str(url), cut_off=self.settings.cut_off_bodies
                )
                return FetchResponse(
                    url=str(response.url),
                    status=response.status,
                    headers=response.headers,
                    body=data,
                )
        except FetchError:
            raise
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise ConnectError(f"TLS failure: {exc}", url=str(url)) from exc
        except aiohttp.InvalidURL as exc:
            raise InvalidURL(f"invalid URL: {exc}", url=str(url)) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise Timeout("request timed out", url=str(url)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectError(f"request failed: {exc}", url=str(url)) from exc

    async def get(self, url: str, **kwargs: Any) -> FetchResponse:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, body: bytes, **kwargs: Any) -> FetchResponse:
        """``request("POST", url, body=body, ...)``."""
        return await self.request("POST", url, body=body, **kwargs)

    async def fetch_json(
        self,
        url: str,
        *,
        accept: str = ACTIVITY_ACCEPT,
        sign: Signer | None = None,
        content_types: frozenset[str] = JSON_CONTENT_TYPES,
    ) -> Any:
        """GET a JSON document, checking its content type loosely and its shape strictly.

        Args:
            url: absolute http(s) URL.
            accept: the Accept header (ActivityPub types by default).
            sign: optional request signer (authorized fetch).
            content_types: acceptable media types (parameters are ignored).

        Returns:
            The decoded JSON value.

        Raises:
            UnexpectedContentType: the server answered with another media type.
            InvalidJsonResponse: the body is not JSON or is nested too deeply.
            FetchError: any failure from ``request``.
        """
        response = await self.request("GET", url, headers={"Accept": accept}, sign=sign)
        if response.content_type not in content_types:
            raise UnexpectedContentType(
                f"expected JSON, got {response.content_type or 'no content type'}",
                url=response.url,
            )
        try:
            return parse_json(response.body, max_bytes=self.settings.max_bytes)
        except (InvalidJson, DocumentTooComplex) as exc:
            raise InvalidJsonResponse(str(exc), url=response.url) from exc


async def fetch_json(
    url: str,
    *,
    accept: str = ACTIVITY_ACCEPT,
    sign: Signer | None = None,
    settings: FetchSettings | None = None,
    fetcher: Fetcher | None = None,
) -> Any:
    """Fetch one JSON document; uses ``fetcher`` or a short-lived one.

    See ``Fetcher.fetch_json`` for arguments and errors.
    """
    if fetcher is not None:
        return await fetcher.fetch_json(url, accept=accept, sign=sign)
    async with Fetcher(settings) as temporary:
        return await temporary.fetch_json(url, accept=accept, sign=sign)
