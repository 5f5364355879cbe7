"""Models reused while their row reads the same, and hashed once (xnode/memo.py)."""

from __future__ import annotations

import dataclasses
import sqlite3

from xnode.accounts.models import Account
from xnode.memo import RowMemo, hash_once
from xnode.store.database import Database, Row
from xnode.web.state import DB


def rows(sql: str) -> list[Row]:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    return list(conn.execute(sql))


def test_an_identical_row_gives_the_same_model_and_a_changed_row_a_new_one():
    built: list[str] = []

    def build(row: Row) -> str:
        built.append(row["name"])
        return f"model of {row['name']}"

    memo = RowMemo(build)
    first, same = rows("SELECT 1 AS id, 'ana' AS name UNION ALL SELECT 1, 'ana'")
    (renamed,) = rows("SELECT 1 AS id, 'ana b.' AS name")
    assert memo(first) is memo(same)
    assert memo(renamed) == "model of ana b."
    assert built == ["ana", "ana b."]


def test_rows_with_the_same_values_under_other_names_are_not_confused():
    memo = RowMemo(lambda row: tuple(row.keys()))
    (a,) = rows("SELECT 'x' AS display_name, 'y' AS username")
    (b,) = rows("SELECT 'x' AS username, 'y' AS display_name")
    assert memo(a) == ("display_name", "username")
    assert memo(b) == ("username", "display_name")


def test_the_memo_is_bounded():
    memo = RowMemo(lambda row: row["n"], bound=3)
    for n in range(10):
        memo(rows(f"SELECT {n} AS n")[0])
    assert len(memo._built) == 3


def test_a_hash_kept_once_equals_the_dataclass_hash_and_ignores_nothing():
    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int
        b: str

    @hash_once
    @dataclasses.dataclass(frozen=True)
    class Kept:
        a: int
        b: str

    kept = Kept(1, "x")
    assert hash(kept) == hash(Plain(1, "x")) == hash(kept)
    changed = dataclasses.replace(kept, b="y")
    assert hash(changed) == hash(Plain(1, "y")) != hash(kept)
    assert changed != kept and Kept(1, "x") == kept
    assert repr(kept).endswith("Kept(a=1, b='x')")


async def test_an_edited_account_reads_back_edited(app):
    db: Database = app[DB]
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO accounts (id, username_key, username, domain, display_name, bio_source,"
            " bio_html, created_at, updated_at) VALUES (7, 'ana', 'ana', NULL, 'Ana', '', '', 1, 1)"
        )
    before = Account.from_row(await db.lookup("SELECT * FROM accounts WHERE id = 7"))
    assert Account.from_row(await db.lookup("SELECT * FROM accounts WHERE id = 7")) is before
    async with db.transaction() as conn:
        await conn.execute("UPDATE accounts SET display_name = 'Ana B.' WHERE id = 7")
    after = Account.from_row(await db.lookup("SELECT * FROM accounts WHERE id = 7"))
    assert (before.display_name, after.display_name) == ("Ana", "Ana B.")
