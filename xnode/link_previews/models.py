"""Link previews as the rest of the node sees them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

LARGE_IMAGE_MIN_WIDTH = 400
"""A landscape image at least this wide is shown across the top of the card."""


@dataclass(frozen=True)
class PagePreview:
    """What a page says of itself, cleaned and bounded (see :mod:`xnode.link_previews.extract`)."""

    url: str
    title: str
    description: str = ""
    site_name: str = ""
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None


@dataclass(frozen=True)
class LinkPreview:
    """A preview card ready to show under a post.

    ``image_url`` is the other server's address of the image, for the node's
    own fetch only: pages show :attr:`image_path`, served from the node's cache.
    """

    id: int
    url: str
    title: str
    description: str
    site_name: str
    image_url: str | None
    image_width: int | None
    image_height: int | None
    fetched_at: float

    @property
    def host(self) -> str:
        """The host the card links to (shown when the page names no site)."""
        host = urlsplit(self.url).hostname or ""
        return host.removeprefix("www.")

    @property
    def image_path(self) -> str | None:
        """Where pages load the image from: this node, by the preview's id (never a URL)."""
        if self.image_url is None:
            return None
        return f"/media/remote/preview/{self.id}?v={int(self.fetched_at)}"

    @property
    def large_image(self) -> bool:
        """Whether the image is a wide one, shown across the card rather than beside it."""
        width, height = self.image_width, self.image_height
        return bool(width and height and width >= LARGE_IMAGE_MIN_WIDTH and width > height)


@dataclass(frozen=True)
class CacheEntry:
    """What the cache knows of a URL: whether it made a card, and when it was asked."""

    id: int
    url: str
    ok: bool
    fetched_at: float
