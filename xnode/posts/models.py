"""Posts and what hangs off them, as the rest of the node sees them."""

from __future__ import annotations

from dataclasses import dataclass, field

from xnode.accounts.models import Account
from xnode.link_previews.models import LinkPreview
from xnode.memo import RowMemo, hash_once
from xnode.store.database import Row

VISIBILITIES = ("public", "unlisted", "followers", "direct")
# Visibilities a boost may carry its original into: boosting a followers-only
# or direct post would show it to people the author never addressed.
BOOSTABLE = frozenset({"public", "unlisted"})


@hash_once
@dataclass(frozen=True)
class MediaAttachment:
    """An image attached to a post."""

    id: int
    account_id: int
    post_id: int | None
    file_name: str | None
    thumbnail_file: str | None
    remote_url: str | None
    content_type: str
    width: int | None
    height: int | None
    description: str
    position: int
    # The focal point apps crop around, from -1 to 1 each way (m012; None: the centre).
    focus_x: float | None = None
    focus_y: float | None = None

    @property
    def url(self) -> str | None:
        """Where pages show the full file from: our media store, or our cache of the
        remote one (never the other server itself)."""
        if self.file_name:
            return f"/media/{self.file_name}"
        return f"/media/remote/attachment/{self.id}" if self.remote_url else None

    @property
    def thumbnail_url(self) -> str | None:
        """Where the preview is served."""
        return f"/media/{self.thumbnail_file}" if self.thumbnail_file else self.url

    @classmethod
    def from_row(cls, row: Row) -> MediaAttachment:
        """Build from a ``media_attachments`` row."""
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            post_id=row["post_id"],
            file_name=row["file_name"],
            thumbnail_file=row["thumbnail_file"],
            remote_url=row["remote_url"],
            content_type=row["content_type"],
            width=row["width"],
            height=row["height"],
            description=row["description"],
            position=row["position"],
            **_focus_fields(row),
        )


def _focus_fields(row: Row) -> dict[str, float | None]:
    """The columns added by m012 (absent in older row shapes)."""
    if "focus_x" not in row.keys():  # noqa: SIM118
        return {}
    return {"focus_x": row["focus_x"], "focus_y": row["focus_y"]}


@hash_once
@dataclass(frozen=True)
class Post:
    """A note, an article, or a boost of another post (``reblog_of_id``)."""

    id: int
    account_id: int
    uri: str | None
    url: str | None
    kind: str
    title: str
    source: str
    source_format: str
    content_html: str
    summary: str
    sensitive: bool
    visibility: str
    language: str | None
    in_reply_to_id: int | None
    in_reply_to_uri: str | None
    reblog_of_id: int | None
    context: str | None
    local: bool
    replies_count: int
    reblogs_count: int
    likes_count: int
    created_at: float
    edited_at: float | None
    deleted_at: float | None
    conversation_id: int | None = None

    @property
    def is_deleted(self) -> bool:
        """Whether only a tombstone is left."""
        return self.deleted_at is not None

    @property
    def is_boost(self) -> bool:
        """Whether this row is a boost of another post."""
        return self.reblog_of_id is not None

    @classmethod
    def from_row(cls, row: Row) -> Post:
        """The post of a ``posts`` row (the same object while the row reads the same)."""
        return _POSTS(row)

    @classmethod
    def build(cls, row: Row) -> Post:
        """Build from a ``posts`` row."""
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            uri=row["uri"],
            url=row["url"],
            kind=row["kind"],
            title=row["title"],
            source=row["source"],
            source_format=row["source_format"],
            content_html=row["content_html"],
            summary=row["summary"],
            sensitive=bool(row["sensitive"]),
            visibility=row["visibility"],
            language=row["language"],
            in_reply_to_id=row["in_reply_to_id"],
            in_reply_to_uri=row["in_reply_to_uri"],
            reblog_of_id=row["reblog_of_id"],
            context=row["context"],
            local=bool(row["local"]),
            replies_count=row["replies_count"],
            reblogs_count=row["reblogs_count"],
            likes_count=row["likes_count"],
            created_at=row["created_at"],
            edited_at=row["edited_at"],
            deleted_at=row["deleted_at"],
            conversation_id=row["conversation_id"],
        )


# Timelines and threads show the same posts over and over (xnode/memo.py).
_POSTS = RowMemo(Post.build)


@dataclass(frozen=True)
class PostEdit:
    """An earlier version of an edited post."""

    id: int
    post_id: int
    title: str
    source: str
    content_html: str
    summary: str
    sensitive: bool
    created_at: float


@dataclass(frozen=True)
class ViewerState:
    """What the viewer has done to a post (for the buttons on its card)."""

    liked: bool = False
    boosted: bool = False
    bookmarked: bool = False
    pinned: bool = False


@hash_once
@dataclass(frozen=True)
class PostView:
    """A post ready to show: the post, its author, media, mentions and the viewer's state.

    For a boost, ``boost`` holds the boost row and ``booster`` who boosted;
    ``post`` and ``author`` are the original.
    """

    post: Post
    author: Account
    media: tuple[MediaAttachment, ...] = ()
    mentions: tuple[Account, ...] = ()
    tags: tuple[str, ...] = ()
    state: ViewerState = field(default_factory=ViewerState)
    boost: Post | None = None
    booster: Account | None = None
    # Whom it answers, when that shows already (the post mentions them, or it is a thread
    # of the author's own); None for a reply to a post whose author it does not name.
    replying_to: Account | None = None
    # The card of the post's first link, once the node has fetched it (xnode/link_previews/).
    preview: LinkPreview | None = None

    @property
    def cursor(self) -> int:
        """The id to paginate by: the boost row's id for boosts, else the post's."""
        return self.boost.id if self.boost is not None else self.post.id
