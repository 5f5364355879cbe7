"""SQL for accounts: local users, remote actors as their servers describe them, deletion."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xnode.accounts.models import Account, ProfileField, User
from xnode.store import likes as like_store
from xnode.store import posts as post_store
from xnode.store import relationships as rel_store
from xnode.store.database import Connection, Database

_USER_SELECT = (
    "SELECT accounts.*, users.is_admin, users.state, users.must_change_password,"
    " users.signup_reason, users.created_at AS user_created_at, users.password_changed_at,"
    " users.password_hash"
    " FROM users JOIN accounts ON accounts.id = users.account_id"
)


def fields_to_json(fields: Sequence[ProfileField]) -> str:
    """Serialise profile fields for the ``fields_json`` column."""
    return json.dumps([{"name": f.name, "value": f.value} for f in fields], ensure_ascii=False)


async def insert_local_account(
    conn: Connection, account_id: int, username: str, now: float
) -> None:
    """Insert the account row of a new local user."""
    await conn.execute(
        "INSERT INTO accounts (id, username, username_key, domain, created_at, updated_at)"
        " VALUES (?, ?, ?, NULL, ?, ?)",
        (account_id, username, username.lower(), now, now),
    )
    await reindex_account(conn, account_id)


async def reindex_account(conn: Connection, account_id: int) -> None:
    """Refresh an account's row in the search index (removing it if deleted)."""
    await conn.execute("DELETE FROM accounts_fts WHERE rowid = ?", (account_id,))
    await conn.execute(
        "INSERT INTO accounts_fts (rowid, handle, display_name, bio)"
        " SELECT id, username || COALESCE('@' || domain, ''), display_name, bio_source"
        " FROM accounts WHERE id = ? AND deleted_at IS NULL",
        (account_id,),
    )


async def insert_user(
    conn: Connection,
    account_id: int,
    password_hash: str,
    *,
    is_admin: bool,
    state: str,
    must_change_password: bool,
    signup_reason: str,
    invite_id: int | None,
    now: float,
) -> None:
    """Insert the login data of a new local user."""
    await conn.execute(
        "INSERT INTO users (account_id, password_hash, is_admin, state, must_change_password,"
        " signup_reason, invite_id, created_at, password_changed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            account_id, password_hash, int(is_admin), state, int(must_change_password),
            signup_reason, invite_id, now, now,
        ),
    )


async def local_username_taken(conn: Connection, username: str) -> bool:
    """Whether a local account (live or deleted) already has this username."""
    async with conn.execute(
        "SELECT 1 FROM accounts WHERE domain IS NULL AND username_key = ?", (username.lower(),)
    ) as cursor:
        return await cursor.fetchone() is not None


async def get_account(db: Database, account_id: int) -> Account | None:
    """Fetch any account by id."""
    row = await db.lookup("SELECT * FROM accounts WHERE id = ?", (account_id,))
    return None if row is None else Account.from_row(row)


async def is_local(db: Database, account_id: int) -> bool:
    """Whether an account is one of this node's (False for remote and unknown ids).

    One column by the primary key, inline: the federation outbox asks this of every
    event, remote people's included, before building any account.
    """
    local = await db.lookup_value("SELECT domain IS NULL FROM accounts WHERE id = ?", (account_id,))
    return bool(local)


async def get_local_account(db: Database, username: str) -> Account | None:
    """Fetch a local account by username (case-insensitive)."""
    row = await db.lookup(
        "SELECT * FROM accounts WHERE domain IS NULL AND username_key = ?", (username.lower(),)
    )
    return None if row is None else Account.from_row(row)


async def get_user(db: Database, account_id: int) -> User | None:
    """Fetch a local user by account id."""
    row = await db.lookup(f"{_USER_SELECT} WHERE users.account_id = ?", (account_id,))
    return None if row is None else User.from_row(row)


async def get_user_with_hash(db: Database, username: str) -> tuple[User, str] | None:
    """Fetch a local user and their password hash by username."""
    row = await db.lookup(
        f"{_USER_SELECT} WHERE accounts.domain IS NULL AND accounts.username_key = ?",
        (username.lower(),),
    )
    return None if row is None else (User.from_row(row), row["password_hash"])


