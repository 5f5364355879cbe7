"""The crash step shared by the durability tests: freeze at a point, SIGKILL, restart."""

from __future__ import annotations

import json
from typing import Any

from live_nodes import LiveNode, eventually
from served_node import ServedNode, WebUser


async def crash_after(
    node: ServedNode, user: WebUser, path: str, form: dict[str, str], event: str
) -> None:
    """Submit a form that commits a change emitting ``event``; kill the node right after the
    commit (before anything is queued) and check that the change is recorded in the outbox."""
    await user.submit_until_frozen(path, form, f"after-commit:{event}")
    node.kill()
    with node.database() as db:
        kept = [row["event"] for row in db.execute("SELECT event FROM outbox")]
    assert event in kept, f"no {event} kept in the outbox: {kept}"


async def restart(node: ServedNode) -> None:
    """Start the node again, with no fault armed."""
    node.start()
    await node.wait_serving()


async def received_once(peer: LiveNode, kind: str, activity_id: str | None = None) -> str:
    """Wait until ``peer`` has an activity of ``kind`` (with that id); check it came once."""

    async def arrived() -> list[str]:
        ids = peer.received_ids(kind)
        return [i for i in ids if activity_id is None or i == activity_id]

    found = await eventually(arrived, timeout=30)
    assert len(found) == 1, f"{kind} arrived {len(found)} times: {found}"
    return found[0]


def local_row(node: ServedNode, sql: str, *params: Any) -> Any:
    """One row of node A's database."""
    with node.database() as db:
        return db.execute(sql, params).fetchone()


def sent_payloads(node: ServedNode, kind: str) -> list[dict[str, Any]]:
    """The activities of ``kind`` node A queued, oldest first."""
    with node.database() as db:
        rows = db.execute("SELECT payload FROM deliveries ORDER BY id").fetchall()
    return [a for a in (json.loads(r[0]) for r in rows) if a["type"] == kind]
