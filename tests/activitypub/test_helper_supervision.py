"""Helper processes that keep dying are never silent (issue 14).

A helper that crashes is restarted after a pause that doubles each time; after
``GIVE_UP_AFTER`` crashes in a row the serving process logs an error, reports
it (``xnode check``, the admin pages) and does the helper's work itself. And
helpers start from the installed package whatever the working directory holds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from live_nodes import LiveNode, eventually, follow_across, remote_post, start_node
from served_node import ServedNode, WebUser

from xnode import child_process
from xnode.activitypub.delivery import DELIVERY
from xnode.activitypub.inbox import INBOX_LINK
from xnode.activitypub.node import DELIVERY_PROCESSES
from xnode.cli import main
from xnode.posts.service import Draft
from xnode.settings import CONFIG_FILE, SECRET_FILE, render_config
from xnode.store import helper_processes
from xnode.web.state import ACCOUNTS, DB, POSTS, SETTINGS


def test_restart_pauses_double_up_to_a_minute():
    assert [child_process.restart_delay_s(n) for n in range(1, 9)] == [
        1, 2, 4, 8, 16, 32, 60, 60,
    ]


async def _true(value: bool) -> bool:
    return value


def write_config(node: LiveNode) -> Path:
    """The config and key files of an in-process node, so `xnode check` can open it."""
    settings = node[SETTINGS]
    values = {key: getattr(settings, key) for key in (
        "domain", "base_url", "registration", "allow_private_addresses", "inbox_process",
        "delivery_processes",
    )}  # fmt: skip
    (settings.data_dir / CONFIG_FILE).write_text(render_config(values))
    (settings.data_dir / SECRET_FILE).write_text(settings.secret_key.hex())
    return settings.data_dir


async def test_helpers_that_keep_crashing_are_given_up_and_their_work_done_here(
    tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, logger="xnode.child_process")
    # Every helper exits at start, as one importing a broken package would.
    monkeypatch.setenv("XNODE_FAULT_EXIT", "helper-start:inbox,helper-start:delivery")
    monkeypatch.setattr(child_process, "RESTART_DELAY_S", 0.05)
    a = await start_node(
        tmp_path, "a", inbox_process=True, delivery_processes=2, helper_idle_stop_s=0
    )
    b = await start_node(tmp_path, "b")
    try:
        link, senders = a[INBOX_LINK], a[DELIVERY_PROCESSES]
        await eventually(lambda: _true(link.given_up and senders.given_up), 30)
        # The first delivery process given up on stops the others: from then on the
        # serving process sends everything. (Stopping them writes their states first,
        # which takes a while on a loaded machine: wait for it rather than guess.)
        await eventually(lambda: _true(not senders.running), 30)
        await asyncio.sleep(0.5)  # no more restarts after giving up
        assert link.starts == child_process.GIVE_UP_AFTER
        failed = [c for c in senders.children if c.given_up]
        assert failed and all(c.starts == child_process.GIVE_UP_AFTER for c in failed)
        assert not senders.running and not link.running
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        given_up = [e for e in errors if "crashed 5 times in a row" in e]
        assert len(given_up) == 1 + len(failed)
        states = {s.name: (s.state, s.last_exit) for s in await helper_processes.all_states(a[DB])}
        assert states["inbox process"] == ("failed", "exit status 70")
        assert sum(state == ("failed", "exit status 70") for state in states.values()) == len(
            given_up
        )
        await eventually(lambda: _true(a[DELIVERY].working), 10)  # the serving process sends again

        # The node still works: A's inbox takes bob's Follow and its Accept goes out,
        # then alice's post reaches B, all from the serving process.
        alice, bob = await a.user("alice"), await b.user("bob")
        await follow_across(b, bob, a, "alice")
        post = await a[POSTS].publish(alice, Draft("sent without helpers"))
        await eventually(lambda: remote_post(b, post.uri))

        # xnode check and the admin pages say so.
        data_dir = write_config(a)
        result = await asyncio.to_thread(
            CliRunner().invoke, main, ["check", "--data", str(data_dir)]
        )
        assert result.exit_code == 1, result.output
        assert result.output.count("crashed 5 times in a row (exit status 70)") == len(given_up)
        await a[ACCOUNTS].create_user("operator", "correct horse battery", is_admin=True)
        client = WebUser.for_url(a.server.make_url("/").human_repr().rstrip("/"))
        try:
            await client.login("operator")
            async with client.session.get("/admin/users") as response:
                page = await response.text()
            assert page.count("is no longer restarted") == len(given_up)
        finally:
            await client.close()
    finally:
        await b.server.close()
        await a.server.close()


@pytest.fixture
async def peer(tmp_path: Path):
    node = await start_node(tmp_path, "b")
    yield node
    await node.server.close()


async def test_helpers_start_from_the_installed_package_whatever_the_working_directory(
    tmp_path, peer
):
    # A folder holding an xnode/ directory that is not xnode (the checkout's parent, say).
    folder = tmp_path / "elsewhere"
    (folder / "xnode").mkdir(parents=True)
    (folder / "xnode" / "__init__.py").write_text("raise ImportError('not the real xnode')\n")
    served = await ServedNode.create(tmp_path, "a", users=("alice",), helper_idle_stop_s=0)
    served.start(cwd=folder)
    try:
        await served.wait_serving()
        for name in ("inbox process", "delivery process 1/2", "delivery process 2/2"):
            await served.wait_log(f"{name} ready")
        bob = await peer.user("bob")
        await follow_across(peer, bob, served, "alice")
        alice = WebUser(served)
        try:
            await alice.login("alice")
            assert await alice.submit("/posts", {"source": "helpers are fine"}) == 303
        finally:
            await alice.close()
        with served.database() as db:
            (uri,) = db.execute("SELECT uri FROM posts").fetchone()
        await eventually(lambda: remote_post(peer, uri), timeout=30)
        assert "restarting" not in served.log()
    finally:
        served.stop()
