"""SQL for domain blocks: servers an admin suspended (no contact at all) or silenced.

A block on ``example.org`` also covers its subdomains (``social.example.org``),
as on Mastodon: a hostile operator can mint subdomains for free.

* ``suspend``: nothing is delivered there and nothing from there is accepted.
  Adding one cancels the deliveries still queued for that domain.
* ``silence``: federation goes on, but its accounts' posts stay out of the
  public timelines (followers still see them at home).

Every inbox POST and every actor lookup asks whether a host is blocked, so the
block list (short: admins block domains, not accounts) is read whole and kept
in memory for ``CACHE_S``. Changes written through the same :class:`Database`
(or through this module's functions, from any) take effect at once; changes by
another process within ``CACHE_S`` on SQLite (the CLI while the node serves), and
on PostgreSQL as soon as the commit's ``NOTIFY`` reaches the other serving processes
(``Database.table_version``): a few milliseconds, which is not "at once". So the inbox's
write of an activity checks the table itself as well (:func:`suspended_condition`,
spliced into :func:`xnode.store.inbox_queue.enqueue_activity`): an activity from a
server blocked through another process an instant earlier is not queued, and
:func:`any_suspended_now` then tells the door to refuse it.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from federation.objects import origin_of
from xnode.errors import InvalidInput
from xnode.store.database import Database, Row

SEVERITIES = ("suspend", "silence")
MAX_REASON_CHARS = 1000

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

CACHE_S = 1.0
"""How long the in-memory block list is trusted before it is read again."""


@dataclass(frozen=True)
class _Cached:
    generation: tuple[int, int]  # (this module's changes, the database's writes to the table)
    read_at: float  # time.monotonic()
    severities: dict[str, str]  # domain -> severity


# Bumped by every change made in this process: all databases' caches go stale at once
# (a CLI command in tests opens its own Database on the same file).
_generation = 0
_cache: weakref.WeakKeyDictionary[Database, _Cached] = weakref.WeakKeyDictionary()


def _invalidate() -> None:
    global _generation
    _generation += 1


async def _severities(db: Database) -> dict[str, str]:
    """Every block as domain -> severity, from memory when recent enough."""
    cached = _cache.get(db)
    now = time.monotonic()
    generation = (_generation, db.table_version("domain_blocks"))
    if cached is not None and cached.generation == generation and now - cached.read_at < CACHE_S:
        return cached.severities
    rows = await db.fetchall("SELECT domain, severity FROM domain_blocks")
    severities = {row[0]: row[1] for row in rows}
    if generation == (_generation, db.table_version("domain_blocks")):  # unchanged meanwhile
        _cache[db] = _Cached(generation, now, severities)
    return severities


@dataclass(frozen=True)
class DomainBlock:
    """An admin's decision about one remote domain."""

    domain: str
    severity: str
    reason: str
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> DomainBlock:
        """Build from a ``domain_blocks`` row."""
        return cls(row["domain"], row["severity"], row["reason"], row["created_at"])


def normalize_domain(text: str) -> str:
    """The canonical form of a domain an admin typed: lower case, ASCII (IDNA), no port.

    Accepts ``example.org``, ``Example.ORG.``, ``*.example.org``, ``@user@example.org``
    or a URL, because admins paste what they have at hand.

    Raises:
        InvalidInput: it is not a domain name.
    """
    value = text.strip().lower()
    if "://" in value:
        value = urlsplit(value).hostname or ""
    value = value.rsplit("@", 1)[-1].removeprefix("*.").rstrip(".")
    if value.startswith("[") or re.fullmatch(r"[0-9.:]+", value or "x"):
        # IP literals have no subdomains to cover; a hostname block is what is meant.
        raise InvalidInput("Give a domain name such as example.org.", field="domain")
    value = value.split(":", 1)[0]
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput("That is not a valid domain name.", field="domain") from None
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidInput("Give a domain name such as example.org.", field="domain")
    return value


def hostname_of(host: str) -> str:
    """The name part of a ``host[:port]`` (as stored in ``deliveries.host``), lower case."""
    return (urlsplit(f"//{host}").hostname or host).lower()


def domain_covers(domain: str, host: str) -> bool:
    """Whether a block on ``domain`` applies to ``host`` (itself or a subdomain; port ignored)."""
    name = hostname_of(host)
    return name == domain or name.endswith("." + domain)


def _suffixes(host: str) -> list[str]:
    """``a.b.example.org`` → itself, ``b.example.org``, ``example.org``, ``org``."""
    labels = hostname_of(host).split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def author_blocked_sql(account_column: str) -> str:
    """A SQL condition true when the account in ``account_column`` is on a blocked domain.

    Matches the domain itself, its subdomains and ``domain:port`` forms. Used by
    the public timelines to leave silenced (and suspended) servers out.
    """
    return (
        "EXISTS (SELECT 1 FROM accounts ba JOIN domain_blocks dbk ON ba.domain = dbk.domain"
        " OR ba.domain LIKE '%.' || dbk.domain OR ba.domain LIKE dbk.domain || ':%'"
        " OR ba.domain LIKE '%.' || dbk.domain || ':%'"
        f" WHERE ba.id = {account_column})"
    )


