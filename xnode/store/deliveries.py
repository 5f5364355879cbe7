"""SQL for outgoing deliveries (one row per activity and inbox) and per-host delivery health.

A delivery row is ``pending`` until the peer answers 2xx (``delivered``) or we
give up (``failed``). There is no "sending" state on purpose: a row being sent
is still ``pending``, so after a crash it is simply due again and re-sent; the
receiver drops the duplicate by activity id.

Several processes send from one queue (issue 18): :func:`due` claims the rows it
returns (``claimed_by`` the process, ``claimed_until`` a lease) in the statement that
picks them, so no other process takes them; writing the outcome ends the lease (and leaves
``claimed_by`` naming the process that made the attempt), and a lease that ran out (its
process died) makes the row due for anyone again.

The ``hosts`` table keeps what we learnt per host: consecutive failures and
the circuit breaker, a Retry-After pause, and which signature scheme worked.

Also here: the few audience queries the outbox needs (remote followers, the
row ids of likes, follows and blocks), because they exist to address deliveries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from xnode.store.database import Connection, Database, Row
from xnode.store.shards import Shard, host_shard


def _shard_sql(shard: Shard | None, column: str = "shard") -> tuple[str, list[int]]:
    """A condition (with its leading AND) keeping one process's rows; none for None."""
    if shard is None or shard[1] <= 1:
        return "", []
    return f" AND {column} % ? = ?", [shard[1], shard[0]]


def host_of(url: str) -> str:
    """The ``host[:port]`` of a URL, lower case, as deliveries and hosts are keyed."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Delivery:
    """One activity on its way to one inbox."""

    id: int
    activity_id: str
    sender_account_id: int | None
    post_id: int | None
    inbox_url: str
    host: str
    payload: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        """Build from a ``deliveries`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class NewDelivery:
    """A row to insert."""

    activity_id: str
    sender_account_id: int | None
    post_id: int | None
    inbox_url: str
    payload: str


@dataclass(frozen=True)
class HostHealth:
    """What we know about delivering to one host."""

    host: str
    consecutive_failures: int
    circuit_open_until: float | None
    retry_after_until: float | None
    signature_scheme: str | None
    last_success_at: float | None
    last_failure_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> HostHealth:
        """Build from a ``hosts`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


class HostStatus(NamedTuple):
    """How one post's deliveries to one server stand (shown to the author)."""

    host: str
    state: str
    attempts: int
    last_error: str | None


class HostSummary(NamedTuple):
    """The queue as seen from one host (shown to admins)."""

    host: str
    pending: int
    failed: int
    delivered: int
    consecutive_failures: int
    circuit_open_until: float | None
    retry_after_until: float | None
    last_error: str | None


# --- deliveries --------------------------------------------------------------------


async def insert_many(
    db: Database, rows: Sequence[NewDelivery], now: float, *, resend: bool = False,
    claim: Claim | None = None,
) -> dict[int, NewDelivery]:
    """Queue deliveries, due now.

    An (activity, inbox) pair already queued is left alone, unless ``resend``:
    then a finished one (delivered or failed) starts over, for a peer that
    evidently lost it (e.g. a repeated Follow whose Accept went missing).
    ``claim``: as in :func:`insert_rows` (not with ``resend``).

    Returns:
        The rows added (or, with ``resend``, re-armed), by their new ids.
    """
    if not rows:
        return {}
    async with db.transaction() as conn:
        if resend:
            return await _rearm(conn, rows, now)
        return await insert_rows(conn, rows, now, claim)


class Claim(NamedTuple):
    """A process's hold on queue rows: its id, and when the hold lapses (a lease)."""

    owner: str
    until: float


def _insert_params(
    rows: Sequence[NewDelivery], now: float, claim: Claim | None = None
) -> list[tuple[Any, ...]]:
    owner, until = claim if claim is not None else (None, None)
    return [
        (row.activity_id, row.sender_account_id, row.post_id, row.inbox_url, host,
         host_shard(host), row.payload, now, now, owner, until)
        for row, host in ((row, host_of(row.inbox_url)) for row in rows)
    ]  # fmt: skip