async def get_password_hash(db: Database, account_id: int) -> str | None:
    """The stored password hash of a local user."""
    password_hash: str | None = await db.lookup_value(
        "SELECT password_hash FROM users WHERE account_id = ?", (account_id,)
    )
    return password_hash


async def list_users(db: Database, state: str | None = None) -> list[User]:
    """Every local user (optionally only those in ``state``), oldest first."""
    if state is None:
        rows = await db.fetchall(f"{_USER_SELECT} ORDER BY accounts.id")
    else:
        rows = await db.fetchall(
            f"{_USER_SELECT} WHERE users.state = ? ORDER BY accounts.id", (state,)
        )
    return [User.from_row(row) for row in rows]


async def count_users(db: Database, state: str) -> int:
    """How many local users are in ``state`` (an indexed count, read inline)."""
    return int(await db.lookup_value("SELECT COUNT(*) FROM users WHERE state = ?", (state,)) or 0)


async def any_account(db: Database) -> bool:
    """Whether the database holds any account at all (a node lives in it)."""
    return await db.lookup_value("SELECT 1 FROM accounts LIMIT 1") is not None


async def set_password_hash(
    conn: Connection,
    account_id: int,
    password_hash: str,
    must_change: bool,
    now: float,
) -> None:
    """Replace a user's password hash."""
    await conn.execute(
        "UPDATE users SET password_hash = ?, must_change_password = ?, password_changed_at = ?"
        " WHERE account_id = ?",
        (password_hash, int(must_change), now, account_id),
    )


async def set_user_state(conn: Connection, account_id: int, state: str) -> None:
    """Set a user's approval state."""
    await conn.execute("UPDATE users SET state = ? WHERE account_id = ?", (state, account_id))


async def set_admin(conn: Connection, account_id: int, is_admin: bool) -> None:
    """Grant or remove admin rights."""
    await conn.execute(
        "UPDATE users SET is_admin = ? WHERE account_id = ?", (int(is_admin), account_id)
    )


async def set_suspended(
    conn: Connection, account_id: int, suspended_at: float | None
) -> None:
    """Suspend (with a time) or unsuspend (None) an account."""
    await conn.execute(
        "UPDATE accounts SET suspended_at = ?, updated_at = COALESCE(?, updated_at)"
        " WHERE id = ?",
        (suspended_at, suspended_at, account_id),
    )


async def update_profile(
    conn: Connection,
    account_id: int,
    *,
    display_name: str,
    bio_source: str,
    bio_html: str,
    fields: Sequence[ProfileField],
    locked: bool,
    discoverable: bool,
    hide_network: bool = False,
    now: float,
) -> None:
    """Replace the editable text parts of a profile."""
    await conn.execute(
        "UPDATE accounts SET display_name = ?, bio_source = ?, bio_html = ?, fields_json = ?,"
        " locked = ?, discoverable = ?, hide_network = ?, updated_at = ? WHERE id = ?",
        (
            display_name, bio_source, bio_html, fields_to_json(fields),
            int(locked), int(discoverable), int(hide_network), now, account_id,
        ),
    )
    await reindex_account(conn, account_id)


async def set_profile_image(
    conn: Connection, account_id: int, kind: str, file_name: str | None, now: float
) -> None:
    """Set or clear the avatar (``kind='avatar'``) or header image file."""
    column = {"avatar": "avatar_file", "header": "header_file"}[kind]
    await conn.execute(
        f"UPDATE accounts SET {column} = ?, updated_at = ? WHERE id = ?",
        (file_name, now, account_id),
    )


async def tombstone_local_account(conn: Connection, account_id: int, now: float) -> None:
    """Delete a local user: :func:`delete_account` (the cleanup a Delete{actor} from
    another server does too), and the user's login and sessions; a tombstone account
    row stays.

    The username stays taken for good: federation peers remember the actor
    URL, and a new person must never inherit an old identity.
    """
    await conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))
    await conn.execute("DELETE FROM users WHERE account_id = ?", (account_id,))
    await delete_account(conn, account_id, now, keep_remote_followers=True)


