"""Node configuration: one frozen, typed settings object.

Loaded once by the CLI from ``DATA/xnode.toml`` with ``XNODE_*`` environment
overrides, then passed explicitly to everything that needs it. Nothing reads
configuration at import time.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "xnode.toml"
DATABASE_FILE = "xnode.sqlite3"
SECRET_FILE = "secret.key"

REGISTRATION_MODES = ("open", "approval", "invite", "closed")

# Environment variables with the XNODE_ prefix that are not settings keys:
# the CLI uses them as defaults for its own options, and crash tests arm
# fault points with XNODE_FAULT_PAUSE and XNODE_FAULT_EXIT (xnode/faults.py), and the
# test suite picks its database engine with XNODE_TEST_DATABASE (tests/database_backend.py).
NON_SETTING_ENV = frozenset(
    {"XNODE_DATA", "XNODE_FAULT_PAUSE", "XNODE_FAULT_EXIT", "XNODE_TEST_DATABASE"}
)


class SettingsError(Exception):
    """The configuration is invalid; the message says which key and why."""


@dataclass(frozen=True)
class Settings:
    """Everything a node needs to know about its own configuration."""

    data_dir: Path
    domain: str
    base_url: str
    listen: str = "127.0.0.1:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    ca_file: str | None = None
    allow_private_addresses: bool = False
    registration: str = "approval"
    max_upload_mb: int = 8
    # Set when a reverse proxy (nginx, Caddy) on the same host forwards
    # requests: the client address is then the last X-Forwarded-For entry.
    behind_proxy: bool = False
    # "Authorized fetch": ActivityPub GETs other than actors and WebFinger need a signature.
    authorized_fetch: bool = False
    # Process the inbox queue in a second process (uses a second core; see
    # xnode/activitypub/inbox_process.py).
    inbox_process: bool = False
    # Send deliveries from this many helper processes, each for its own share
    # of the hosts (0: the serving process sends; see
    # xnode/activitypub/delivery_process.py).
    delivery_processes: int = 0
    # Helper processes start when the load needs them and stop after this many
    # seconds of quiet (0: start them with the node, never stop them); see
    # xnode/activitypub/helper_pool.py.
    helper_idle_stop_s: int = 300
    # Other servers' avatars and media are served from a cache of this size
    # (xnode/remote_media.py).
    remote_media_cache_mb: int = 256
    # Preview cards for links in posts: the node fetches the linked page's head
    # (xnode/link_previews/).
    link_previews: bool = True
    # Calls: the built-in STUN/TURN relay (xnode/calls/relay.py) on UDP and TCP on this
    # port (0: any free port), advertising this public IPv4 address when the node is
    # behind NAT. turn_server ("host:port") and turn_secret point callers at an external
    # TURN server (coturn with use-auth-secret) instead; the built-in one then stays off.
    call_relay: bool = True
    call_relay_port: int = 3478
    call_relay_address: str | None = None
    call_relay_ports: str | None = None  # "49160-49200": relayed ports, for firewalls
    turn_server: str | None = None
    turn_secret: str | None = field(default=None, repr=False)
    # The client API (xnode/api/): requests per token (or per address without one) in
    # five minutes, as Mastodon allows by default (0: no limit, for benchmarks).
    api_rate_limit: int = 300
    # PostgreSQL instead of the embedded SQLite file: a postgresql:// URL (docs/admin.md,
    # "Scaling out"). Unset: DATA/xnode.sqlite3.
    database_url: str | None = field(default=None, repr=False)
    # Not part of xnode.toml: read from DATA/secret.key.
    secret_key: bytes = field(default=b"", repr=False)

    @property
    def database_path(self) -> Path:
        """Path of the SQLite database inside the data directory."""
        return self.data_dir / DATABASE_FILE

    @property
    def database(self) -> str | Path:
        """The node's database: the PostgreSQL URL if set, else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def media_dir(self) -> Path:
        """Directory where uploaded media files are stored."""
        return self.data_dir / "media"

    @property
    def remote_media_dir(self) -> Path:
        """Directory of the cache of other servers' media."""
        return self.data_dir / "cache" / "remote-media"

    @property
    def https(self) -> bool:
        """Whether the node's public URLs use HTTPS (cookies get ``Secure``)."""
        return self.base_url.startswith("https://")

    @property
    def max_upload_bytes(self) -> int:
        """Upload size limit in bytes."""
        return self.max_upload_mb * 1024 * 1024

    def listen_host_port(self) -> tuple[str, int]:
        """Split ``listen`` into host and port."""
        return parse_listen(self.listen)


