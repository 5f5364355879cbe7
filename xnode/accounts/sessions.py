"""Server-side login sessions.

The cookie carries a random token; the database keeps only its SHA-256, so a
leaked database does not hand out live sessions.
"""

from __future__ import annotations

import hashlib
import secrets

from xnode.accounts.models import User
from xnode.clock import Clock
from xnode.store import accounts as account_store
from xnode.store import sessions as session_store
from xnode.store.database import Database

SESSION_LIFETIME_S = 30 * 24 * 3600
# Refresh the expiry at most this often, so reads do not turn into writes.
TOUCH_INTERVAL_S = 3600


def hash_token(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionService:
    """Creates, resolves and ends login sessions."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def start(self, account_id: int, ip: str = "", user_agent: str = "") -> str:
        """Start a session and return the token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        await session_store.insert_session(
            self.db,
            hash_token(token),
            account_id,
            now=now,
            expires_at=now + SESSION_LIFETIME_S,
            ip=ip,
            user_agent=user_agent,
        )
        return token

    async def resolve(self, token: str) -> User | None:
        """The active user a token belongs to, or None (expired, suspended, deleted)."""
        if not token or len(token) > 200:
            return None
        token_hash = hash_token(token)
        now = self.clock.now()
        found = await session_store.get_session(self.db, token_hash, now)
        if found is None:
            return None
        account_id, last_seen = found
        user = await account_store.get_user(self.db, account_id)
        if user is None or not user.is_active:
            return None
        if now - last_seen > TOUCH_INTERVAL_S:
            await session_store.touch_session(
                self.db, token_hash, now, now + SESSION_LIFETIME_S
            )
        return user

    async def end(self, token: str) -> None:
        """End one session (logout)."""
        await session_store.delete_session(self.db, hash_token(token))

    async def purge_expired(self) -> int:
        """Delete expired sessions; return how many."""
        return await session_store.purge_expired_sessions(self.db, self.clock.now())
