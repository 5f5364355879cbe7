"""The URLs of this node's ActivityPub objects (Mastodon-shaped, so peers find them familiar).

Changing any of these breaks federation with every server that stored them.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@dataclass(frozen=True)
class Urls:
    """Builds ActivityPub ids from the node's base URL."""

    base: str

    def actor(self, username: str) -> str:
        """A local person's actor id."""
        return f"{self.base}/users/{username}"

    def main_key(self, username: str) -> str:
        """Id of the RSA key used for HTTP signatures."""
        return f"{self.actor(username)}#main-key"

    def ed25519_key(self, username: str) -> str:
        """Id of the Ed25519 key used for object integrity proofs (FEP-521a Multikey)."""
        return f"{self.actor(username)}#ed25519-key"

    def inbox(self, username: str) -> str:
        """A person's inbox."""
        return f"{self.actor(username)}/inbox"

    @property
    def shared_inbox(self) -> str:
        """The node-wide inbox."""
        return f"{self.base}/inbox"

    def outbox(self, username: str) -> str:
        """A person's outbox collection."""
        return f"{self.actor(username)}/outbox"

    def followers(self, username: str) -> str:
        """A person's followers collection (also the followers-only addressee)."""
        return f"{self.actor(username)}/followers"

    def following(self, username: str) -> str:
        """A person's following collection."""
        return f"{self.actor(username)}/following"

    def featured(self, username: str) -> str:
        """A person's pinned posts."""
        return f"{self.actor(username)}/collections/featured"

    def profile_page(self, username: str) -> str:
        """A person's HTML profile."""
        return f"{self.base}/@{username}"

    def post(self, username: str, post_id: int) -> str:
        """A post's object id (matches ``posts.uri`` for local posts)."""
        return f"{self.actor(username)}/statuses/{post_id}"

    def post_page(self, username: str, post_id: int) -> str:
        """A post's HTML page."""
        return f"{self.base}/@{username}/{post_id}"

    def create(self, username: str, post_id: int) -> str:
        """The Create activity of a post."""
        return f"{self.post(username, post_id)}/activity"

    def follow(self, follow_id: int) -> str:
        """A Follow activity we sent."""
        return f"{self.base}/follows/{follow_id}"

    def like(self, username: str, like_id: int) -> str:
        """A Like activity we sent."""
        return f"{self.actor(username)}#likes/{like_id}"

    def fragment(self, username: str, kind: str, ident: int | str) -> str:
        """Ids for activities that are not fetchable on their own (Accept, Undo, Block…)."""
        return f"{self.actor(username)}#{kind}/{ident}"

    @property
    def instance_actor(self) -> str:
        """The node's own actor, which signs fetches made on behalf of nobody in particular."""
        return f"{self.base}/actor"

    @property
    def instance_key(self) -> str:
        """The instance actor's RSA key id."""
        return f"{self.instance_actor}#main-key"