_INSERT_INTO = (
    "INSERT INTO deliveries (activity_id, sender_account_id, post_id, inbox_url, host,"
    " shard, payload, state, attempts, next_attempt_at, created_at, claimed_by, claimed_until)"
)
_VALUES = "(?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)"
_INSERT = f"{_INSERT_INTO} VALUES {_VALUES} ON CONFLICT (activity_id, inbox_url)"
# Rows per multi-row INSERT: 11 parameters each, well inside SQLite's 32,766 and
# PostgreSQL's 65,535 parameters a statement.
_INSERT_CHUNK = 1000


async def insert_rows(
    conn: Connection, rows: Sequence[NewDelivery], now: float, claim: Claim | None = None
) -> dict[int, NewDelivery]:
    """Queue deliveries inside the caller's transaction (pairs already queued are skipped).

    With ``claim`` the rows are born claimed by that process (it sends them itself, from
    memory, without reading them back), so no other process picks them meanwhile.

    Returns:
        The rows added, by their new ids.
    """
    if not rows:
        return {}
    by_inbox = {(row.activity_id, row.inbox_url): row for row in rows}
    # A few statements for the lot (a fan-out queues thousands), each naming the rows
    # it added (RETURNING): reading the ids back as "those above the old largest id"
    # would be wrong the moment a second writer inserts at the same time.
    params = _insert_params(rows, now, claim)
    found: list[tuple[int, str, str]] = []
    for start in range(0, len(params), _INSERT_CHUNK):
        chunk = params[start : start + _INSERT_CHUNK]
        values = ", ".join([_VALUES] * len(chunk))
        cursor = await conn.execute(
            f"{_INSERT_INTO} VALUES {values} ON CONFLICT (activity_id, inbox_url) DO NOTHING"
            " RETURNING id, activity_id, inbox_url",
            [value for param in chunk for value in param],
        )
        found.extend((row[0], row[1], row[2]) for row in await cursor.fetchall())
    found.sort()
    return {row[0]: by_inbox[(row[1], row[2])] for row in found}


async def _rearm(
    conn: Connection, rows: Sequence[NewDelivery], now: float
) -> dict[int, NewDelivery]:
    """Queue deliveries, starting over those already delivered or given up on."""
    by_inbox = {(row.activity_id, row.inbox_url): row for row in rows}
    added: dict[int, NewDelivery] = {}
    for param in _insert_params(rows, now):
        cursor = await conn.execute(
            f"{_INSERT} DO UPDATE SET state = 'pending', attempts = 0,"
            " next_attempt_at = excluded.next_attempt_at, payload = excluded.payload,"
            " last_error = NULL WHERE deliveries.state <> 'pending' RETURNING id",
            param,
        )
        for (delivery_id,) in await cursor.fetchall():
            added[delivery_id] = by_inbox[(param[0], param[3])]
    return added