MAX_DELIVERY_PROCESSES = 16

# Keys accepted in xnode.toml (and as XNODE_<KEY> variables), with their types.
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "domain": (str,),
    "base_url": (str,),
    "listen": (str,),
    "tls_cert": (str, type(None)),
    "tls_key": (str, type(None)),
    "ca_file": (str, type(None)),
    "allow_private_addresses": (bool,),
    "registration": (str,),
    "max_upload_mb": (int,),
    "behind_proxy": (bool,),
    "authorized_fetch": (bool,),
    "inbox_process": (bool,),
    "delivery_processes": (int,),
    "helper_idle_stop_s": (int,),
    "remote_media_cache_mb": (int,),
    "link_previews": (bool,),
    "call_relay": (bool,),
    "call_relay_port": (int,),
    "call_relay_address": (str, type(None)),
    "call_relay_ports": (str, type(None)),
    "turn_server": (str, type(None)),
    "turn_secret": (str, type(None)),
    "database_url": (str, type(None)),
    "api_rate_limit": (int,),
}


def parse_host_port(value: str, key: str) -> tuple[str, int]:
    """``host:port`` (a name or an IPv4 address) as a pair.

    Raises:
        SettingsError: not a host and a port in range.
    """
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65_535 or "/" in host:
        raise SettingsError(f"{key}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def parse_port_range(value: str) -> tuple[int, int]:
    """``"49160-49200"`` as an inclusive pair of ports from 1024 up.

    Raises:
        SettingsError: not two ports in order.
    """
    low, _, high = value.partition("-")
    if not (low.strip().isdigit() and high.strip().isdigit()):
        raise SettingsError(f"call_relay_ports: expected LOW-HIGH, got {value!r}")
    first, last = int(low), int(high)
    if not 1024 <= first <= last <= 65_535:
        raise SettingsError(
            f"call_relay_ports: expected ports 1024 to 65535 in order, got {value!r}"
        )
    return first, last


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``IP:PORT`` (``[::1]:PORT`` for IPv6) into a host and port."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise SettingsError(f"listen: expected IP:PORT, got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise SettingsError(f"listen: port out of range in {value!r}")
    return host.strip("[]"), port


def default_base_url(domain: str, https: bool, port: int | None) -> str:
    """The public base URL for a domain, omitting the scheme's default port."""
    scheme = "https" if https else "http"
    if port is None or (https and port == 443) or (not https and port == 80):
        return f"{scheme}://{domain}"
    return f"{scheme}://{domain}:{port}"


def _coerce_env(key: str, raw: str) -> Any:
    types = _KEY_TYPES[key]
    if bool in types:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"XNODE_{key.upper()}: expected true or false, got {raw!r}")
    if int in types:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"XNODE_{key.upper()}: expected a number, got {raw!r}") from None
    return raw or None if type(None) in types else raw


