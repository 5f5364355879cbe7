"""Account and user records as the rest of the node sees them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from xnode.memo import RowMemo, hash_once
from xnode.store.database import Row


@dataclass(frozen=True)
class ProfileField:
    """One name/value pair shown on a profile (a PropertyValue in ActivityPub)."""

    name: str
    value: str


@hash_once
@dataclass(frozen=True)
class Account:
    """An actor this node knows: local (``domain`` is None) or remote."""

    id: int
    username: str
    domain: str | None
    display_name: str
    bio_source: str
    bio_html: str
    fields: tuple[ProfileField, ...]
    avatar_file: str | None
    header_file: str | None
    locked: bool
    discoverable: bool
    hide_network: bool
    uri: str | None
    url: str | None
    created_at: float
    updated_at: float
    suspended_at: float | None
    deleted_at: float | None
    # Remote actors only (local ones derive these from the base URL).
    actor_type: str = "Person"
    inbox_url: str | None = None
    shared_inbox_url: str | None = None
    outbox_url: str | None = None
    followers_url: str | None = None
    following_url: str | None = None
    featured_url: str | None = None
    also_known_as: tuple[str, ...] = ()
    moved_to_account_id: int | None = None
    avatar_remote_url: str | None = None
    header_remote_url: str | None = None
    fetched_at: float | None = None
    # A remote account's counts as its own server reports them (None: not known).
    followers_count: int | None = None
    following_count: int | None = None
    statuses_count: int | None = None
    backfilled_at: float | None = None  # when its outbox and pins were last read
    # A remote actor's server speaks the calls protocol (m010); local accounts always do.
    supports_calls: bool = False

    @property
    def avatar_url(self) -> str | None:
        """Where pages show the avatar from: our media store, or our cache of the remote
        one (never the other server itself: readers' addresses stay here)."""
        if self.avatar_file:
            return f"/media/{self.avatar_file}"
        return _remote_image_path(self.id, "avatar", self.avatar_remote_url)

    @property
    def header_url(self) -> str | None:
        """Where pages show the header image from (as :attr:`avatar_url`)."""
        if self.header_file:
            return f"/media/{self.header_file}"
        return _remote_image_path(self.id, "header", self.header_remote_url)

    @property
    def delivery_inbox(self) -> str | None:
        """The inbox to deliver to: the shared inbox when the server has one."""
        return self.shared_inbox_url or self.inbox_url

    @property
    def is_local(self) -> bool:
        """Whether the account lives on this node."""
        return self.domain is None

    @property
    def is_suspended(self) -> bool:
        """Whether an admin has suspended the account."""
        return self.suspended_at is not None

    @property
    def is_deleted(self) -> bool:
        """Whether the account has been deleted (a tombstone remains)."""
        return self.deleted_at is not None

    @property
    def acct(self) -> str:
        """``alice`` for local accounts, ``alice@host`` for remote ones."""
        return self.username if self.domain is None else f"{self.username}@{self.domain}"

    @property
    def name_for_display(self) -> str:
        """The display name, falling back to the username."""
        return self.display_name or self.username

    @classmethod
    def from_row(cls, row: Row) -> Account:
        """The account of an ``accounts`` row (the same object while the row reads the same)."""
        return _ACCOUNTS(row)

    @classmethod
    def build(cls, row: Row) -> Account:
        """Build an account from an ``accounts`` row."""
        fields = tuple(
            ProfileField(str(item.get("name", "")), str(item.get("value", "")))
            for item in _json_list(row["fields_json"])
            if isinstance(item, dict)
        )
        return cls(
            id=row["id"],
            username=row["username"],
            domain=row["domain"],
            display_name=row["display_name"],
            bio_source=row["bio_source"],
            bio_html=row["bio_html"],
            fields=fields,
            avatar_file=row["avatar_file"],
            header_file=row["header_file"],
            locked=bool(row["locked"]),
            discoverable=bool(row["discoverable"]),
            hide_network=bool(row["hide_network"]),
            uri=row["uri"],
            url=row["url"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            suspended_at=row["suspended_at"],
            deleted_at=row["deleted_at"],
            **_remote_fields(row),
        )


def _remote_image_path(account_id: int, kind: str, remote_url: str | None) -> str | None:
    """The node's path for a remote image; a new remote URL gets a new path (browser caches)."""
    if not remote_url:
        return None
    version = hashlib.sha256(remote_url.encode()).hexdigest()[:12]
    return f"/media/remote/{kind}/{account_id}?v={version}"


def _json_list(value: str | None) -> list[object]:
    """A JSON array column; most are empty, which needs no parsing."""
    if not value or value == "[]":
        return []
    parsed = json.loads(value)
    return parsed if isinstance(parsed, list) else []


def _count_fields(row: Row) -> dict[str, Any]:
    """Columns added by m007 (absent in older row shapes)."""
    if "backfilled_at" not in row.keys():  # noqa: SIM118
        return {}
    return {
        "followers_count": row["followers_count"],
        "following_count": row["following_count"],
        "statuses_count": row["statuses_count"],
        "backfilled_at": row["backfilled_at"],
        **_call_fields(row),
    }


def _call_fields(row: Row) -> dict[str, object]:
    """The column added by m010 (absent in older row shapes)."""
    if "supports_calls" not in row.keys():  # noqa: SIM118
        return {}
    return {"supports_calls": bool(row["supports_calls"])}


def _remote_fields(row: Row) -> dict[str, Any]:
    """Columns added by the federation migration (absent in older row shapes)."""
    # sqlite3.Row's `in` tests values, not column names.
    if "inbox_url" not in row.keys():  # noqa: SIM118
        return {}
    return {
        "actor_type": row["actor_type"],
        "inbox_url": row["inbox_url"],
        "shared_inbox_url": row["shared_inbox_url"],
        "outbox_url": row["outbox_url"],
        "followers_url": row["followers_url"],
        "following_url": row["following_url"],
        "featured_url": row["featured_url"],
        "also_known_as": tuple(_json_list(row["also_known_as"])),
        "moved_to_account_id": row["moved_to_account_id"],
        "avatar_remote_url": row["avatar_remote_url"],
        "header_remote_url": row["header_remote_url"],
        "fetched_at": row["fetched_at"],
        **_count_fields(row),
    }


# Pages build the same authors over and over (xnode/memo.py).
_ACCOUNTS = RowMemo(Account.build)


@dataclass(frozen=True)
class User:
    """A person with a login on this node, with their account."""

    account: Account
    is_admin: bool
    state: str
    must_change_password: bool
    signup_reason: str
    created_at: float
    password_changed_at: float

    @property
    def id(self) -> int:
        """The account id (users and accounts share it)."""
        return self.account.id

    @property
    def username(self) -> str:
        """The local username."""
        return self.account.username

    @property
    def is_active(self) -> bool:
        """Approved, not suspended, not deleted: may log in and act."""
        return (
            self.state == "active"
            and not self.account.is_suspended
            and not self.account.is_deleted
        )

    @classmethod
    def from_row(cls, row: Row) -> User:
        """Build a user from a joined ``users``/``accounts`` row."""
        return cls(
            account=Account.from_row(row),
            is_admin=bool(row["is_admin"]),
            state=row["state"],
            must_change_password=bool(row["must_change_password"]),
            signup_reason=row["signup_reason"],
            created_at=row["user_created_at"],
            password_changed_at=row["password_changed_at"],
        )


@dataclass(frozen=True)
class Invite:
    """An invitation code for sign-up in invite mode."""

    id: int
    code: str
    created_by: int | None
    created_at: float
    expires_at: float | None
    max_uses: int | None
    uses: int
    revoked_at: float | None

    def usable_at(self, now: float) -> bool:
        """Whether the code may still be used at time ``now``."""
        if self.revoked_at is not None:
            return False
        if self.expires_at is not None and now >= self.expires_at:
            return False
        return self.max_uses is None or self.uses < self.max_uses

    @classmethod
    def from_row(cls, row: Row) -> Invite:
        """Build an invite from an ``invites`` row."""
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118


@dataclass(frozen=True)
class Follow:
    """A follow, or a request still pending, from one account to another."""

    id: int
    account_id: int
    target_account_id: int
    uri: str | None
    state: str
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Follow:
        """Build a follow from a ``follows`` row."""
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            target_account_id=row["target_account_id"],
            uri=row["uri"],
            state=row["state"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class AccountStats:
    """An account's counts as this node shows them (profiles, the client API)."""

    followers: int = 0
    following: int = 0
    posts: int = 0
    last_post_at: float | None = None
