"""Our signing keys (made on first use) and the cache of remote actors' public keys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from federation.keys import (
    PrivateKey,
    PublicKey,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key_pem,
    private_key_to_pem,
    public_key_of,
)
from xnode.accounts.models import Account
from xnode.activitypub.urls import Urls
from xnode.clock import Clock
from xnode.ids import new_id
from xnode.store import keys as key_store
from xnode.store.database import Database, Row


@dataclass(frozen=True)
class SigningKey:
    """A private key with the id peers use to fetch its public half."""

    key_id: str
    private_key: PrivateKey
    public_key: PublicKey


@dataclass(frozen=True)
class ActorKeys:
    """A local actor's RSA key (HTTP signatures) and Ed25519 key (integrity proofs)."""

    rsa: SigningKey
    ed25519: SigningKey | None


class KeyRing:
    """Hands out our keys, generating them the first time an actor needs them."""

    def __init__(self, db: Database, urls: Urls, clock: Clock) -> None:
        self.db = db
        self.urls = urls
        self.clock = clock
        self._cache: dict[int | None, ActorKeys] = {}
        self._lock = asyncio.Lock()

    async def for_account(self, account: Account) -> ActorKeys:
        """The keys of a local account."""
        return await self._keys(
            account.id,
            self.urls.main_key(account.username),
            self.urls.ed25519_key(account.username),
        )

    async def instance(self) -> ActorKeys:
        """The instance actor's keys (RSA only)."""
        return await self._keys(None, self.urls.instance_key, None)

    async def _keys(self, account_id: int | None, rsa_id: str, ed_id: str | None) -> ActorKeys:
        if account_id in self._cache:
            return self._cache[account_id]
        async with self._lock:
            # Another caller may have loaded them while this one waited for the lock
            # (a fan-out starts dozens of sends at once).
            if account_id in self._cache:
                return self._cache[account_id]
            rows = {row["algorithm"]: row for row in await key_store.keys_of(self.db, account_id)}
            rsa_key = await self._ensure(account_id, rsa_id, "rsa", rows.get("rsa"))
            ed_key = (
                await self._ensure(account_id, ed_id, "ed25519", rows.get("ed25519"))
                if ed_id else None
            )
            keys = self._cache[account_id] = ActorKeys(rsa_key, ed_key)
            return keys

    async def _ensure(
        self, account_id: int | None, key_id: str, algorithm: str, row: Row | None
    ) -> SigningKey:
        if row is not None and row["private_pem"]:
            # Our own key from our own database: no 30 ms consistency check.
            private = load_private_key_pem(row["private_pem"], own=True)
            return SigningKey(row["key_id"], private, public_key_of(private))
        # RSA generation takes tens of milliseconds: keep it off the event loop.
        private = await asyncio.to_thread(
            generate_rsa_key if algorithm == "rsa" else generate_ed25519_key
        )
        public = public_key_of(private)
        stored = await key_store.add_own_key(
            self.db, new_id(), account_id=account_id, key_id=key_id, algorithm=algorithm,
            public_pem=public.to_pem(), private_pem=private_key_to_pem(private),
            now=self.clock.now(),
        )  # fmt: skip
        if stored["private_pem"] and stored["public_pem"] != public.to_pem():
            # Another process of this node made the key first: use that one.
            private = load_private_key_pem(stored["private_pem"], own=True)
            public = public_key_of(private)
        return SigningKey(key_id, private, public)

    def forget(self, account_id: int) -> None:
        """Drop a cached key set (after rotation or deletion)."""
        self._cache.pop(account_id, None)
