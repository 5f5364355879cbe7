"""OAuth scopes as Mastodon defines them, and what each one grants.

A token holds top-level scopes (``read``, ``write``, ``follow``, ``push``, ``profile``,
``admin:read``, ``admin:write``) and granular ones (``read:statuses``, ``write:media``, …).
An endpoint requires one granular scope; a token satisfies it with that scope or with its
parent (``read`` covers every ``read:…``). ``follow`` is Mastodon's legacy bundle of the
relationship scopes, still requested by older apps.
"""

from __future__ import annotations

from xnode.errors import InvalidInput

_GRANULAR = {
    "read": (
        "accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
        "mutes", "notifications", "search", "statuses",
    ),
    "write": (
        "accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
        "follows", "lists", "media", "mutes", "notifications", "reports", "statuses",
    ),
    "admin:read": ("accounts", "reports", "domain_allows", "domain_blocks", "ip_blocks",
                   "email_domain_blocks", "canonical_email_blocks"),
    "admin:write": ("accounts", "reports", "domain_allows", "domain_blocks", "ip_blocks",
                    "email_domain_blocks", "canonical_email_blocks"),
}  # fmt: skip
_FOLLOW_BUNDLE = frozenset({
    "read:blocks", "read:follows", "read:mutes", "write:blocks", "write:follows", "write:mutes",
})  # fmt: skip

KNOWN_SCOPES: frozenset[str] = frozenset(
    {"read", "write", "follow", "push", "profile", "admin:read", "admin:write"}
    | {f"{parent}:{child}" for parent, children in _GRANULAR.items() for child in children}
)
DEFAULT_SCOPES = ("read",)
MAX_SCOPES_TEXT = 1000


def parse_scopes(text: str | None, *, default: tuple[str, ...] = DEFAULT_SCOPES) -> tuple[str, ...]:
    """Scopes from a space-separated list (``+`` too, as some apps send), in order, once each.

    Raises:
        InvalidInput: an unknown scope, or an absurdly long list.
    """
    if text is None or not text.strip():
        return default
    if len(text) > MAX_SCOPES_TEXT:
        raise InvalidInput("The scope list is too long.", field="scope")
    found: list[str] = []
    for scope in text.replace("+", " ").split():
        if scope not in KNOWN_SCOPES:
            raise InvalidInput(f"Unknown scope {scope[:60]!r}.", field="scope")
        if scope not in found:
            found.append(scope)
    return tuple(found)


def is_admin_scope(scope: str) -> bool:
    """Whether the scope acts on the node as its admin."""
    return scope.startswith("admin:")


def grants(held: tuple[str, ...] | frozenset[str], needed: str) -> bool:
    """Whether scopes ``held`` allow what ``needed`` (one granular or top-level scope) does."""
    if needed in held:
        return True
    if needed in _FOLLOW_BUNDLE and "follow" in held:
        return True
    parent, _, _ = needed.rpartition(":")
    while parent:
        if parent in held:
            return True
        parent, _, _ = parent.rpartition(":")
    return False


def within(requested: tuple[str, ...], allowed: tuple[str, ...]) -> bool:
    """Whether every requested scope is one the app registered (or is covered by one)."""
    return all(grants(tuple(allowed), scope) for scope in requested)
