"""The reads behind the client API's streams: what an event is about, and who of the viewers
connected to :class:`xnode.api.stream_hub.StreamHub` may be shown it.

The hub decides which connections get which message; the facts it decides on come from
here, so the API layer never touches the store. Every method is one store read (a few for
very large audiences, cut into chunks), the same reads the hub made itself before: the
fan-out is hot code, and this layer adds no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from xnode.posts.models import Post, ViewerState
from xnode.store import domain_blocks as domain_block_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store
from xnode.store import stream_audience as audience_store
from xnode.store.database import Database

FOLLOWERS_CHUNK = 5_000
"""Viewers per follows read (SQLite allows 32,766 parameters in one statement)."""


class StreamAudience:
    """Batched reads for the streaming fan-out, over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def post(self, post_id: int) -> Post | None:
        """One post by id, tombstones included (a deleted post's row still says where it
        was shown)."""
        return await post_store.get_post(self.db, post_id)

    async def followers_among(self, author_id: int, viewer_ids: Sequence[int]) -> set[int]:
        """Which of ``viewer_ids`` follow ``author_id`` (accepted follows only).

        One read per :data:`FOLLOWERS_CHUNK` viewers; none when there are no viewers.
        """
        found: set[int] = set()
        for start in range(0, len(viewer_ids), FOLLOWERS_CHUNK):
            found.update(await relationship_store.followers_among(
                self.db, author_id, list(viewer_ids[start : start + FOLLOWERS_CHUNK])
            ))  # fmt: skip
        return found

    async def cut_off(
        self, author_ids: Sequence[int], viewer_ids: Sequence[int], *, mutes: bool = True
    ) -> set[int]:
        """Which of ``viewer_ids`` block, are blocked by, or (with ``mutes``) mute any of
        ``author_ids``: they are not to be shown those authors' posts."""
        return await audience_store.cut_off(self.db, author_ids, viewer_ids, mutes=mutes)

    async def domain_severity(self, host: str) -> str | None:
        """The strongest domain block covering ``host`` (``suspend``, ``silence``), or None."""
        return await domain_block_store.severity_for(self.db, host)

    async def has_media(self, post_id: int) -> bool:
        """Whether a post has media attachments (for the ``:media`` public streams)."""
        return bool((await post_store.media_of(self.db, [post_id])).get(post_id))

    async def tags(self, post_id: int) -> list[str]:
        """A post's hashtags, as stored (hashtag subscriptions are matched against them)."""
        return (await post_store.tags_of(self.db, [post_id])).get(post_id, [])

    async def states_among(self, post_id: int, viewer_ids: Sequence[int]) -> dict[int, ViewerState]:
        """What each of ``viewer_ids`` did to one post (liked, boosted, bookmarked,
        pinned); viewers who did nothing are left out."""
        return await audience_store.states_among(self.db, post_id, viewer_ids)
