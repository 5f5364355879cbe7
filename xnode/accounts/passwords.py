"""Password policy and hashing (argon2id, memory-hard)."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from xnode.errors import InvalidInput
from xnode.ids import typeable_token

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

# argon2-cffi's defaults follow RFC 9106's second recommended profile
# (64 MiB, 3 passes), affordable on a small machine for interactive logins.
_hasher = PasswordHasher()


def check_password_policy(password: str, username: str) -> None:
    """Refuse passwords that are too short, too long or contain the username.

    Raises:
        InvalidInput: with a message saying which rule was broken.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters long.",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("That password is too long.", field="password")
    lowered = password.lower()
    if username and (username.lower() in lowered or lowered in username.lower()):
        raise InvalidInput("The password must not contain your username.", field="password")


async def hash_password(password: str) -> str:
    """Hash a password with argon2id, off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against a stored hash, off the event loop."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


# A hash of a random password, verified against when the username does not
# exist so that a failed login takes as long whether or not the user exists.
_DUMMY_HASH: str | None = None


async def burn_verification_time(password: str) -> None:
    """Spend about as long as a real verification (for unknown usernames)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = await hash_password(secrets.token_urlsafe(16))
    await verify_password(_DUMMY_HASH, password)


def generate_password() -> str:
    """A random password for one-time use (the first admin, resets)."""
    return typeable_token(15)
