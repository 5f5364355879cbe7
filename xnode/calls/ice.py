"""The ICE servers a participant's browser uses, and the built-in relay's life in the node.

A tab in a call gets STUN and TURN URLs with short-lived credentials for this node's
relay (``xnode/calls/relay.py``), or for the external TURN server the admin named
(``turn_server``/``turn_secret``: coturn with ``use-auth-secret`` checks the same
credentials). Never a third-party STUN server: without a relay the browsers use their
own addresses only. The relay runs in the serving process; if its port is taken the
node serves on without it (calls still connect where the two sides reach each other)
and the admin page says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from xnode.calls.relay import RelayCounters, RelaySettings, TurnServer
from xnode.calls.turn_credentials import issue_credentials
from xnode.clock import Clock
from xnode.settings import Settings, parse_host_port, parse_port_range
from xnode.store import calls as call_store
from xnode.store.database import Database

log = logging.getLogger(__name__)

CREDENTIALS_TTL_S = 6 * 3600
"""Long enough for a long call (the browser refreshes its allocation with them)."""


def relay_secret(settings: Settings) -> bytes:
    """The secret the node and its built-in relay share, derived from the node's key."""
    return hmac.new(settings.secret_key, b"xnode call relay", hashlib.sha256).digest()


class CallRelay:
    """Runs the built-in relay (when configured) and hands out ICE servers."""

    def __init__(self, settings: Settings, clock: Clock, db: Database | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self._last_report: str | None = None
        self.host = urlsplit(settings.base_url).hostname or settings.domain.split(":")[0]
        self.server: TurnServer | None = None
        self.status = "off"
        if settings.turn_server:
            self.status = f"external: {settings.turn_server}"

    async def start(self) -> None:
        """Start the built-in relay, unless an external one is configured or it is off."""
        if self.settings.turn_server or not self.settings.call_relay:
            return
        # Port 0 (tests, several nodes on one machine): UDP takes a free port and TCP
        # must get the same number, which another program may hold; try a few.
        attempts = 5 if self.settings.call_relay_port == 0 else 1
        for attempt in range(attempts):
            server = TurnServer(self._relay_settings(), self.clock)
            try:
                await server.start()
                break
            except OSError as exc:
                await server.close()
                if attempt + 1 < attempts:
                    continue
                self.status = f"not running: port {self.settings.call_relay_port}: {exc.strerror}"
                log.warning("the call relay could not start (%s); calls go without it", exc)
                return
        self.server = server
        port = server.udp_address[1]
        self.status = f"running on UDP and TCP port {port}"
        log.info("call relay on UDP and TCP port %d", port)

    def _relay_settings(self) -> RelaySettings:
        return RelaySettings(
            secret=relay_secret(self.settings), realm=self.settings.domain,
            port=self.settings.call_relay_port,
            advertised_address=self.settings.call_relay_address,
            relay_port_range=(
                parse_port_range(self.settings.call_relay_ports)
                if self.settings.call_relay_ports else None
            ),
            allow_private_addresses=self.settings.allow_private_addresses,
        )  # fmt: skip

    async def close(self) -> None:
        """Stop the built-in relay."""
        if self.server is not None:
            await self.server.close()
            self.server = None

    def report(self) -> dict[str, Any]:
        """The relay's state and counters, as the CLI shows them (JSON-ready)."""
        counters = self.counters()
        found: dict[str, Any] = {"status": self.status}
        if counters is not None:
            # Field by field: asdict() would deep-copy the read-only mappings, and cannot.
            found["counters"] = {
                f.name: dict(value) if isinstance(value := getattr(counters, f.name), Mapping)
                else value
                for f in dataclasses.fields(counters)
            }  # fmt: skip
        return found

    async def save_report(self, *, stopped: bool = False) -> None:
        """Record :meth:`report` where ``xnode calls relay`` reads it (the CLI runs apart)."""
        if self.db is None:
            return
        report = json.dumps({"status": "stopped with the node"} if stopped else self.report())
        if report == self._last_report:
            return  # an idle node writes nothing
        await call_store.save_relay_report(self.db, report, self.clock.now())
        self._last_report = report

    def counters(self) -> RelayCounters | None:
        """The built-in relay's counters, when it runs."""
        return None if self.server is None else self.server.counters()

    def ice_servers(self, account_id: int) -> list[dict[str, Any]]:
        """``RTCIceServer`` dictionaries for one person's tab (empty: no relay here)."""
        if self.settings.turn_server and self.settings.turn_secret:
            host, port = parse_host_port(self.settings.turn_server, "turn_server")
            secret = self.settings.turn_secret.encode()
        elif self.server is not None:
            host, port = self.host, self.server.udp_address[1]
            secret = relay_secret(self.settings)
        else:
            return []
        credentials = issue_credentials(
            secret, str(account_id), CREDENTIALS_TTL_S, self.clock.now()
        )
        return [
            {"urls": [f"stun:{host}:{port}"]},
            {
                "urls": [f"turn:{host}:{port}?transport=udp", f"turn:{host}:{port}?transport=tcp"],
                "username": credentials.username,
                "credential": credentials.password,
            },
        ]


async def last_report(db: Database) -> tuple[dict[str, Any], float] | None:
    """What the serving process last recorded of its relay, and when (for ``xnode calls
    relay``, which runs as another process); None if it never did."""
    found = await call_store.relay_report(db)
    if found is None:
        return None
    try:
        report = json.loads(found[0])
    except ValueError:
        return None
    return (report, found[1]) if isinstance(report, dict) else None