async def due(
    db: Database, now: float, *, per_host: int, limit: int, exclude: Iterable[int] = (),
    shard: Shard | None = None, claim: Claim | None = None,
) -> list[tuple[Delivery, int]]:
    """Claim pending deliveries due now whose host is not paused; with the host's failure count.

    At most ``per_host`` rows per host come back (oldest due first), so one
    host with a huge backlog cannot crowd every other host out of a batch.
    A row qualifies when nobody holds it, its lease ran out, or ``claim.owner``
    holds it already (rows read ahead earlier and not sent yet are read again, and
    their lease renewed). The rows come back claimed for ``claim``.

    Args:
        now: The current time.
        per_host: Rows per host at most.
        limit: Rows in all at most.
        exclude: Ids already being sent.
        shard: Only this delivery process's rows (None: all).
        claim: Who claims the rows, until when (None: a look that holds nothing,
            for tests and tools: the lease ends at ``now``).
    """
    if claim is None:
        claim = Claim("", now)
    skip = list(exclude)
    skip_sql = f" AND d.id NOT IN ({', '.join('?' for _ in skip)})" if skip else ""
    shard_sql, shard_params = _shard_sql(shard, "d.shard")
    # PostgreSQL: several processes claim at once. The rows are locked by a plain
    # SELECT ... FOR UPDATE SKIP LOCKED (not allowed with the window function, hence the
    # separate level), which re-checks the claim on the row's latest version: a row
    # another process claimed since this statement's snapshot is not taken twice, and
    # one it is claiming right now is skipped rather than waited for. SQLite runs one
    # writer at a time, so the same statement without the lock is already atomic.
    shared = db.dialect == "postgres"
    lock = " FOR UPDATE SKIP LOCKED" if shared else ""
    # The LIMIT applies after the lock's skipping (PostgreSQL limits the locked rows),
    # so the candidates must not be cut to ``limit`` first: two processes reading at
    # once would pick the same first rows, and the one finding them locked would get
    # none at all. SQLite has no second reader to leave rows to: it cuts early, which
    # keeps the id list small.
    early_limit = "" if shared else " LIMIT ?"
    # The ranking sees only (id, host, due time); the whole rows, payload
    # included, are read for the chosen ids alone. Ranking entire rows made
    # SQLite sort every pending payload on every call: 80 ms with 10,000
    # pending deliveries, against about 20 ms this way (issue 4).
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE id IN ("
            " SELECT id FROM deliveries WHERE id IN ("
            "  SELECT id FROM (SELECT d.id, d.next_attempt_at, ROW_NUMBER() OVER"
            "  (PARTITION BY d.host ORDER BY d.next_attempt_at, d.id) AS host_rank"
            "  FROM deliveries d LEFT JOIN hosts h ON h.host = d.host"
            "  WHERE d.state = 'pending' AND d.next_attempt_at <= ?"
            "  AND (d.claimed_until IS NULL OR d.claimed_until <= ? OR d.claimed_by = ?)"
            "  AND (h.circuit_open_until IS NULL OR h.circuit_open_until <= ?)"
            f"  AND (h.retry_after_until IS NULL OR h.retry_after_until <= ?){skip_sql}"
            f"{shard_sql}) ranked WHERE host_rank <= ? ORDER BY next_attempt_at, id{early_limit})"
            " AND state = 'pending'"
            " AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_by = ?)"
            f" ORDER BY next_attempt_at, id LIMIT ?{lock})"
            " RETURNING *, COALESCE((SELECT h.consecutive_failures FROM hosts h"
            " WHERE h.host = deliveries.host), 0) AS host_failures",
            [claim.owner, claim.until, now, now, claim.owner, now, now, *skip, *shard_params,
             per_host, *([] if shared else [limit]), now, claim.owner, limit],
        )
    # RETURNING promises no order.
    chosen = sorted(rows, key=lambda row: (row["next_attempt_at"], row["id"]))
    return [(Delivery.from_row(row), row["host_failures"]) for row in chosen]


async def release(db: Database, owner: str) -> int:
    """Give up every claim of ``owner`` on rows still pending (it stops sending); how many."""
    return await db.execute(
        "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL"
        " WHERE claimed_by = ? AND state = 'pending'",
        (owner,),
    )


async def release_rows(db: Database, owner: str, row_ids: Iterable[int]) -> int:
    """Give up ``owner``'s claims on these rows, if still pending and still its own; how
    many (rows queued claimed by a process that stopped sending before it could send them)."""
    ids = list(row_ids)
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ids)
    return await db.execute(
        "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL"
        f" WHERE claimed_by = ? AND state = 'pending' AND id IN ({marks})",
        (owner, *ids),
    )


