"""SQL for reports: what people (here, or on other servers by a Flag) ask admins to look at."""

from __future__ import annotations

import json
from collections.abc import Sequence

from xnode.store.database import Connection


async def insert_report(
    conn: Connection, report_id: int, *, reporter_id: int, target_id: int,
    post_ids: Sequence[int], comment: str, activity_uri: str | None, now: float,
) -> None:
    """File a report about ``target_id`` (and some of its posts); ``activity_uri``: the
    Flag's id, for one from another server."""
    await conn.execute(
        "INSERT INTO reports (id, reporter_account_id, target_account_id, post_ids, comment,"
        " activity_uri, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (report_id, reporter_id, target_id, json.dumps(list(post_ids)), comment, activity_uri,
         now),
    )
