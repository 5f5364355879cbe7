"""Account rules: sign-up by registration mode, login, approval, suspension,
passwords, deletion and invites. Used by the web UI and the CLI alike."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from xnode.accounts import passwords
from xnode.accounts.models import Account, AccountStats, Invite, User
from xnode.accounts.usernames import validate_username
from xnode.clock import Clock
from xnode.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from xnode.events import AccountDeleted, EventBus
from xnode.ids import new_id, typeable_token
from xnode.settings import REGISTRATION_MODES, Settings
from xnode.store import accounts as account_store
from xnode.store import invites as invite_store
from xnode.store import sessions as session_store
from xnode.store.database import Database
from xnode.store.node_settings import get_node_setting, set_node_setting

log = logging.getLogger(__name__)

MAX_SIGNUP_REASON = 1000
MAX_INVITE_USES = 10_000


@dataclass(frozen=True)
class SignupResult:
    """A new user, and whether they must wait for an admin's approval."""

    user: User
    pending: bool


class AccountService:
    """Everything that creates, changes or removes local users."""

    def __init__(
        self, db: Database, settings: Settings, clock: Clock, events: EventBus | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.events = events or EventBus()

    # --- registration mode -------------------------------------------------

    async def registration_mode(self) -> str:
        """The current mode: the admin's choice if made, else the config file's."""
        stored = await get_node_setting(self.db, "registration")
        return stored if stored in REGISTRATION_MODES else self.settings.registration

    async def set_registration_mode(self, mode: str) -> None:
        """Change the registration mode at run time.

        Raises:
            InvalidInput: for an unknown mode.
        """
        if mode not in REGISTRATION_MODES:
            raise InvalidInput(
                f"Registration mode must be one of {', '.join(REGISTRATION_MODES)}.",
                field="registration",
            )
        await set_node_setting(self.db, "registration", mode, self.clock.now())

    # --- sign-up -------------------------------------------------------------

    async def sign_up(
        self,
        username: str,
        password: str,
        *,
        invite_code: str = "",
        reason: str = "",
    ) -> SignupResult:
        """Register through the public form, following the registration mode.

        Raises:
            Forbidden: registrations are closed.
            InvalidInput: bad username, password, reason or invite code.
            Conflict: the username is taken.
        """
        mode = await self.registration_mode()
        if mode == "closed":
            raise Forbidden("This node is not accepting new accounts.")
        reason = reason.strip()
        if len(reason) > MAX_SIGNUP_REASON:
            raise InvalidInput("The reason is too long.", field="reason")
        if mode == "invite" and not invite_code.strip():
            raise InvalidInput("An invite code is needed to join this node.", field="invite")
        state = "pending" if mode == "approval" else "active"
        user = await self.create_user(
            username,
            password,
            state=state,
            signup_reason=reason,
            invite_code=invite_code.strip() if mode == "invite" else "",
        )
        return SignupResult(user=user, pending=state == "pending")

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        is_admin: bool = False,
        state: str = "active",
        must_change_password: bool = False,
        signup_reason: str = "",
        invite_code: str = "",
        allow_reserved: bool = False,
    ) -> User:
        """Create a local user directly (admin CLI), ignoring the registration mode.

        ``allow_reserved`` lets the operator take a reserved name such as ``admin``.

        Raises:
            InvalidInput: bad username, password or invite code.
            Conflict: the username is taken.
        """
        name = validate_username(username, allow_reserved=allow_reserved)
        passwords.check_password_policy(password, name)
        password_hash = await passwords.hash_password(password)
        now = self.clock.now()
        account_id = new_id()
        async with self.db.transaction() as conn:
            if await account_store.local_username_taken(conn, name):
                raise Conflict(f"The username '{name}' is already taken.", field="username")
            invite_id = None
            if invite_code:
                invite = await invite_store.get_invite_by_code(conn, invite_code)
                if invite is None or not invite.usable_at(now):
                    raise InvalidInput(
                        "That invite code is not valid (wrong, expired, used up or revoked).",
                        field="invite",
                    )
                invite_id = invite.id
                await invite_store.count_invite_use(conn, invite.id)
            await account_store.insert_local_account(conn, account_id, name, now)
            await account_store.insert_user(
                conn,
                account_id,
                password_hash,
                is_admin=is_admin,
                state=state,
                must_change_password=must_change_password,
                signup_reason=signup_reason,
                invite_id=invite_id,
                now=now,
            )
        log.info("created user %s (state %s, admin %s)", name, state, is_admin)
        return await self.require_user(account_id)

    # --- lookup --------------------------------------------------------------

    async def stats(self, accounts: Sequence[Account]) -> dict[int, AccountStats]:
        """Counts of accounts: what this node knows of local ones; for remote ones the
        counts their server reports when it reported them (else what this node knows)."""
        known = await account_store.account_stats(self.db, (a.id for a in accounts))
        found = {}
        for account in accounts:
            followers, following, posts, newest = known.get(account.id, (0, 0, 0, None))
            if not account.is_local:
                followers = _reported(account.followers_count, followers)
                following = _reported(account.following_count, following)
                posts = _reported(account.statuses_count, posts)
            found[account.id] = AccountStats(followers, following, posts, newest)
        return found

    async def account(self, account_id: int) -> Account | None:
        """Any account this node knows (local or remote, deleted and suspended included)."""
        return await account_store.get_account(self.db, account_id)

    async def local_account(self, username: str) -> Account | None:
        """A local account by username (case-insensitive), in whatever state."""
        return await account_store.get_local_account(self.db, username)

    async def known_remote_account(self, username: str, domain: str) -> Account | None:
        """A remote account this node already knows, by ``username@domain`` (no lookup
        on the network)."""
        return await account_store.get_remote_account_by_handle(self.db, username, domain)

    async def user(self, account_id: int) -> User | None:
        """The local user of an account, or None (remote, or never a user)."""
        return await account_store.get_user(self.db, account_id)

    async def require_user(self, account_id: int) -> User:
        """Fetch a user by id.

        Raises:
            NotFound: no such local user.
        """
        user = await account_store.get_user(self.db, account_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def require_user_by_name(self, username: str) -> User:
        """Fetch a user by username.

        Raises:
            NotFound: no such local user.
        """
        found = await account_store.get_user_with_hash(self.db, username.strip().lstrip("@"))
        if found is None:
            raise NotFound(f"No user named '{username}'.")
        return found[0]

    async def list_users(self, state: str | None = None) -> list[User]:
        """Every local user, optionally only those in one state."""
        return await account_store.list_users(self.db, state)

    async def holds_a_node(self) -> bool:
        """Whether the database already holds accounts (``xnode init`` refuses to reuse it)."""
        return await account_store.any_account(self.db)

    async def pending_count(self) -> int:
        """How many sign-ups wait for an admin's approval."""
        return await account_store.count_users(self.db, "pending")

    # --- login and passwords -------------------------------------------------

    async def authenticate(self, username: str, password: str) -> User:
        """Check a username and password.

        Raises:
            Unauthorized: unknown user or wrong password (one message for both).
            Forbidden: the account awaits approval or is suspended.
        """
        found = await account_store.get_user_with_hash(self.db, username.strip().lstrip("@"))
        if found is None:
            await passwords.burn_verification_time(password)
            raise Unauthorized("Wrong username or password.")
        user, password_hash = found
        if not await passwords.verify_password(password_hash, password):
            raise Unauthorized("Wrong username or password.")
        if user.state == "pending":
            raise Forbidden("Your account is waiting for an administrator's approval.")
        if user.account.is_suspended:
            raise Forbidden("This account is suspended.")
        return user

    async def change_password(
        self, account_id: int, current: str, new: str, keep_session_hash: str | None = None
    ) -> None:
        """Change one's own password after checking the current one.

        Every other session of the account is revoked.

        Raises:
            Unauthorized: the current password is wrong.
            InvalidInput: the new password breaks the policy.
        """
        user = await self.require_user(account_id)
        stored = await account_store.get_password_hash(self.db, account_id)
        if stored is None or not await passwords.verify_password(stored, current):
            raise Unauthorized("The current password is wrong.", field="current_password")
        await self.set_password(account_id, new, keep_session_hash=keep_session_hash, user=user)

    async def set_password(
        self,
        account_id: int,
        new: str,
        *,
        must_change: bool = False,
        keep_session_hash: str | None = None,
        user: User | None = None,
    ) -> None:
        """Set a password (admin reset, or after checks) and revoke other sessions.

        Raises:
            NotFound: no such user.
            InvalidInput: the password breaks the policy.
        """
        user = user or await self.require_user(account_id)
        passwords.check_password_policy(new, user.username)
        password_hash = await passwords.hash_password(new)
        async with self.db.transaction() as conn:
            await account_store.set_password_hash(
                conn, account_id, password_hash, must_change, self.clock.now()
            )
            await session_store.delete_sessions_of(conn, account_id, keep_session_hash)

    # --- moderation ------------------------------------------------------------

    async def approve(self, account_id: int) -> User:
        """Approve a pending sign-up.

        Raises:
            NotFound: no such user.
            Conflict: the user is not pending.
        """
        await self._require_pending(account_id)
        async with self.db.transaction() as conn:
            await account_store.set_user_state(conn, account_id, "active")
        return await self.require_user(account_id)

    async def reject(self, account_id: int) -> None:
        """Reject a pending sign-up, removing it entirely.

        Raises:
            NotFound: no such user.
            Conflict: the user is not pending.
        """
        await self._require_pending(account_id)
        async with self.db.transaction() as conn:
            await account_store.delete_pending_account(conn, account_id)

    async def _require_pending(self, account_id: int) -> User:
        user = await self.require_user(account_id)
        if user.state != "pending":
            raise Conflict(f"{user.username} is not waiting for approval.")
        return user

    async def set_suspended(self, account_id: int, suspended: bool) -> User:
        """Suspend (logging the user out everywhere) or unsuspend a user.

        Raises:
            NotFound: no such user.
        """
        await self.require_user(account_id)
        async with self.db.transaction() as conn:
            await account_store.set_suspended(
                conn, account_id, self.clock.now() if suspended else None
            )
            if suspended:
                await session_store.delete_sessions_of(conn, account_id)
        return await self.require_user(account_id)

    async def set_admin(self, account_id: int, is_admin: bool) -> None:
        """Grant or remove admin rights.

        Raises:
            NotFound: no such user.
        """
        await self.require_user(account_id)
        async with self.db.transaction() as conn:
            await account_store.set_admin(conn, account_id, is_admin)

    async def delete_user(self, account_id: int) -> None:
        """Delete a user's data and sessions, leaving a tombstone.

        Raises:
            NotFound: no such user.
            Conflict: it is the last active admin.
        """
        user = await self.require_user(account_id)
        if user.is_admin:
            admins = [u for u in await self.list_users("active") if u.is_admin and u.is_active]
            if len(admins) <= 1 and user.is_active:
                raise Conflict("The last administrator cannot be deleted.")
        async with self.events.change(self.db) as change:
            await account_store.tombstone_local_account(change.conn, account_id, self.clock.now())
            change.emit(AccountDeleted(account_id))
        log.info("deleted user %s", user.username)

    async def delete_own_account(self, account_id: int, password: str) -> None:
        """Self-deletion, confirmed with the password.

        Raises:
            Unauthorized: the password is wrong.
            Conflict: the user is the last administrator.
        """
        stored = await account_store.get_password_hash(self.db, account_id)
        if stored is None or not await passwords.verify_password(stored, password):
            raise Unauthorized("The password is wrong.", field="password")
        await self.delete_user(account_id)

    # --- invites -------------------------------------------------------------

    async def create_invite(
        self,
        created_by: int | None,
        *,
        expires_in_s: float | None = None,
        max_uses: int | None = None,
    ) -> Invite:
        """Create an invite code.

        Raises:
            InvalidInput: a non-positive expiry or use count.
        """
        if expires_in_s is not None and expires_in_s <= 0:
            raise InvalidInput("The expiry must be in the future.", field="expires")
        if max_uses is not None and not 1 <= max_uses <= MAX_INVITE_USES:
            raise InvalidInput(
                f"Maximum uses must be between 1 and {MAX_INVITE_USES}.", field="max_uses"
            )
        now = self.clock.now()
        code = typeable_token(12)
        await invite_store.insert_invite(
            self.db,
            new_id(),
            code,
            created_by=created_by,
            now=now,
            expires_at=None if expires_in_s is None else now + expires_in_s,
            max_uses=max_uses,
        )
        invite = await invite_store.find_invite(self.db, code)
        assert invite is not None
        return invite

    async def list_invites(self) -> list[Invite]:
        """Every invite, newest first."""
        return await invite_store.list_invites(self.db)

    async def revoke_invite(self, code: str) -> None:
        """Revoke an invite.

        Raises:
            NotFound: no live invite has that code.
        """
        if not await invite_store.revoke_invite(self.db, code.strip(), self.clock.now()):
            raise NotFound("No live invite with that code.")


def _reported(remote: int | None, known: int) -> int:
    return known if remote is None else remote