async def next_wake_at(db: Database, now: float, shard: Shard | None = None) -> float | None:
    """The earliest future moment something may become due (a row, or a host's pause ending)."""
    shard_sql, shard_params = _shard_sql(shard)
    row_at = await db.fetchvalue(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'"
        f" AND next_attempt_at > ?{shard_sql}",
        (now, *shard_params),
    )
    host_at = await db.fetchvalue(
        "SELECT MIN(t) FROM (SELECT circuit_open_until AS t FROM hosts WHERE circuit_open_until > ?"
        " UNION ALL SELECT retry_after_until FROM hosts WHERE retry_after_until > ?) pauses",
        (now, now),
    )
    times = [t for t in (row_at, host_at) if t is not None]
    return min(times) if times else None


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt, as it is written back."""

    delivery_id: int
    host: str
    state: str
    attempts: int
    status: int | None
    error: str | None
    next_attempt_at: float
    now: float


@dataclass(frozen=True)
class Outcome:
    """An attempt with what it says about its host, as :func:`record_attempts` writes it.

    Attributes:
        attempt: The row's new state.
        host_up: True: the host answered (failures reset, circuit closed);
            False: it did not or answered 5xx (one more failure, and the circuit
            opens per the breaker policy); None: no change.
        retry_after_until: The host asked for a pause until then (429/503).
        signature_scheme: The scheme the host just accepted for the first time
            (or instead of the one remembered), to remember; None: no news.
    """

    attempt: Attempt
    host_up: bool | None
    retry_after_until: float | None
    signature_scheme: str | None = None


_RECORD_ATTEMPT = (
    "UPDATE deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?,"
    # The lease ends; claimed_by stays, saying which process made the attempt.
    " next_attempt_at = ?, claimed_until = NULL,"
    " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
    # Only a row still pending: one an admin cancelled meanwhile (a domain
    # suspension) stays cancelled.
    " WHERE id = ? AND state = 'pending'"
)
_HOST_ANSWERED = (
    "INSERT INTO hosts (host, consecutive_failures, last_success_at) VALUES (?, 0, ?)"
    " ON CONFLICT (host) DO UPDATE SET consecutive_failures = 0, circuit_open_until = NULL,"
    " last_success_at = excluded.last_success_at"
)


async def record_attempts(
    db: Database,
    outcomes: Sequence[Outcome],
    circuit_for: Callable[[int, float], float | None],
) -> None:
    """Write many attempts' outcomes and their hosts' health in one transaction.

    A fan-out finishes hundreds of deliveries a second; one transaction each
    (begin, savepoint, three statements, commit) was a third of the delivery
    worker's time (issue 4). The rows go in with one ``executemany``; the
    hosts that answered are reset together, in order with any failures, so a
    host's last word in the batch is the one that stands.

    Args:
        outcomes: In the order the attempts finished.
        circuit_for: The breaker policy: (consecutive failures, now) -> open until.
    """
    if not outcomes:
        return
    async with db.transaction() as conn:
        await conn.executemany(_RECORD_ATTEMPT, [
            (a.state, a.attempts, a.status, a.error, a.next_attempt_at, a.state, a.now,
             a.delivery_id)
            for a in (outcome.attempt for outcome in outcomes)
        ])  # fmt: skip
        answered: dict[str, float] = {}  # host -> when, not yet written
        for outcome in outcomes:
            a = outcome.attempt
            if outcome.retry_after_until is None:
                if outcome.host_up is True:
                    answered[a.host] = a.now
                if outcome.host_up is not False:
                    continue
            # Trouble: the successes before it are written first, so order holds.
            if answered:
                await conn.executemany(_HOST_ANSWERED, sorted(answered.items()))
                answered.clear()
            await _host_trouble(conn, outcome, circuit_for)
        if answered:
            # By host: processes writing the same hosts' rows lock them in one order,
            # not in a deadlock (PostgreSQL, several processes sending).
            await conn.executemany(_HOST_ANSWERED, sorted(answered.items()))
        # A fan-out's first contact with a thousand hosts learns a thousand schemes:
        # written here, with the outcomes, rather than in a transaction each.
        schemes = {o.attempt.host: o.signature_scheme for o in outcomes if o.signature_scheme}
        if schemes:
            await conn.executemany(_REMEMBER_SCHEME, sorted(schemes.items()))


async def _host_trouble(
    conn: Any, outcome: Outcome, circuit_for: Callable[[int, float], float | None]
) -> None:
    """One failure more for the host (and its breaker), or the pause it asked for."""
    a = outcome.attempt
    await conn.execute("INSERT INTO hosts (host) VALUES (?) ON CONFLICT (host) DO NOTHING",
                       (a.host,))
    if outcome.host_up is True:  # answered, but asked for a pause (e.g. 429)
        await conn.executemany(_HOST_ANSWERED, [(a.host, a.now)])
    elif outcome.host_up is False:
        async with conn.execute(
            "UPDATE hosts SET consecutive_failures = consecutive_failures + 1,"
            " last_failure_at = ? WHERE host = ? RETURNING consecutive_failures",
            (a.now, a.host),
        ) as cursor:
            row = await cursor.fetchone()
        failures = row[0] if row else 1
        await conn.execute(
            "UPDATE hosts SET circuit_open_until = ? WHERE host = ?",
            (circuit_for(failures, a.now), a.host),
        )
    if outcome.retry_after_until is not None:
        await conn.execute(
            "UPDATE hosts SET retry_after_until = ? WHERE host = ?",
            (outcome.retry_after_until, a.host),
        )


async def retry_host(db: Database, host: str, now: float) -> int:
    """Make a host's pending and failed deliveries due now and close its circuit.

    Failed rows start a fresh schedule (attempts back to 0): the admin asked
    for another go, which should not be used up by the old count.

    Returns:
        How many deliveries were reset.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE deliveries SET next_attempt_at = ?,"
            " attempts = CASE WHEN state = 'failed' THEN 0 ELSE attempts END, state = 'pending'"
            " WHERE host = ? AND state IN ('pending', 'failed')",
            (now, host),
        )
        await conn.execute(
            "UPDATE hosts SET consecutive_failures = 0, circuit_open_until = NULL,"
            " retry_after_until = NULL WHERE host = ?",
            (host,),
        )
        return cursor.rowcount