async def delete_pending_account(conn: Connection, account_id: int) -> None:
    """Remove a never-approved sign-up entirely (nothing was ever published).

    Its follows and posts (none through the pages; the services would allow them) go
    first, while the account is there: the account stats triggers (m013) count them
    down by upserting the account's row, which the cascade of the account's own deletion
    would re-create for an account that is gone (its foreign key refuses that).
    """
    await conn.execute(
        "DELETE FROM follows WHERE account_id = ?1 OR target_account_id = ?1", (account_id,)
    )
    await conn.execute("DELETE FROM posts WHERE account_id = ?", (account_id,))
    await conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
    await conn.execute("DELETE FROM accounts_fts WHERE rowid = ?", (account_id,))


async def set_remote_counts(
    conn: Connection,
    account_id: int,
    *,
    followers_count: int | None,
    following_count: int | None,
    statuses_count: int | None,
    now: float,
) -> None:
    """A remote account's counts as its server reports them (unknown ones are kept), and
    when its posts were last read."""
    await conn.execute(
        "UPDATE accounts SET followers_count = COALESCE(?, followers_count),"
        " following_count = COALESCE(?, following_count),"
        " statuses_count = COALESCE(?, statuses_count), backfilled_at = ?"
        " WHERE id = ? AND domain IS NOT NULL",
        (followers_count, following_count, statuses_count, now, account_id),
    )



