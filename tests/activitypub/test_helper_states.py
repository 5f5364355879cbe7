"""Helper process states per serving process (issue 18): several ``xnode serve`` on one
PostgreSQL database each keep their helpers' rows in ``helper_processes``; a start forgets
only the process's own; rows of a process gone quiet are shown as such, then dropped.

Store-level on both backends; the real two-process run is in tests/test_several_processes.py.
"""

from __future__ import annotations

import html
import socket
import time

from conftest import create_user, login

from xnode import cli
from xnode.child_process import forget_earlier_states, serving_process
from xnode.federation_admin import FederationAdmin
from xnode.store import helper_processes
from xnode.store.helper_processes import FORGET_AFTER_S, GONE_AFTER_S, HelperState
from xnode.web.state import CLOCK, DB, SETTINGS

HOST = socket.gethostname()
ONE, TWO = f"{HOST}/127.0.0.1:8001", "elsewhere.example/10.0.0.2:8000"


def state(process: str, name: str, status: str = "idle", *, seen: float | None = None,
          crashes: int = 0) -> HelperState:  # fmt: skip
    """A helper's state as ``process`` reports it (seen ``seen``, default now)."""
    now = time.time() if seen is None else seen
    return HelperState(
        name, status, crashes, "exit status 70" if crashes else None, None, 1, now,
        process=process, seen_at=now,
    )  # fmt: skip


async def test_two_serving_processes_keep_their_own_rows(app):
    db = app[DB]
    for process in (ONE, TWO):
        await helper_processes.report(db, state(process, "inbox process"))
        await helper_processes.report(db, state(process, "delivery process 1/2"))
    # The same names, one row per serving process.
    states = await helper_processes.all_states(db)
    assert sorted((s.process, s.name) for s in states) == sorted(
        (p, n) for p in (ONE, TWO) for n in ("inbox process", "delivery process 1/2")
    )
    await helper_processes.report(db, state(TWO, "inbox process", "running"))
    by_key = {(s.process, s.name): s.state for s in await helper_processes.all_states(db)}
    assert by_key[(TWO, "inbox process")] == "running"
    assert by_key[(ONE, "inbox process")] == "idle"

    # Process one starts again: its rows go (its helpers write theirs afresh), two's stay.
    await helper_processes.forget(db, ONE)
    assert {s.process for s in await helper_processes.all_states(db)} == {TWO}


async def test_a_start_forgets_the_others_rows_only_on_sqlite(app):
    db = app[DB]
    mine = serving_process(app[SETTINGS])
    await helper_processes.report(db, state(mine, "inbox process"))
    await helper_processes.report(db, state(TWO, "inbox process"))
    await forget_earlier_states(db, mine)
    left = {s.process for s in await helper_processes.all_states(db)}
    # SQLite: one serving process at a time, any other row is a dead one's.
    assert left == ({TWO} if db.dialect == "postgres" else set())


async def test_the_heartbeat_keeps_a_process_seen_and_drops_the_long_gone(app):
    db = app[DB]
    now = time.time()
    await helper_processes.report(db, state(ONE, "inbox process", seen=now - 2 * GONE_AFTER_S))
    await helper_processes.report(db, state(TWO, "inbox process", seen=now - 2 * GONE_AFTER_S))
    gone_long = "old.example/10.0.0.3:8000"
    long_ago = now - FORGET_AFTER_S - 1
    await helper_processes.report(db, state(gone_long, "inbox process", seen=long_ago))
    assert all(s.gone(now) for s in await helper_processes.all_states(db))

    await helper_processes.heartbeat(db, ONE, now)
    states = {s.process: s for s in await helper_processes.all_states(db)}
    assert set(states) == {ONE, TWO}  # a day without a word: forgotten
    assert not states[ONE].gone(now) and states[TWO].gone(now)
    assert states[ONE].updated_at < states[ONE].seen_at  # the state itself did not change


def test_check_names_each_serving_process_and_tells_the_gone_apart(capsys):
    now = time.time()
    helpers = [
        state(ONE, "inbox process"),
        state(TWO, "inbox process", "running"),
        state(TWO, "delivery process 1/2", "failed", crashes=5, seen=now - 2 * GONE_AFTER_S),
    ]
    problems = cli._helper_problems(helpers)
    out = capsys.readouterr().out
    # Process one runs here (its pid is this test's); two runs elsewhere, heard of lately.
    assert f"ok      inbox process of {ONE} idle" in out
    assert f"ok      inbox process of {TWO} running" in out
    assert len(problems) == 1
    assert problems[0].startswith(f"delivery process 1/2 of {TWO} crashed 5 times in a row")
    assert f"reported by xnode serve on {TWO}, not heard of for 6 minutes" in problems[0]

    # One serving process: the names are as before.
    problems = cli._helper_problems([state(ONE, "inbox process")])
    assert "ok      inbox process idle" in capsys.readouterr().out and not problems


async def test_the_admin_pages_show_each_serving_process(client, app):
    db = app[DB]
    now = time.time()
    await helper_processes.report(db, state(ONE, "inbox process", "failed", crashes=5))
    await helper_processes.report(
        db, state(TWO, "inbox process", "failed", crashes=5, seen=now - 2 * GONE_AFTER_S)
    )
    admin = FederationAdmin(db, app[CLOCK])
    overview = await admin.overview()
    assert overview.helpers_gone == {TWO}
    # A gone process's helpers are nobody's trouble now; the live one's is.
    assert [(h.process, h.name) for h in await admin.helpers_in_trouble()] == [
        (ONE, "inbox process")
    ]
    await create_user(app, "boss", admin=True)
    await login(client, "boss")
    page = html.unescape(await (await client.get("/admin/federation")).text())
    assert "Serving process" in page
    assert ONE in page and TWO in page
    assert page.count("not running: last heard of") == 1
    alerts = html.unescape(await (await client.get("/admin/users")).text())
    assert alerts.count("is no longer restarted") == 1