_STATE_RANK = {"pending": 0, "failed": 1, "delivered": 2}


async def status_for_post(db: Database, post_id: int) -> list[HostStatus]:
    """Per server, how a post's deliveries stand.

    A server shows ``pending`` while anything is still on its way there, else
    ``failed`` if something could not be delivered, else ``delivered``; the
    error shown is that of the row deciding the state.
    """
    rows = await db.fetchall(
        "SELECT host, state, attempts, last_error FROM deliveries WHERE post_id = ?"
        " ORDER BY host, id DESC",
        (post_id,),
    )
    best: dict[str, HostStatus] = {}
    for row in rows:
        current = best.get(row["host"])
        candidate = HostStatus(row["host"], row["state"], row["attempts"], row["last_error"])
        if current is None or _STATE_RANK[candidate.state] < _STATE_RANK[current.state]:
            best[row["host"]] = candidate
    return sorted(best.values(), key=lambda s: (_STATE_RANK[s.state], s.host))


async def queue_summary(db: Database) -> list[HostSummary]:
    """Per host with queued or failed deliveries: counts and health, the busiest first."""
    rows = await db.fetchall(
        "SELECT d.host,"
        " COUNT(CASE WHEN d.state = 'pending' THEN 1 END) AS pending,"
        " COUNT(CASE WHEN d.state = 'failed' THEN 1 END) AS failed,"
        " COUNT(CASE WHEN d.state = 'delivered' THEN 1 END) AS delivered,"
        " COALESCE(MAX(h.consecutive_failures), 0) AS consecutive_failures,"
        " MAX(h.circuit_open_until) AS circuit_open_until,"
        " MAX(h.retry_after_until) AS retry_after_until,"
        " (SELECT last_error FROM deliveries e WHERE e.host = d.host AND e.state <> 'delivered'"
        "  AND e.last_error IS NOT NULL ORDER BY e.id DESC LIMIT 1) AS last_error"
        " FROM deliveries d LEFT JOIN hosts h ON h.host = d.host"
        " GROUP BY d.host HAVING COUNT(CASE WHEN d.state <> 'delivered' THEN 1 END) > 0"
        " ORDER BY pending DESC, failed DESC, d.host",
    )
    return [HostSummary(*tuple(row)) for row in rows]


async def inboxes_of(db: Database, activity_id: str) -> list[str]:
    """The inboxes an activity was queued for (the original audience of a later Delete)."""
    rows = await db.fetchall(
        "SELECT inbox_url FROM deliveries WHERE activity_id = ? ORDER BY id", (activity_id,)
    )
    return [row[0] for row in rows]


async def inboxes_of_sender(db: Database, account_id: int) -> list[str]:
    """Every inbox an account ever delivered to (for a Delete of the account itself)."""
    rows = await db.fetchall(
        "SELECT DISTINCT inbox_url FROM deliveries WHERE sender_account_id = ?", (account_id,)
    )
    return [row[0] for row in rows]


async def payload_of(db: Database, activity_id: str) -> dict[str, Any] | None:
    """An activity we queued, as JSON (to embed it in an Undo)."""
    payload = await db.fetchvalue(
        "SELECT payload FROM deliveries WHERE activity_id = ? ORDER BY id LIMIT 1", (activity_id,)
    )
    return None if payload is None else json.loads(payload)


