"""Username rules for local accounts."""

from __future__ import annotations

import re

from xnode.errors import InvalidInput

USERNAME_PATTERN = re.compile(r"^[a-z0-9_]{1,30}$")

# Names that would shadow routes, well-known paths or suggest authority.
RESERVED_USERNAMES = frozenset(
    {
        "about", "account", "accounts", "activity", "actor", "admin", "administrator",
        "api", "app", "apps", "auth", "calls", "contact", "dm", "dms", "explore",
        "federation", "followers", "following", "help", "inbox", "instance", "login",
        "logout", "mail", "media", "messages", "moderator", "mod", "nodeinfo", "notifications",
        "oauth", "outbox", "postmaster", "root", "search", "security", "settings",
        "signup", "static", "stun", "support", "system", "tags", "turn", "users",
        "webfinger", "well_known", "www", "xnode",
    }
)


def normalize_username(raw: str) -> str:
    """Return the canonical (lower-case, trimmed) form of a username."""
    return raw.strip().lstrip("@").lower()


def validate_username(raw: str, *, allow_reserved: bool = False) -> str:
    """Check a requested local username and return its canonical form.

    ``allow_reserved`` is for the operator (admin CLI): reserved names keep
    strangers from posing as the node, not the node's own admin.

    Raises:
        InvalidInput: if it breaks the pattern or is reserved.
    """
    name = normalize_username(raw)
    if not name:
        raise InvalidInput("Choose a username.", field="username")
    if not USERNAME_PATTERN.match(name):
        raise InvalidInput(
            "Usernames are 1 to 30 characters: letters a-z, digits and underscores.",
            field="username",
        )
    if name in RESERVED_USERNAMES and not allow_reserved:
        raise InvalidInput(f"The username '{name}' is reserved.", field="username")
    return name