async def account_stats(
    db: Database, account_ids: Iterable[int]
) -> dict[int, tuple[int, int, int, float | None]]:
    """(followers, following, posts, newest post time) of accounts, as this node knows
    them: accepted follows, and posts that are not deleted or direct (kept by the
    triggers of m013_account_stats; accounts without a row have none of either)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = await db.fetch_keyed(
        "SELECT account_id, followers_count, following_count, statuses_count, last_status_at"
        f" FROM account_stats WHERE account_id IN ({', '.join('?' * len(ids))})",
        ids, len(ids),
    )  # fmt: skip
    found: dict[int, tuple[int, int, int, float | None]] = dict.fromkeys(ids, (0, 0, 0, None))
    for row in rows:
        found[row[0]] = (row[1], row[2], row[3], row[4])
    return found


async def get_remote_account_by_handle(db: Database, username: str, domain: str) -> Account | None:
    """A remote account this node knows, by ``username@domain`` (case-insensitive)."""
    row = await db.lookup(
        "SELECT * FROM accounts WHERE username_key = ? AND domain = ?",
        (username.lower(), domain.lower()),
    )
    return None if row is None else Account.from_row(row)


async def set_local_actor_type(
    conn: Connection, account_id: int, actor_type: str, now: float
) -> None:
    """Mark a local account as a bot ('Service') or a person ('Person')."""
    assert actor_type in ("Person", "Service")
    await conn.execute(
        "UPDATE accounts SET actor_type = ?, updated_at = ? WHERE id = ? AND domain IS NULL",
        (actor_type, now, account_id),
    )


@dataclass(frozen=True)
class RemoteAccountRow:
    """The columns we keep for a remote actor (see ``resolver`` for where each comes from)."""

    uri: str
    username: str
    domain: str
    display_name: str
    bio_source: str
    bio_html: str
    fields_json: str
    url: str | None
    locked: bool
    discoverable: bool
    actor_type: str
    inbox_url: str
    shared_inbox_url: str | None
    outbox_url: str | None
    followers_url: str | None
    following_url: str | None
    featured_url: str | None
    also_known_as: tuple[str, ...]
    avatar_remote_url: str | None
    header_remote_url: str | None
    supports_calls: bool = False


async def account_by_uri(db: Database, uri: str) -> Account | None:
    """Any account (local or remote) by its actor URI."""
    row = await db.lookup("SELECT * FROM accounts WHERE uri = ?", (uri,))
    return None if row is None else Account.from_row(row)


async def upsert_remote_account(
    conn: Connection, new_id: int, data: RemoteAccountRow, now: float
) -> int:
    """Insert or refresh a remote account by URI; returns its id.

    A handle is unique per domain, but servers do recreate actors under an old
    name (a deleted and re-registered Mastodon user has a new key but the same
    URI; Misskey reuses names with new ids). When another row holds the handle
    with a different URI, that older row gives the handle up: it keeps its
    posts, renamed out of the way, and the newest actor owns the name.
    """
    key = data.username.lower()
    await conn.execute(
        "UPDATE accounts SET username_key = username_key || '~' || id"
        " WHERE domain = ? AND username_key = ? AND uri IS DISTINCT FROM ?",
        (data.domain, key, data.uri),
    )
    values = (
        data.username, key, data.domain, data.display_name, data.bio_source, data.bio_html,
        data.fields_json, int(data.locked), int(data.discoverable), data.url, data.actor_type,
        data.inbox_url, data.shared_inbox_url, data.outbox_url, data.followers_url,
        data.following_url, data.featured_url, json.dumps(list(data.also_known_as)),
        data.avatar_remote_url, data.header_remote_url, int(data.supports_calls), now,
    )  # fmt: skip
    async with conn.execute(
        "UPDATE accounts SET username = ?, username_key = ?, domain = ?, display_name = ?,"
        " bio_source = ?, bio_html = ?, fields_json = ?, locked = ?, discoverable = ?, url = ?,"
        " actor_type = ?, inbox_url = ?, shared_inbox_url = ?, outbox_url = ?,"
        " followers_url = ?, following_url = ?, featured_url = ?, also_known_as = ?,"
        " avatar_remote_url = ?, header_remote_url = ?, supports_calls = ?, fetched_at = ?,"
        " updated_at = ?"
        " WHERE uri = ? AND domain IS NOT NULL RETURNING id",
        (*values, now, data.uri),
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None:
        account_id = int(row[0])
    else:
        account_id = new_id
        await conn.execute(
            "INSERT INTO accounts (username, username_key, domain, display_name, bio_source,"
            " bio_html, fields_json, locked, discoverable, url, actor_type, inbox_url,"
            " shared_inbox_url, outbox_url, followers_url, following_url, featured_url,"
            " also_known_as, avatar_remote_url, header_remote_url, supports_calls, fetched_at,"
            " id, uri, created_at, updated_at)"
            f" VALUES ({', '.join('?' * 26)})",
            (*values, account_id, data.uri, now, now),
        )
    # The account may have been deleted and come back (Mastodon lets a user
    # cancel a deletion for a while): a fetch that succeeds means it lives.
    await conn.execute("UPDATE accounts SET deleted_at = NULL WHERE id = ?", (account_id,))
    await conn.execute("DELETE FROM accounts_fts WHERE rowid = ?", (account_id,))
    await conn.execute(
        "INSERT INTO accounts_fts (rowid, handle, display_name, bio)"
        " SELECT id, username || '@' || domain, display_name, bio_source FROM accounts"
        " WHERE id = ? AND discoverable = 1",
        (account_id,),
    )
    return account_id


async def set_moved_to(conn: Connection, account_id: int, target_id: int) -> None:
    """Record that an account moved to another (Move activity)."""
    await conn.execute(
        "UPDATE accounts SET moved_to_account_id = ? WHERE id = ?", (target_id, account_id)
    )


async def delete_account(conn: Connection, account_id: int, now: float, *,
                         keep_remote_followers: bool = False) -> None:  # fmt: skip
    """Forget what a deleted account left, whoever deleted it (a user or an admin here, or
    a Delete{actor} from its server): posts become tombstones (replies by others keep
    their place in threads) and boosts go, each with the writes of a single deletion;
    likes, reactions and follows are withdrawn with their counters and notifications;
    notifications it caused go; its profile is emptied and the account marked deleted.

    ``keep_remote_followers``: a local account's followers on other servers stay, as
    the audience its Delete{actor} is sent to. Its own signing keys are kept (that
    Delete is signed with them); a remote account's cached keys go.
    """
    await post_store.delete_posts_of(conn, account_id, now)
    await like_store.remove_likes_of(conn, account_id)
    await rel_store.delete_follows_of(
        conn, account_id, keep_remote_followers=keep_remote_followers
    )
    for statement in (
        "DELETE FROM notifications WHERE from_account_id = ?",
        "DELETE FROM account_keys WHERE account_id = ? AND private_pem IS NULL",
    ):
        await conn.execute(statement, (account_id,))
    await conn.execute(
        "UPDATE accounts SET display_name = '', bio_source = '', bio_html = '',"
        " fields_json = '[]', avatar_file = NULL, header_file = NULL,"
        " avatar_remote_url = NULL, header_remote_url = NULL, discoverable = 0,"
        " deleted_at = ?, updated_at = ? WHERE id = ?",
        (now, now, account_id),
    )
    await reindex_account(conn, account_id)