async def list_blocks(db: Database) -> list[DomainBlock]:
    """Every domain block, alphabetically."""
    rows = await db.fetchall("SELECT * FROM domain_blocks ORDER BY domain")
    return [DomainBlock.from_row(row) for row in rows]


async def get_block(db: Database, domain: str) -> DomainBlock | None:
    """The block on exactly this (normalised) domain, if any."""
    row = await db.lookup("SELECT * FROM domain_blocks WHERE domain = ?", (domain,))
    return None if row is None else DomainBlock.from_row(row)


async def severity_for(db: Database, host: str) -> str | None:
    """The strongest block covering ``host`` (``suspend`` beats ``silence``), if any."""
    severities = await _severities(db)
    if not severities:
        return None
    found = {severities[s] for s in _suffixes(host) if s in severities}
    for severity in SEVERITIES:  # strongest first
        if severity in found:
            return severity
    return None


async def url_is_suspended(db: Database, url: str | None) -> bool:
    """Whether the host of ``url`` (or a parent domain) is suspended on this node."""
    host = origin_of(url)
    return host is not None and await severity_for(db, host) == "suspend"


def suspended_condition(urls: Sequence[str | None]) -> tuple[str, list[str]]:
    """A SQL condition true when a host of ``urls`` (or a parent domain) is suspended,
    read from the table in the statement itself rather than from the cache, with its
    parameters (the hosts' suffixes, as :func:`severity_for` matches them)."""
    suffixes = sorted({s for url in urls if (host := origin_of(url)) for s in _suffixes(host)})
    if not suffixes:
        return "0 = 1", []
    marks = ", ".join("?" for _ in suffixes)
    return (
        "EXISTS (SELECT 1 FROM domain_blocks WHERE severity = 'suspend'"
        f" AND domain IN ({marks}))",
        suffixes,
    )


async def any_suspended_now(db: Database, *urls: str | None) -> bool:
    """Whether a host of ``urls`` (or a parent domain) is suspended, read from the table
    now (not the cache): for the rare moment the cache may be behind another process."""
    condition, params = suspended_condition(urls)
    return bool(await db.fetchvalue(f"SELECT {condition}", params))


async def suspended_domains(db: Database) -> list[str]:
    """Domains under a ``suspend`` block (a short list: read whole and matched in Python)."""
    return sorted(d for d, severity in (await _severities(db)).items() if severity == "suspend")


async def add_block(
    db: Database, domain: str, severity: str, reason: str, now: float
) -> tuple[DomainBlock, int]:
    """Block a domain, or change an existing block's severity and reason.

    A ``suspend`` block also marks the domain's pending deliveries failed, in
    the same transaction, so nothing more goes out once the admin has decided.

    Args:
        domain: What the admin typed; normalised here.
        severity: ``suspend`` or ``silence``.
        reason: A note for the admins (not sent anywhere).
        now: The current time.

    Returns:
        The block and how many queued deliveries it cancelled.

    Raises:
        InvalidInput: a bad domain, severity or over-long reason.
    """
    domain = normalize_domain(domain)
    if severity not in SEVERITIES:
        raise InvalidInput("Choose suspend or silence.", field="severity")
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"Keep the reason under {MAX_REASON_CHARS} characters.", field="reason"
        )
    hosts = await db.fetchall("SELECT DISTINCT host FROM deliveries WHERE state = 'pending'")
    covered = [row[0] for row in hosts if domain_covers(domain, row[0])]
    cancelled = 0
    _invalidate()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO domain_blocks (domain, severity, reason, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (domain) DO UPDATE SET severity = excluded.severity,"
            " reason = excluded.reason",
            (domain, severity, reason, now),
        )
        if severity == "suspend" and covered:
            marks = ", ".join("?" for _ in covered)
            cursor = await conn.execute(
                "UPDATE deliveries SET state = 'failed',"
                " last_error = 'domain suspended by an admin'"
                f" WHERE state = 'pending' AND host IN ({marks})",
                covered,
            )
            cancelled = cursor.rowcount
    _invalidate()  # again: a read during the transaction may have cached the old list
    block = await get_block(db, domain)
    assert block is not None
    return block, cancelled


async def remove_block(db: Database, domain: str) -> bool:
    """Lift the block on a domain; False if there was none."""
    removed = await db.execute(
        "DELETE FROM domain_blocks WHERE domain = ?", (normalize_domain(domain),)
    ) == 1
    _invalidate()
    return removed
