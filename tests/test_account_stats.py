"""The counts kept by m013's triggers always equal counting the rows again."""

from __future__ import annotations

from conftest import create_user

from xnode.posts.service import Draft
from xnode.store import accounts as account_store
from xnode.web.state import ACCOUNTS, DMS, POSTS, PROFILES, RELATIONSHIPS


async def _counted(db, account_id):
    followers = await db.fetchvalue(
        "SELECT COUNT(*) FROM follows WHERE state = 'accepted' AND target_account_id = ?",
        (account_id,))  # fmt: skip
    following = await db.fetchvalue(
        "SELECT COUNT(*) FROM follows WHERE state = 'accepted' AND account_id = ?",
        (account_id,))  # fmt: skip
    posts = await db.fetchvalue(
        "SELECT COUNT(*) FROM posts WHERE account_id = ? AND deleted_at IS NULL"
        " AND visibility <> 'direct'", (account_id,))  # fmt: skip
    return followers, following, posts


async def _check(app, *users):
    db = app[POSTS].db
    kept = await account_store.account_stats(db, [u.id for u in users])
    for user in users:
        assert kept[user.id][:3] == await _counted(db, user.id), user.username


async def test_counts_follow_every_change(client, app):
    from xnode.accounts.profile import ProfileEdit

    alice, bob, carol = [await create_user(app, n) for n in ("alice", "bob", "carol")]
    await _check(app, alice, bob, carol)
    first = await app[POSTS].publish(alice.account, Draft("one"))
    await app[POSTS].publish(alice.account, Draft("two", visibility="followers"))
    await app[POSTS].publish(alice.account, Draft("@bob secret", visibility="direct"))
    await app[POSTS].boost(bob.account, first.id)
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await app[RELATIONSHIPS].follow(carol.id, alice.id)
    await _check(app, alice, bob, carol)
    kept = await account_store.account_stats(app[POSTS].db, [alice.id])
    assert kept[alice.id][:3] == (2, 0, 2) and kept[alice.id][3] is not None
    await app[POSTS].delete(alice.id, first.id)
    await app[RELATIONSHIPS].unfollow(bob.id, alice.id)
    await _check(app, alice, bob, carol)
    # A locked account: pending follows do not count until accepted.
    await app[PROFILES].edit_profile(alice.id, ProfileEdit(
        display_name="", bio="", fields=(), locked=True, discoverable=True))
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    await _check(app, alice, bob)
    await app[RELATIONSHIPS].accept_request(alice.id, bob.id)
    await _check(app, alice, bob)
    # A block ends follows both ways.
    await app[RELATIONSHIPS].block(alice.id, carol.id)
    await _check(app, alice, bob, carol)
    await app[DMS].start(bob.account, "@alice", "hello")
    await app[ACCOUNTS].delete_user(carol.id)
    await _check(app, alice, bob)


async def test_the_migration_counts_what_was_there_before(client, app):
    from xnode.store.migrations.m013_account_stats import STATEMENTS

    alice, bob = [await create_user(app, n) for n in ("alice", "bob")]
    await app[POSTS].publish(alice.account, Draft("one"))
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    db = app[POSTS].db
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM account_stats")
        for statement in STATEMENTS[1:3]:  # the backfill, as on an existing node
            await conn.execute(statement)
    await _check(app, alice, bob)
    kept = await account_store.account_stats(db, [alice.id])
    assert kept[alice.id][:3] == (1, 0, 1)