async def last_sent(
    db: Database, sender_id: int, inbox_url: str, kind: str, object_id: str, *, scan: int = 200
) -> dict[str, Any] | None:
    """The latest ``kind`` activity a sender queued for an inbox about ``object_id``.

    Undo must embed the activity it takes back, but the local row (like,
    follow, block) is gone by then; the queued payload still has it. Filtered
    in Python over the latest ``scan`` rows to keep the SQL portable (no JSON
    functions).
    """
    rows = await db.fetchall(
        "SELECT payload FROM deliveries WHERE sender_account_id = ? AND inbox_url = ?"
        " ORDER BY id DESC LIMIT ?",
        (sender_id, inbox_url, scan),
    )
    for row in rows:
        activity = json.loads(row[0])
        if activity.get("type") == kind and activity.get("object") == object_id:
            return dict(activity)
    return None


async def purge_finished(db: Database, before: float) -> int:
    """Forget delivered and failed rows created before ``before``; returns how many."""
    return await db.execute(
        "DELETE FROM deliveries WHERE state IN ('delivered', 'failed') AND created_at < ?",
        (before,),
    )


# --- hosts -------------------------------------------------------------------------


async def host_health(db: Database, host: str) -> HostHealth | None:
    """A host's delivery health, if we ever delivered there (one row by key, inline)."""
    row = await db.lookup("SELECT * FROM hosts WHERE host = ?", (host,))
    return None if row is None else HostHealth.from_row(row)


async def signature_scheme(db: Database, host: str) -> str | None:
    """The signature scheme that last worked for this host, if known."""
    scheme: str | None = await db.lookup_value(
        "SELECT signature_scheme FROM hosts WHERE host = ?", (host,)
    )
    return scheme


async def signature_schemes(db: Database, hosts: Sequence[str]) -> dict[str, str | None]:
    """The remembered scheme of each of ``hosts`` that has a ``hosts`` row."""
    found: dict[str, str | None] = {}
    for start in range(0, len(hosts), 500):  # well under SQLite's parameter limit
        chunk = hosts[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = await db.fetchall(
            f"SELECT host, signature_scheme FROM hosts WHERE host IN ({marks})", chunk
        )
        found.update((row[0], row[1]) for row in rows)
    return found


_REMEMBER_SCHEME = (
    "INSERT INTO hosts (host, signature_scheme) VALUES (?, ?)"
    " ON CONFLICT (host) DO UPDATE SET signature_scheme = excluded.signature_scheme"
)


async def remember_scheme(db: Database, host: str, scheme: str) -> None:
    """Remember which signature scheme a host accepted."""
    await db.execute(_REMEMBER_SCHEME, (host, scheme))


# --- audiences ---------------------------------------------------------------------


async def remote_follower_inboxes(db: Database, account_id: int) -> list[str]:
    """The inboxes that reach an account's remote followers, each once, shared ones first.

    A follower on a server with a shared inbox is reached there (as Mastodon
    does), so a thousand followers on one server make one inbox. Deleted and
    suspended accounts are left out. Worked out in SQL: building ten thousand
    accounts to read one column of each took 150-200 ms per post (issue 4).
    """
    rows = await db.fetchall(
        "SELECT inbox FROM (SELECT COALESCE(NULLIF(a.shared_inbox_url, ''),"
        " NULLIF(a.inbox_url, '')) AS inbox, MIN(f.id) AS first"
        " FROM follows f JOIN accounts a ON a.id = f.account_id"
        " WHERE f.target_account_id = ? AND f.state = 'accepted' AND a.domain IS NOT NULL"
        " AND a.deleted_at IS NULL AND a.suspended_at IS NULL GROUP BY inbox) AS inboxes"
        " WHERE inbox IS NOT NULL ORDER BY first",
        (account_id,),
    )
    return [row[0] for row in rows]


async def edge_id(db: Database, table: str, account_id: int, target: int) -> int | None:
    """The row id of a like (``target`` is the post) or block (``target`` is the account)."""
    column = {"likes": "post_id", "blocks": "target_account_id"}[table]
    row_id: int | None = await db.fetchvalue(
        f"SELECT id FROM {table} WHERE account_id = ? AND {column} = ?", (account_id, target)
    )
    return row_id