def _validate(values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        types = _KEY_TYPES[key]
        # bool is a subclass of int; refuse `max_upload_mb = true`.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise SettingsError(f"{key}: expected {names}, got {value!r}")
    if not values.get("domain"):
        raise SettingsError("domain: must be set")
    domain = values["domain"]
    if "/" in domain or " " in domain:
        raise SettingsError(f"domain: expected a host name like example.org, got {domain!r}")
    base_url = values.get("base_url")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"base_url: must start with http:// or https://, got {base_url!r}")
    if values.get("registration", "approval") not in REGISTRATION_MODES:
        raise SettingsError(
            f"registration: expected one of {', '.join(REGISTRATION_MODES)}, "
            f"got {values['registration']!r}"
        )
    max_mb = values.get("max_upload_mb", 8)
    if not 1 <= max_mb <= 1024:
        raise SettingsError(f"max_upload_mb: expected 1 to 1024, got {max_mb}")
    if values.get("api_rate_limit", 300) < 0:
        raise SettingsError(f"api_rate_limit: expected 0 or more, got {values['api_rate_limit']}")
    database_url = values.get("database_url")
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"database_url: expected a postgresql:// URL, got {database_url.split('@')[-1]!r}"
        )
    senders = values.get("delivery_processes", 0)
    if not 0 <= senders <= MAX_DELIVERY_PROCESSES:
        raise SettingsError(
            f"delivery_processes: expected 0 to {MAX_DELIVERY_PROCESSES}, got {senders}"
        )
    if not 0 <= values.get("helper_idle_stop_s", 300) <= 86_400:
        raise SettingsError(
            f"helper_idle_stop_s: expected 0 to 86400 seconds, got {values['helper_idle_stop_s']}"
        )
    if not 16 <= values.get("remote_media_cache_mb", 256) <= 1_000_000:
        raise SettingsError(
            "remote_media_cache_mb: expected 16 or more (megabytes), got "
            f"{values['remote_media_cache_mb']}"
        )
    if not 0 <= values.get("call_relay_port", 3478) <= 65_535:
        raise SettingsError(
            f"call_relay_port: expected 0 to 65535, got {values['call_relay_port']}"
        )
    address = values.get("call_relay_address")
    if address is not None:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise SettingsError(
                f"call_relay_address: expected a public IPv4 address, got {address!r}"
            ) from None
    if values.get("call_relay_ports"):
        parse_port_range(values["call_relay_ports"])
    if bool(values.get("turn_server")) != bool(values.get("turn_secret")):
        raise SettingsError("turn_server and turn_secret must be set together")
    if values.get("turn_server"):
        parse_host_port(values["turn_server"], "turn_server")
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        raise SettingsError("tls_cert and tls_key must be set together")
    if "listen" in values:
        parse_listen(values["listen"])


def settings_from_mapping(
    data_dir: Path, values: Mapping[str, Any], secret_key: bytes = b""
) -> Settings:
    """Build validated settings from a mapping of file keys.

    Raises:
        SettingsError: for an unknown key, a wrong type or an invalid value.
    """
    unknown = sorted(set(values) - set(_KEY_TYPES))
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    _validate(values)
    merged = dict(values)
    if not merged.get("base_url"):
        merged["base_url"] = default_base_url(merged["domain"], https=True, port=None)
    merged["base_url"] = merged["base_url"].rstrip("/")
    return Settings(data_dir=data_dir, secret_key=secret_key, **merged)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as ``XNODE_<KEY>`` environment variables.

    Raises:
        SettingsError: for an ``XNODE_`` variable that names no setting.
    """
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("XNODE_") or name in NON_SETTING_ENV:
            continue
        key = name[len("XNODE_") :].lower()
        if key not in _KEY_TYPES:
            raise SettingsError(f"unknown setting in environment: {name}")
        overrides[key] = _coerce_env(key, raw)
    return overrides


def load_settings(data_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Load ``DATA/xnode.toml`` and the secret key, applying environment overrides.

    Raises:
        SettingsError: if the node is not initialised or the configuration is invalid.
    """
    data_dir = data_dir.resolve()
    config_path = data_dir / CONFIG_FILE
    if not config_path.is_file():
        raise SettingsError(f"no node at {data_dir} (missing {CONFIG_FILE}); run 'xnode init'")
    try:
        values = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{config_path}: invalid TOML: {exc}") from None
    values.update(env_overrides(os.environ if environ is None else environ))
    secret_path = data_dir / SECRET_FILE
    try:
        secret = bytes.fromhex(secret_path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise SettingsError(f"{secret_path}: missing or unreadable secret key") from None
    if len(secret) < 32:
        raise SettingsError(f"{secret_path}: secret key too short")
    return settings_from_mapping(data_dir, values, secret_key=secret)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(values: Mapping[str, Any]) -> str:
    """Render settings as the contents of an ``xnode.toml`` file."""
    lines = ["# xnode configuration. See docs/admin.md for every key.", ""]
    for key in _KEY_TYPES:
        if key in values and values[key] is not None:
            lines.append(f"{key} = {_toml_value(values[key])}")
    return "\n".join(lines) + "\n"
