"""``xnode db migrate-to-postgres``: a SQLite node moved into PostgreSQL (issue 18).

Real nodes and the real command: two complete nodes federate over loopback HTTP on
SQLite, one of them is stopped and moved with the CLI (click's runner), and started
again on PostgreSQL on the same address. The worker's throwaway cluster
(tests/database_backend.py) gives the databases; the tests skip where Debian's PostgreSQL
binaries are not installed.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from database_backend import fresh_database_url
from live_nodes import LiveNode, eventually, follow_across, remote_post, start_node
from pg_cluster import PgCluster
from PIL import Image
from ports import free_port

from xnode.accounts.models import Account
from xnode.activitypub.delivery import DELIVERY
from xnode.cli import main
from xnode.dms.service import DirectMessages
from xnode.posts.service import Draft, ImageUpload
from xnode.settings import CONFIG_FILE, DATABASE_FILE, SECRET_FILE, load_settings, render_config
from xnode.store.copy_to_postgres import (
    TableChecksum,
    column_kind,
    normalised,
    redacted,
    sqlite_tables,
)
from xnode.web.app import create_app
from xnode.web.state import CLOCK, DB, EVENTS, POSTS, SETTINGS

_names = itertools.count()
AP_JSON = "application/activity+json"


def migrate(data: Path, dsn: str) -> Result:
    """Run the command as an admin would; a refusal must never be a traceback."""
    # XNODE_* variables of the test run (XNODE_TEST_DATABASE) are not node settings.
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("XNODE_")}
    result = CliRunner().invoke(
        main, ["db", "migrate-to-postgres", "--data", str(data), "--dsn", dsn], env=env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def init(data: Path, *extra: str) -> None:
    """``xnode init`` a SQLite node with an admin."""
    result = CliRunner().invoke(
        main, ["init", "--data", str(data), "--domain", "moved.test", "--http", "--admin",
               "root", *extra],
        env={k: None for k in os.environ if k.startswith("XNODE_")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output


async def pg_fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def dms_of(node: LiveNode) -> DirectMessages:
    return DirectMessages(node[DB], node[SETTINGS], node[CLOCK], node[EVENTS], node[POSTS])


# --- A federating node, stopped and moved ------------------------------------------------


@dataclass
class Moved:
    """Node A (alice) moved to PostgreSQL after federating with B (bob); both stopped."""

    a_dir: Path
    a_port: int
    b: LiveNode
    alice: Account
    bob: Account
    dsn: str
    result: Result
    conversation_id: int  # alice's DM conversation with bob, on A
    pending_uri: str  # a post whose delivery to B was still pending at the move
    alice_public_pem: str  # alice's RSA key on A before the move
    alice_keys: set[str]  # all her public keys (RSA, Ed25519) on A before the move
    max_post_id: int  # post and account ids are time-based (xnode/ids.py)
    max_delivery_id: int  # delivery ids come from the table's identity sequence


async def restart(node: LiveNode) -> LiveNode:
    """The same node (settings, database) served again on its address."""
    settings = node[SETTINGS]
    app = create_app(settings)
    host, port = node.domain.split(":")
    again = LiveNode(app, TestServer(app, host=host, port=int(port)), node.domain)
    await again.server.start_server()
    return again


async def start_moved(moved: Moved) -> LiveNode:
    """A as the admin starts it after the move: settings from its xnode.toml."""
    settings = load_settings(moved.a_dir, environ={})
    assert settings.database_url == moved.dsn
    app = create_app(settings)
    a = LiveNode(app, TestServer(app, host="127.0.0.1", port=moved.a_port), settings.domain)
    await a.server.start_server()
    return a


async def federate_then_move(tmp: Path, dsn: str) -> Moved:
    """A and B follow each other, post with media, DM; A queues a post while B is down;
    A stops and is moved with the CLI."""
    a = await start_node(tmp, "a")
    b = await start_node(tmp, "b")
    alice, bob = await a.user("alice"), await b.user("bob")
    await follow_across(b, bob, a, "alice")
    bob_on_a = await follow_across(a, alice, b, "bob")
    pictured = await a[POSTS].publish(
        alice, Draft("a picture from A", images=[ImageUpload(png(), "a red square")])
    )
    await eventually(lambda: remote_post(b, pictured.uri))
    first = await dms_of(a).start(alice, f"@bob@{b.domain}", "just between us")
    await eventually(lambda: remote_post(b, first.uri))

    await b.server.close()  # B goes away: what alice posts now waits in A's queue
    pending = await a[POSTS].publish(alice, Draft("while B was away"))

    async def queued() -> bool:
        return bool(await a[DB].fetchvalue(
            "SELECT count(*) FROM deliveries WHERE post_id = ? AND state = 'pending'",
            (pending.id,),
        ))  # fmt: skip

    await eventually(queued)
    await a.server.close()

    settings = a[SETTINGS]
    a_dir = settings.data_dir
    # start_node keeps its settings in memory: write them as `xnode init` would.
    (a_dir / CONFIG_FILE).write_text(render_config({
        "domain": settings.domain, "base_url": settings.base_url,
        "registration": settings.registration, "allow_private_addresses": True,
        "call_relay": False, "call_relay_port": 0,
    }), encoding="utf-8")  # fmt: skip
    (a_dir / SECRET_FILE).write_text(settings.secret_key.hex() + "\n", encoding="ascii")
    lite = sqlite3.connect(a_dir / DATABASE_FILE)
    try:
        keys = {
            pem.strip() for (pem,) in lite.execute(
                "SELECT public_pem FROM account_keys WHERE account_id = ?", (alice.id,)
            )
        }  # fmt: skip
        (pem,) = lite.execute(
            "SELECT public_pem FROM account_keys WHERE account_id = ? AND algorithm = 'rsa'",
            (alice.id,),
        ).fetchone()
        (max_post_id,) = lite.execute("SELECT max(id) FROM posts").fetchone()
        (max_delivery_id,) = lite.execute("SELECT max(id) FROM deliveries").fetchone()
    finally:
        lite.close()
    assert bob_on_a.id != alice.id
    result = await asyncio.to_thread(migrate, a_dir, dsn)
    return Moved(
        a_dir, int(a.domain.split(":")[1]), b, alice, bob, dsn, result,
        first.conversation_id, pending.uri, pem.strip(), keys, max_post_id, max_delivery_id,
    )  # fmt: skip


async def test_a_federating_node_is_copied_whole_and_verified(tmp_path: Path, pg_url: str):
    moved = await federate_then_move(tmp_path, pg_url)
    assert moved.result.exit_code == 0, moved.result.output
    output = moved.result.output
    assert "row counts and checksums match" in output
    assert "the next xnode serve uses PostgreSQL" in output
    assert "left in place" in output
    assert load_settings(moved.a_dir, environ={}).database_url == pg_url
    assert (moved.a_dir / DATABASE_FILE).is_file()  # the way back

    # Every table, counted and checksummed again here, from both sides.
    lite = sqlite3.connect(moved.a_dir / DATABASE_FILE)
    kinds = {
        (row["table_name"], row["column_name"]): column_kind(row["type"])
        for row in await pg_fetch(
            pg_url,
            "SELECT table_name, column_name, CASE data_type WHEN 'bytea' THEN 'bytea'"
            " WHEN 'bigint' THEN 'bigint' WHEN 'double precision' THEN 'double precision'"
            " ELSE 'text' END AS type FROM information_schema.columns"
            " WHERE table_schema = 'public'",
        )
    }
    counted: dict[str, int] = {}
    for table, columns in sqlite_tables(lite).items():
        names = ", ".join(f'"{c}"' for c in columns)
        key = "rowid" if "rowid" in columns else ", ".join(
            r["attname"] for r in await pg_fetch(
                pg_url,
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid ="
                " i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass"
                " AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                table,
            )
        )  # fmt: skip
        pg_key = ", ".join(
            f'{k} COLLATE "C"' if kinds[(table, k.strip())] == "text" else k
            for k in key.split(",")
        )
        table_kinds = [kinds[(table, c)] for c in columns]
        here, there = TableChecksum(table_kinds), TableChecksum(table_kinds)
        for row in lite.execute(f'SELECT {names} FROM "{table}" ORDER BY {key}'):
            here.add(row)
        for row in await pg_fetch(pg_url, f'SELECT {names} FROM "{table}" ORDER BY {pg_key}'):
            there.add(row)
        assert (here.rows, here.hexdigest()) == (there.rows, there.hexdigest()), table
        counted[table] = here.rows
    lite.close()
    for table in ("accounts", "account_keys", "posts", "posts_fts", "accounts_fts",
                  "media_attachments", "follows", "conversations", "conversation_members",
                  "deliveries", "account_stats"):  # fmt: skip
        assert counted[table] > 0, table
    assert f"{counted['posts']}" in output

    # The schema is as the migrations made it: foreign keys back, triggers on.
    assert await pg_fetch(pg_url, FOREIGN_KEYS) == await pg_fetch(
        fresh_database_url(), FOREIGN_KEYS
    )
    assert not await pg_fetch(
        pg_url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'"
    )
    lite = sqlite3.connect(moved.a_dir / DATABASE_FILE)
    (statuses,) = lite.execute(
        "SELECT statuses_count FROM account_stats WHERE account_id = ?", (moved.alice.id,)
    ).fetchone()
    lite.close()

    # The node runs on PostgreSQL: new rows get ids after the copied ones, and the
    # counters kept by triggers go on from the copied values (not counted twice).
    a = await start_moved(moved)
    try:
        post = await a[POSTS].publish(moved.alice, Draft("first post on PostgreSQL"))
        assert post.id > moved.max_post_id
        # Its delivery to bob's inbox: a row the sequence numbers, after the copied ones.
        new_deliveries = [row[0] for row in await a[DB].fetchall(
            "SELECT id FROM deliveries WHERE post_id = ?", (post.id,)
        )]  # fmt: skip
        assert new_deliveries and min(new_deliveries) == moved.max_delivery_id + 1
        carol = await a.user("carol")
        assert carol.id > max(moved.alice.id, moved.bob.id)
        assert await a[DB].fetchvalue(
            "SELECT statuses_count FROM account_stats WHERE account_id = ?", (moved.alice.id,)
        ) == statuses + 1
    finally:
        await a.server.close()


FOREIGN_KEYS = (
    "SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS definition"
    " FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
    " ORDER BY 1, 2"
)


async def test_the_moved_node_federates_with_its_old_keys(tmp_path: Path, pg_url: str):
    moved = await federate_then_move(tmp_path, pg_url)
    assert moved.result.exit_code == 0, moved.result.output
    b = await restart(moved.b)
    a = await start_moved(moved)
    try:
        # alice's actor, served from PostgreSQL, has the key she had on SQLite, and B
        # still holds that key for her: B never had to learn a new one.
        actor = await fetch_json(f"http://{a.domain}/users/alice")
        assert actor["publicKey"]["publicKeyPem"].strip() == moved.alice_public_pem.strip()
        alice_on_b = await b[DB].fetchvalue(
            "SELECT id FROM accounts WHERE uri = ?", (f"http://{a.domain}/users/alice",)
        )
        held_by_b = {r[0].strip() for r in await b[DB].fetchall(
            "SELECT public_pem FROM account_keys WHERE account_id = ?", (alice_on_b,)
        )}  # fmt: skip
        assert moved.alice_public_pem in held_by_b and held_by_b <= moved.alice_keys

        # The delivery left pending at the move goes out from PostgreSQL, signed with
        # that key, and B's inbox accepts it (it verifies every signature).
        assert await a[DELIVERY].retry_host(b.domain) >= 1
        await eventually(lambda: remote_post(b, moved.pending_uri))

        # A new post reaches B the same way.
        after = await a[POSTS].publish(moved.alice, Draft("posted from PostgreSQL"))
        await eventually(lambda: remote_post(b, after.uri))

        # bob answers the DM from before the move: B signs it with bob's key, A
        # verifies it with the key it copied, and files it in the same conversation.
        bob_conversation = await b[DB].fetchvalue(
            "SELECT conversation_id FROM posts WHERE uri LIKE ? AND conversation_id IS NOT NULL",
            (f"http://{a.domain}/%",),
        )
        reply = await dms_of(b).send(moved.bob, bob_conversation, "still here", reply_to_id=None)
        row = await eventually(lambda: remote_post(a, reply.uri))
        assert row["conversation_id"] == moved.conversation_id
    finally:
        await a.server.close()
        await b.server.close()


async def fetch_json(url: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(
        url, headers={"Accept": AP_JSON}
    ) as response:
        assert response.status == 200, await response.text()
        found: dict[str, Any] = await response.json(content_type=None)
        return found


def test_a_role_that_only_owns_its_database_is_enough(tmp_path: Path, pg_cluster: PgCluster):
    """As in production: no superuser, a role owning an empty database (createdb -O)."""
    name = f"owned_{next(_names)}"
    pg_cluster.psql("postgres", f"CREATE ROLE {name} LOGIN")
    pg_cluster.psql("postgres", f"CREATE DATABASE {name} OWNER {name}")
    dsn = pg_cluster.url(name).replace("postgres@", f"{name}@", 1)
    node = tmp_path / "node"
    init(node)
    result = migrate(node, dsn)
    assert result.exit_code == 0, result.output
    assert asyncio.run(pg_fetch(dsn, "SELECT username FROM accounts"))[0][0] == "root"


# --- Refusals ---------------------------------------------------------------------------


def table_names(dsn: str) -> list[str]:
    rows = asyncio.run(pg_fetch(
        dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    ))  # fmt: skip
    return [r[0] for r in rows]


def test_a_target_holding_data_is_refused(tmp_path: Path, pg_url: str, pg_cluster: PgCluster):
    first, second = tmp_path / "first", tmp_path / "second"
    init(first)
    init(second)
    assert migrate(first, pg_url).exit_code == 0
    config = (second / CONFIG_FILE).read_text()

    refused = migrate(second, pg_url)
    assert refused.exit_code == 1
    assert "already holds data (1 account(s)" in refused.output
    assert (second / CONFIG_FILE).read_text() == config
    assert asyncio.run(pg_fetch(pg_url, "SELECT count(*) FROM accounts"))[0][0] == 1

    # Tables xnode does not make: refused before any migration runs there.
    name = f"foreign_{next(_names)}"
    pg_cluster.create_database(name)
    pg_cluster.psql(name, "CREATE TABLE notes (id integer PRIMARY KEY, body text)")
    refused = migrate(second, pg_cluster.url(name))
    assert refused.exit_code == 1
    assert "holds tables xnode does not make (notes)" in refused.output
    assert table_names(pg_cluster.url(name)) == ["notes"]


def test_a_node_already_on_postgresql_is_refused(tmp_path: Path, pg_url: str):
    node = tmp_path / "node"
    init(node)
    assert migrate(node, pg_url).exit_code == 0
    again = migrate(node, pg_url)
    assert again.exit_code == 1
    assert "already uses PostgreSQL" in again.output


def test_bad_dsns_are_clear_errors(tmp_path: Path, pg_cluster: PgCluster):
    node = tmp_path / "node"
    init(node)
    config = (node / CONFIG_FILE).read_text()
    missing = pg_cluster.url("no_such_database").replace("postgres@", "postgres:hunter2@")
    for dsn, expected in (
        (missing, 'database "no_such_database" does not exist'),
        ("postgresql://xnode@/xnode?host=/nonexistent/socket/dir", "cannot connect"),
        (f"postgresql://xnode@127.0.0.1:{free_port()}/xnode", "cannot connect"),
        ("postgresql://[broken", "cannot connect"),
        ("mysql://xnode@localhost/xnode", "expected a postgresql:// URL"),
    ):
        result = migrate(node, dsn)
        assert result.exit_code == 1, (dsn, result.output)
        assert expected in result.output, (dsn, result.output)
        assert "hunter2" not in result.output  # passwords stay out of messages
    assert (node / CONFIG_FILE).read_text() == config


def test_a_value_postgresql_cannot_hold_stops_the_copy_and_leaves_it_empty(
    tmp_path: Path, pg_url: str
):
    node = tmp_path / "node"
    init(node)
    lite = sqlite3.connect(node / DATABASE_FILE)
    lite.execute("INSERT INTO node_settings VALUES ('odd', 'a' || char(0) || 'b', 0)")
    lite.commit()
    lite.close()
    result = migrate(node, pg_url)
    assert result.exit_code == 1
    assert "node_settings (key='odd'), column value" in result.output
    assert "Nothing was committed" in result.output
    assert asyncio.run(pg_fetch(pg_url, "SELECT count(*) FROM accounts"))[0][0] == 0
    assert load_settings(node, environ={}).database_url is None


def test_a_serving_node_is_refused(tmp_path: Path, pg_url: str):
    node = tmp_path / "node"
    port = free_port()
    init(node, "--listen", f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNODE_")}
    env.update(XNODE_CALL_RELAY="false", XNODE_HELPER_IDLE_STOP_S="0")
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "xnode"), "serve", "--data", str(node)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_answering(f"http://127.0.0.1:{port}/", serve)
        refused = migrate(node, pg_url)
        assert refused.exit_code == 1
        assert "the node is serving" in refused.output
        assert table_names(pg_url) == []  # the target was not touched
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
    # Stopped, the same node moves.
    assert migrate(node, pg_url).exit_code == 0


def wait_answering(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "xnode serve exited"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- The checksum ------------------------------------------------------------------------


def test_checksum_takes_values_by_their_column_type() -> None:
    def digest(kinds: list[Any], *rows: tuple[Any, ...]) -> str:
        checksum = TableChecksum(kinds)
        for row in rows:
            checksum.add(row)
        return checksum.hexdigest()

    kinds: list[Any] = ["int", "float", "text", "bytes"]
    # SQLite's whole float in an INTEGER column, integer in a REAL one, text in a BLOB.
    assert digest(kinds, (5.0, 2, "x", "y")) == digest(kinds, (5, 2.0, "x", b"y"))
    assert digest(kinds, (1, 0.1, "x", None)) != digest(kinds, (1, 0.1, "x", b""))
    assert digest(kinds, (1, 0.1, "ab", b"")) != digest(kinds, (1, 0.1, "a", b"b"))
    assert digest(kinds, (1, 1.0, "", b"")) != digest(kinds, (1, 1.0000000000000002, "", b""))
    assert digest(["text"], ("a",), ("b",)) != digest(["text"], ("b",), ("a",))
    assert normalised("text", None) != normalised("text", "")


def test_messages_never_show_a_password() -> None:
    assert redacted("postgresql://xnode:s3cret@db.example/xnode") == (
        "postgresql://xnode:***@db.example/xnode"
    )
    assert redacted("postgresql:///xnode?host=/run&password=s3cret&sslmode=require") == (
        "postgresql:///xnode?host=/run&password=***&sslmode=require"
    )
    assert redacted("postgresql://xnode@/xnode?host=/run") == "postgresql://xnode@/xnode?host=/run"
