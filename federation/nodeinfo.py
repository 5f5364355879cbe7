"""NodeInfo: the ``/.well-known/nodeinfo`` links document and NodeInfo 2.0/2.1 documents.

Schema: https://nodeinfo.diaspora.software/ns/schema/2.1 (jhass/nodeinfo). We
publish 2.1 and read 2.0 and 2.1 leniently: real servers capitalise the software
name (Mobilizon), omit ``metadata`` (WordPress) or ``services``, and only list
older versions (Mobilizon's 1.1-only fixture).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

SCHEMA_REL_PREFIX: Final = "http://nodeinfo.diaspora.software/ns/schema/"
SCHEMA_21: Final = SCHEMA_REL_PREFIX + "2.1"
SCHEMA_20: Final = SCHEMA_REL_PREFIX + "2.0"
CONTENT_TYPE_21: Final = f'application/json; profile="{SCHEMA_21}#"'
SUPPORTED_VERSIONS: Final = ("2.1", "2.0")
_SOFTWARE_NAME: Final = re.compile(r"[a-z0-9-]+")


class NodeInfoError(ValueError):
    """A NodeInfo document that cannot be built or read."""


@dataclass(frozen=True)
class Usage:
    """Usage statistics published in NodeInfo."""

    users_total: int | None = None
    users_active_month: int | None = None
    users_active_halfyear: int | None = None
    local_posts: int | None = None
    local_comments: int | None = None


@dataclass(frozen=True)
class NodeInfo:
    """A parsed NodeInfo document."""

    version: str
    software_name: str
    software_version: str
    protocols: tuple[str, ...]
    open_registrations: bool
    usage: Usage
    repository: str | None = None
    homepage: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def speaks_activitypub(self) -> bool:
        """Whether the server lists ActivityPub among its protocols."""
        return "activitypub" in self.protocols


# --- building ------------------------------------------------------------------


def build_well_known(base_url: str) -> dict[str, Any]:
    """The ``/.well-known/nodeinfo`` document pointing at ``<base_url>/nodeinfo/2.1``."""
    return {"links": [{"rel": SCHEMA_21, "href": base_url.rstrip("/") + "/nodeinfo/2.1"}]}


def _count(name: str, value: int | None) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeInfoError(f"{name} must be a non-negative integer")
    return value


def build_nodeinfo(
    *,
    software_name: str,
    software_version: str,
    open_registrations: bool,
    usage: Usage,
    repository: str | None = None,
    homepage: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A NodeInfo 2.1 document for this node.

    Args:
        software_name: canonical name, lower-case letters, digits and hyphens.
        software_version: the software version string.
        open_registrations: whether anyone may sign up.
        usage: counts to publish (None counts are published as 0).
        repository: source repository URL, if any.
        homepage: software homepage URL, if any.
        metadata: free-form metadata (``nodeName``, ``nodeDescription``...).

    Raises:
        NodeInfoError: the name does not match the schema or a count is negative.
    """
    if not _SOFTWARE_NAME.fullmatch(software_name or ""):
        raise NodeInfoError("software name must match ^[a-z0-9-]+$")
    software: dict[str, str] = {"name": software_name, "version": software_version}
    if repository:
        software["repository"] = repository
    if homepage:
        software["homepage"] = homepage
    usage_doc: dict[str, Any] = {
        "users": {
            "total": _count("users_total", usage.users_total),
            "activeMonth": _count("users_active_month", usage.users_active_month),
            "activeHalfyear": _count("users_active_halfyear", usage.users_active_halfyear),
        },
        "localPosts": _count("local_posts", usage.local_posts),
    }
    if usage.local_comments is not None:
        usage_doc["localComments"] = _count("local_comments", usage.local_comments)
    return {
        "version": "2.1",
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": bool(open_registrations),
        "usage": usage_doc,
        "metadata": dict(metadata or {}),
    }


# --- reading -------------------------------------------------------------------


def parse_well_known(doc: Any) -> dict[str, str]:
    """Map of schema version → document URL from a ``/.well-known/nodeinfo`` document.

    Links with other relations (WordPress lists its relay actor there) are ignored.

    Raises:
        NodeInfoError: not an object with a ``links`` list.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("links"), list):
        raise NodeInfoError("a NodeInfo links document must have a links array")
    found: dict[str, str] = {}
    for link in doc["links"]:
        if not isinstance(link, Mapping):
            continue
        rel, href = link.get("rel"), link.get("href")
        if not isinstance(rel, str) or not isinstance(href, str):
            continue
        if not rel.startswith(SCHEMA_REL_PREFIX):
            continue
        try:
            parts = urlsplit(href)
        except ValueError:
            continue
        if parts.scheme in ("http", "https") and parts.hostname:
            found.setdefault(rel[len(SCHEMA_REL_PREFIX) :].rstrip("#"), href)
    return found


def pick_nodeinfo_url(doc: Any) -> str | None:
    """The URL of the newest NodeInfo version we read (2.1, then 2.0), or None."""
    links = parse_well_known(doc)
    for version in SUPPORTED_VERSIONS:
        if version in links:
            return links[version]
    return None


def _optional_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_nodeinfo(doc: Any) -> NodeInfo:
    """Read a NodeInfo 2.0 or 2.1 document.

    The software name is lower-cased (Mobilizon sends ``Mobilizon``); missing
    usage numbers become None rather than 0, so "unknown" stays distinguishable.

    Raises:
        NodeInfoError: not a NodeInfo document, an unsupported version, or required
            fields (software name/version, protocols) missing or of the wrong type.
    """
    if not isinstance(doc, Mapping):
        raise NodeInfoError("a NodeInfo document must be an object")
    version = doc.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise NodeInfoError(f"unsupported NodeInfo version {version!r}")
    software = doc.get("software")
    if not isinstance(software, Mapping):
        raise NodeInfoError("NodeInfo software must be an object")
    name, software_version = software.get("name"), software.get("version")
    if not isinstance(name, str) or not name.strip():
        raise NodeInfoError("NodeInfo software.name is missing")
    if not isinstance(software_version, str):
        raise NodeInfoError("NodeInfo software.version is missing")
    protocols = doc.get("protocols")
    if isinstance(protocols, Mapping):
        # NodeInfo 1.x shape ({"inbound": [...], "outbound": [...]}) seen from old servers.
        protocols = [*protocols.get("inbound", []), *protocols.get("outbound", [])]
    if not isinstance(protocols, list):
        raise NodeInfoError("NodeInfo protocols must be an array")
    usage = doc.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    users = usage.get("users")
    users = users if isinstance(users, Mapping) else {}
    metadata = doc.get("metadata")
    return NodeInfo(
        version=version,
        software_name=name.strip().lower(),
        software_version=software_version,
        protocols=tuple(dict.fromkeys(p.lower() for p in protocols if isinstance(p, str))),
        open_registrations=doc.get("openRegistrations") is True,
        usage=Usage(
            users_total=_optional_count(users.get("total")),
            users_active_month=_optional_count(users.get("activeMonth")),
            users_active_halfyear=_optional_count(users.get("activeHalfyear")),
            local_posts=_optional_count(usage.get("localPosts")),
            local_comments=_optional_count(usage.get("localComments")),
        ),
        repository=_optional_str(software.get("repository")),
        homepage=_optional_str(software.get("homepage")),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
    )
