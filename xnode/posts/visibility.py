"""Who may see a post: one rule, stated once in Python and once as SQL.

The Python form decides single posts (post pages, actions, notifications);
the SQL form filters lists (timelines, profiles, hashtags, search) inside the
query so pagination stays exact. Both must agree; the privacy-matrix tests
check every surface against the Python rule.

The rule:
- the author always sees their own post;
- nobody sees posts across a block, in either direction;
- public and unlisted posts are visible to everyone (logged out included);
- followers-only posts to accepted followers and mentioned accounts;
- direct posts to mentioned accounts only;
- posts by suspended or deleted accounts, and deleted posts, to nobody but the author
  (deleted posts show as tombstones).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Audience:
    """How one viewer stands towards one post."""

    is_author: bool = False
    follows_author: bool = False
    mentioned: bool = False
    blocked: bool = False
    author_hidden: bool = False


ANONYMOUS = Audience()


def can_view(visibility: str, audience: Audience) -> bool:
    """Whether a viewer in ``audience`` may see a post of ``visibility``."""
    if audience.is_author:
        return True
    if audience.blocked or audience.author_hidden:
        return False
    if visibility in ("public", "unlisted"):
        return True
    if visibility == "followers":
        return audience.follows_author or audience.mentioned
    if visibility == "direct":
        return audience.mentioned
    return False


def visible_sql(viewer_id: int | None, alias: str = "p") -> tuple[str, list[int]]:
    """A SQL condition on posts table alias ``alias`` that applies :func:`can_view`.

    Returns:
        The condition and its parameters (in order).
    """
    author_live = (
        f"EXISTS (SELECT 1 FROM accounts va WHERE va.id = {alias}.account_id"
        " AND va.suspended_at IS NULL AND va.deleted_at IS NULL)"
    )
    if viewer_id is None:
        return f"({alias}.visibility IN ('public', 'unlisted') AND {author_live})", []
    condition = (
        f"({alias}.account_id = ? OR ({author_live}"
        " AND NOT EXISTS (SELECT 1 FROM blocks vb WHERE"
        f" (vb.account_id = {alias}.account_id AND vb.target_account_id = ?)"
        f" OR (vb.account_id = ? AND vb.target_account_id = {alias}.account_id))"
        f" AND ({alias}.visibility IN ('public', 'unlisted')"
        f" OR ({alias}.visibility = 'followers' AND EXISTS (SELECT 1 FROM follows vf"
        f" WHERE vf.account_id = ? AND vf.target_account_id = {alias}.account_id"
        " AND vf.state = 'accepted'))"
        f" OR ({alias}.visibility IN ('followers', 'direct') AND EXISTS"
        f" (SELECT 1 FROM mentions vm WHERE vm.post_id = {alias}.id AND vm.account_id = ?)))))"
    )
    return condition, [viewer_id] * 5
