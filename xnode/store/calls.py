"""SQL for calls and their participants (tables from ``m009_calls``)."""

from __future__ import annotations

from collections.abc import Iterable

from xnode.calls.models import Call, Participant
from xnode.store import node_settings
from xnode.store.database import Connection, Database

RELAY_REPORT_KEY = "call_relay_report"


async def insert_call(
    conn: Connection, *, call_id: int, uri: str, initiator_id: int,
    conversation_id: int | None, media: str, now: float,
) -> None:  # fmt: skip
    """A new call, ringing."""
    await conn.execute(
        "INSERT INTO calls (id, uri, initiator_id, conversation_id, media, state, created_at)"
        " VALUES (?, ?, ?, ?, ?, 'ringing', ?)",
        (call_id, uri, initiator_id, conversation_id, media, now),
    )


async def insert_participants(
    conn: Connection, call_id: int, states: Iterable[tuple[int, str]], now: float
) -> None:
    """Participants with their first states (``joined`` ones joined ``now``)."""
    await conn.executemany(
        "INSERT INTO call_participants (call_id, account_id, state, joined_at)"
        " VALUES (?, ?, ?, ?)",
        [(call_id, a, s, now if s == "joined" else None) for a, s in states],
    )


async def get_call(db: Database, call_id: int) -> Call | None:
    """A call by id (an indexed read on the loop's thread)."""
    row = await db.lookup("SELECT * FROM calls WHERE id = ?", (call_id,))
    return None if row is None else Call.from_row(row)


async def get_call_by_uri(db: Database, uri: str) -> Call | None:
    """A call by its ActivityPub id."""
    row = await db.lookup("SELECT * FROM calls WHERE uri = ?", (uri,))
    return None if row is None else Call.from_row(row)


async def participants_of(db: Database, call_id: int) -> list[Participant]:
    """Everyone invited into a call: those in it by when they joined (the caller first),
    then the others by account."""
    rows = await db.lookup_all(
        # Those in the call by when they joined (the caller first), then those still rung.
        "SELECT * FROM call_participants WHERE call_id = ?"
        " ORDER BY joined_at IS NULL, joined_at, account_id",
        (call_id,),
    )
    return [Participant.from_row(row) for row in rows]


async def in_open_call(db: Database, account_id: int) -> bool:
    """Whether the account has joined a call that is not over (they are busy)."""
    return bool(
        await db.lookup_value(
            "SELECT 1 FROM call_participants p JOIN calls c ON c.id = p.call_id"
            " WHERE p.account_id = ? AND p.state = 'joined' AND c.state <> 'ended' LIMIT 1",
            (account_id,),
        )
    )


async def set_participant(
    conn: Connection, call_id: int, account_id: int, state: str, now: float
) -> bool:
    """Move a participant on (joined / declined / left); False if they were not in it."""
    column = {"joined": "joined_at", "declined": "left_at", "left": "left_at"}[state]
    cursor = await conn.execute(
        f"UPDATE call_participants SET state = ?, {column} = ?"
        " WHERE call_id = ? AND account_id = ?",
        (state, now, call_id, account_id),
    )
    return cursor.rowcount > 0


async def mark_answered(conn: Connection, call_id: int, now: float) -> bool:
    """A ringing call is answered; False if it was no longer ringing."""
    cursor = await conn.execute(
        "UPDATE calls SET state = 'active', answered_at = ? WHERE id = ? AND state = 'ringing'",
        (now, call_id),
    )
    return cursor.rowcount > 0


async def mark_ended(conn: Connection, call_id: int, reason: str, now: float) -> bool:
    """End a call (once: False if it had already ended); everyone still in it has left."""
    cursor = await conn.execute(
        "UPDATE calls SET state = 'ended', end_reason = ?, ended_at = ?"
        " WHERE id = ? AND state <> 'ended'",
        (reason, now, call_id),
    )
    if cursor.rowcount == 0:
        return False
    await conn.execute(
        "UPDATE call_participants SET state = 'left', left_at = ?"
        " WHERE call_id = ? AND state IN ('joined', 'ringing')",
        (now, call_id),
    )
    return True


async def end_stale_calls(conn: Connection, now: float) -> int:
    """At start-up: calls left open by the last run cannot go on (their tabs are gone)."""
    cursor = await conn.execute(
        "SELECT id FROM calls WHERE state <> 'ended'"
    )
    ids = [row[0] for row in await cursor.fetchall()]
    for call_id in ids:
        await mark_ended(conn, call_id, "failed", now)
    return len(ids)


async def call_policy(db: Database, account_id: int) -> tuple[str, bool]:
    """(who may ring the account, whether their calls are relayed only)."""
    row = await db.lookup(
        "SELECT call_policy, call_always_relay FROM accounts WHERE id = ?", (account_id,)
    )
    return ("nobody", False) if row is None else (row[0], bool(row[1]))


async def set_call_policy(
    conn: Connection, account_id: int, policy: str, always_relay: bool
) -> None:
    """Change who may ring the account, and whether their calls are relayed only."""
    await conn.execute(
        "UPDATE accounts SET call_policy = ?, call_always_relay = ? WHERE id = ?",
        (policy, int(always_relay), account_id),
    )


async def shares_accepted_conversation(db: Database, a: int, b: int) -> bool:
    """Whether ``a`` has accepted a conversation that ``b`` is in."""
    return bool(
        await db.lookup_value(
            "SELECT 1 FROM conversation_members m JOIN conversation_members o"
            " ON o.conversation_id = m.conversation_id"
            " WHERE m.account_id = ? AND m.state = 'accepted' AND o.account_id = ? LIMIT 1",
            (a, b),
        )
    )


async def calls_between(
    db: Database, a: int, b: int, *, since: float | None, until: float | None, limit: int = 50
) -> list[Call]:
    """Calls both accounts were in, oldest first, within ``since``..``until`` (inclusive)."""
    rows = await db.lookup_all(
        "SELECT c.* FROM calls c"
        " JOIN call_participants pa ON pa.call_id = c.id AND pa.account_id = ?"
        " JOIN call_participants pb ON pb.call_id = c.id AND pb.account_id = ?"
        " WHERE c.created_at >= ? AND c.created_at <= ?"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT ?",
        (a, b, since if since is not None else 0.0, until if until is not None else 1e18, limit),
    )
    return [Call.from_row(row) for row in reversed(rows)]


async def save_relay_report(db: Database, report: str, now: float) -> None:
    """What the serving process last saw of its relay (JSON), for the CLI to read."""
    await node_settings.set_node_setting(db, RELAY_REPORT_KEY, report, now)


async def relay_report(db: Database) -> tuple[str, float] | None:
    """(the relay's last report, when it was written), or None if never."""
    row = await db.lookup(
        "SELECT value, updated_at FROM node_settings WHERE key = ?", (RELAY_REPORT_KEY,)
    )
    return None if row is None else (row[0], row[1])


async def conversation_members(db: Database, conversation_id: int) -> list[tuple[int, str]]:
    """(account id, membership state) of everyone in a conversation (a few rows, inline)."""
    rows = await db.lookup_all(
        "SELECT account_id, state FROM conversation_members WHERE conversation_id = ?",
        (conversation_id,),
    )
    return [(row[0], row[1]) for row in rows]
