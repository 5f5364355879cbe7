"""SQL for signing keys (ours, with private halves) and cached remote public keys."""

from __future__ import annotations

from collections.abc import Sequence

from xnode.store.database import Connection, Database, Row


async def keys_of(db: Database, account_id: int | None) -> list[Row]:
    """Every key row of an account (``None``: the instance actor)."""
    if account_id is None:
        return await db.fetchall("SELECT * FROM account_keys WHERE account_id IS NULL")
    return await db.fetchall("SELECT * FROM account_keys WHERE account_id = ?", (account_id,))


async def key_by_id(db: Database, key_id: str) -> Row | None:
    """A key row by its id (URL)."""
    return await db.lookup("SELECT * FROM account_keys WHERE key_id = ?", (key_id,))


async def add_own_key(
    db: Database,
    row_id: int,
    *,
    account_id: int | None,
    key_id: str,
    algorithm: str,
    public_pem: str,
    private_pem: str,
    now: float,
) -> Row:
    """Store a key we generated, unless one with its id exists; return the stored row.

    Several processes of one node (the serving, inbox and delivery processes)
    may each make an actor's first key at the same moment: the first stored
    wins and every process signs with that one, never a half-replaced pair.
    """
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO account_keys (id, account_id, key_id, algorithm, public_pem,"
            " private_pem, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key_id) DO NOTHING",
            (row_id, account_id, key_id, algorithm, public_pem, private_pem, now),
        )
        rows = list(await conn.execute_fetchall(
            "SELECT * FROM account_keys WHERE key_id = ?", (key_id,)
        ))
    return rows[0]


async def replace_remote_keys(
    conn: Connection,
    account_id: int,
    keys: Sequence[tuple[int, str, str, str]],
    now: float,
) -> None:
    """Make ``(row id, key id, algorithm, public PEM)`` the account's only cached keys.

    Keys the actor no longer lists are dropped (rotation). A key id cached for
    another account is left alone: an actor cannot take over someone else's key.
    """
    wanted = [key_id for _, key_id, _, _ in keys]
    marks = ", ".join("?" for _ in wanted) or "''"
    await conn.execute(
        f"DELETE FROM account_keys WHERE account_id = ? AND private_pem IS NULL"
        f" AND key_id NOT IN ({marks})",
        (account_id, *wanted),
    )
    for row_id, key_id, algorithm, pem in keys:
        await conn.execute(
            "INSERT INTO account_keys (id, account_id, key_id, algorithm, public_pem,"
            " private_pem, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)"
            " ON CONFLICT (key_id) DO UPDATE SET public_pem = excluded.public_pem,"
            " algorithm = excluded.algorithm WHERE account_keys.account_id = excluded.account_id"
            " AND account_keys.private_pem IS NULL",
            (row_id, account_id, key_id, algorithm, pem, now),
        )
