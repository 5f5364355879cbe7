"""An account deleted outright (a never-approved sign-up, rejected) goes with its follows and
posts, and the counts of those it followed or who followed it go down (m013's triggers,
counting down as the account's own deletion cascaded, re-created its counts row, which
its foreign key refused: the store now deletes those rows first)."""

from __future__ import annotations

from conftest import create_user

from xnode.posts.service import Draft
from xnode.store import accounts as account_store
from xnode.web.state import ACCOUNTS, POSTS, RELATIONSHIPS


async def test_rejecting_a_sign_up_with_counted_rows(client, app):
    alice = await create_user(app, "alice")
    dee = await create_user(app, "dee")
    # Rows a pending sign-up could only have through the services, never a page: a follow
    # each way and a post (the deletion must not depend on there being none).
    await app[RELATIONSHIPS].follow(alice.id, dee.id)
    await app[RELATIONSHIPS].follow(dee.id, alice.id)
    await app[POSTS].publish(dee.account, Draft("hello"))
    db = app[POSTS].db
    async with db.transaction() as conn:
        await account_store.set_user_state(conn, dee.id, "pending")
    assert (await account_store.account_stats(db, [alice.id, dee.id])) == {
        alice.id: (1, 1, 0, None), dee.id: (1, 1, 1, await db.fetchvalue(
            "SELECT created_at FROM posts WHERE account_id = ?", (dee.id,))),
    }  # fmt: skip
    await app[ACCOUNTS].reject(dee.id)
    assert await account_store.get_account(db, dee.id) is None
    assert (await account_store.account_stats(db, [alice.id]))[alice.id] == (0, 0, 0, None)
    assert await db.fetchvalue(
        "SELECT COUNT(*) FROM account_stats WHERE account_id = ?", (dee.id,)
    ) == 0
