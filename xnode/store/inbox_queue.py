"""SQL for the inbox queue: verified activities waiting to be handled, claimed under a
lease on PostgreSQL so that several serving processes handle each one once."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.store import domain_blocks
from xnode.store.database import Database, Row

CLAIM_LOCK_KEY = 0x786E6F6465_4951
"""The advisory lock the inbox queue's claims take turns on, PostgreSQL only (``"xnodeIQ"``:
any constant no other lock of this database uses)."""


async def enqueue_activity(
    db: Database, row_id: int, *, activity_id: str, actor_uri: str, signer_key_id: str | None,
    payload: str, now: float,
) -> bool:
    """Persist a verified activity for processing; False when its id was seen before, or
    when the actor's or the signer's server is suspended (the door's check reads a cache,
    which another process's block reaches a moment later: this one reads the table, in
    the same statement, so it costs no round trip; :func:`domain_blocks.any_suspended_now`
    tells the two apart)."""
    blocked, blocked_params = domain_blocks.suspended_condition((actor_uri, signer_key_id))
    async with db.transaction() as conn:
        # INSERT ... SELECT for the condition; the casts give PostgreSQL the parameters'
        # types (a bare one in a SELECT list would be text). SQLite needs the WHERE to
        # tell the upsert's ON from a join's.
        cursor = await conn.execute(
            "INSERT INTO inbox_queue (id, activity_id, actor_uri, signer_key_id, payload,"
            " received_at, state) SELECT CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT),"
            " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), 'pending'"
            f" WHERE NOT {blocked} ON CONFLICT (activity_id) DO NOTHING",
            (row_id, activity_id, actor_uri, signer_key_id, payload, now, *blocked_params),
        )
        return cursor.rowcount == 1


async def due_activities(
    db: Database, *, now: float, retry_delay_s: float, limit: int, owner: str, lease_s: float
) -> list[Row]:
    """Claim pending items in arrival order; a failed attempt waits ``retry_delay_s`` x attempts.

    ``processed_at`` holds the time of the last attempt while an item is pending. On
    PostgreSQL the items come back claimed by ``owner`` for ``lease_s`` seconds: other
    processes (several serving one node) skip them until the outcome is written (which
    ends the lease, leaving ``claimed_by`` to say who handled the item) or the lease
    runs out (the claimer died). On SQLite they are only read (one handler at a time).
    """
    due_where = (
        " FROM inbox_queue WHERE state = 'pending'"
        " AND (attempts = 0 OR processed_at IS NULL OR processed_at <= ? - ? * attempts)"
        " AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_by = ?)"
    )
    due_params = (now, retry_delay_s, now, owner)
    if db.dialect != "postgres":
        # SQLite: one process handles the queue at a time (the serving process and the
        # inbox process hand it over between batches), so the batch is read, not claimed:
        # writing a claim on every batch cost the inbox process about a tenth more CPU
        # per activity (bench/inbox.py).
        return await db.fetchall(f"SELECT *{due_where} ORDER BY id LIMIT ?", (*due_params, limit))
    async with db.transaction() as conn:
        # Each actor's activities run in arrival order (a Create before the Delete behind
        # it), so an actor another process is busy with is left to it (the NOT IN below).
        # That test reads other processes' claims, and two claims running at the same
        # instant would not see each other's (neither has committed): both would take
        # items of the same actor, the first rows each, FOR UPDATE SKIP LOCKED making
        # sure only that they are different items. So the claims take turns: a
        # transaction-scoped advisory lock, taken in its own statement before the claim,
        # so that the claim's snapshot (READ COMMITTED: one per statement) is taken once
        # the previous claimer has committed and sees all its claims. The claim is one
        # short statement per batch of up to ``limit`` items, so the turns cost little;
        # a lock per actor would need the actors known before the claim that finds them,
        # and SERIALIZABLE would turn the race into retried failures.
        await conn.execute("SELECT pg_advisory_xact_lock(?)", (CLAIM_LOCK_KEY,))
        # As for deliveries: the row lock re-checks the claim on the row's latest version
        # and skips rows another process is finishing.
        rows = await conn.execute_fetchall(
            "UPDATE inbox_queue SET claimed_by = ?, claimed_until = ? WHERE id IN ("
            f"SELECT id{due_where} AND actor_uri NOT IN (SELECT actor_uri FROM inbox_queue"
            " WHERE state = 'pending' AND claimed_until > ? AND claimed_by <> ?)"
            " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING *",
            (owner, now + lease_s, *due_params, now, owner, limit),
        )
    return sorted(rows, key=lambda row: int(row["id"]))  # RETURNING promises no order


async def renew_claims(
    db: Database, row_ids: Sequence[int], *, owner: str, until: float
) -> int:
    """Extend ``owner``'s claim on those of ``row_ids`` it still holds to ``until`` (a batch
    whose handling is taking long); how many. Items whose outcome was written (the claim
    ended) or that another process holds are left alone."""
    if not row_ids:
        return 0
    marks = ", ".join("?" for _ in row_ids)
    return await db.execute(
        "UPDATE inbox_queue SET claimed_until = ? WHERE claimed_by = ?"
        f" AND claimed_until IS NOT NULL AND state = 'pending' AND id IN ({marks})",
        (until, owner, *row_ids),
    )


async def release(db: Database, owner: str) -> int:
    """End every claim of ``owner`` on items still pending (its process has exited); how
    many. They are claimable at once instead of when the lease runs out."""
    return await db.execute(
        "UPDATE inbox_queue SET claimed_until = NULL"
        " WHERE claimed_by = ? AND state = 'pending' AND claimed_until IS NOT NULL",
        (owner,),
    )


async def finish_activity(
    db: Database, row_id: int, *, state: str, now: float, error: str | None = None,
    attempted: bool = True,
) -> None:
    """Record the outcome of one attempt: 'done', 'failed' or still 'pending'."""
    await db.execute(
        "UPDATE inbox_queue SET state = ?, attempts = attempts + ?, last_error = ?,"
        " processed_at = ?, claimed_until = NULL WHERE id = ?",
        (state, int(attempted), error, now, row_id),
    )


async def finish_activities_done(db: Database, row_ids: Sequence[int], *, now: float) -> None:
    """Record many successful attempts at once (one statement, one transaction)."""
    if not row_ids:
        return
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE inbox_queue SET state = 'done', attempts = attempts + 1, last_error = NULL,"
            " processed_at = ?, claimed_until = NULL WHERE id = ?",
            [(now, row_id) for row_id in row_ids],
        )
