"""The client API's JSON entities, exactly as Mastodon documents them.

Pure functions from the node's models to dicts: no I/O here (what needs the database,
such as counts and whom a reply answers, is gathered first by :mod:`xnode.api.present`).
Ids are strings; times are RFC 3339 with milliseconds in UTC. Optional fields the node
has nothing for are omitted, never invented; nullable ones are null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from markupsafe import escape

from xnode.accounts.models import Account, AccountStats
from xnode.link_previews.models import LinkPreview
from xnode.posts.models import MediaAttachment, Post, PostEdit, PostView

# Mastodon calls followers-only "private".
VISIBILITY_TO_API = {"public": "public", "unlisted": "unlisted", "followers": "private",
                     "direct": "direct"}  # fmt: skip
VISIBILITY_FROM_API = {value: key for key, value in VISIBILITY_TO_API.items()}
DEFAULT_AVATAR_PATH = "/avatars/original/missing.png"
DEFAULT_HEADER_PATH = "/headers/original/missing.png"


def timestamp(value: float) -> str:
    """RFC 3339 with milliseconds, as Mastodon writes times."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def day(value: float) -> str:
    """Midnight UTC of the day (Mastodon rounds accounts' creation to the day)."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT00:00:00.000Z")


@dataclass(frozen=True)
class Context:
    """What the serializers need besides the models: the node's URL and gathered facts."""

    base_url: str
    stats: dict[int, AccountStats] = field(default_factory=dict)
    reply_authors: dict[int, int] = field(default_factory=dict)

    def absolute(self, path: str | None) -> str | None:
        """A path on this node as a full URL."""
        if path is None:
            return None
        return path if path.startswith(("http://", "https://")) else self.base_url + path


def account(acc: Account, ctx: Context) -> dict[str, object]:
    """An Account entity."""
    stats = ctx.stats.get(acc.id, AccountStats())
    if acc.is_local:
        uri = f"{ctx.base_url}/users/{acc.username}"
        url = f"{ctx.base_url}/@{acc.username}"
    else:
        uri = acc.uri or ""
        url = acc.url or uri
    avatar = ctx.absolute(acc.avatar_url) or ctx.base_url + DEFAULT_AVATAR_PATH
    header = ctx.absolute(acc.header_url) or ctx.base_url + DEFAULT_HEADER_PATH
    found: dict[str, object] = {
        "id": str(acc.id),
        "username": acc.username,
        "acct": acc.acct,
        "url": url,
        "uri": uri,
        "display_name": acc.display_name,
        "note": acc.bio_html,
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "locked": acc.locked,
        "fields": [
            {"name": f.name, "value": str(escape(f.value)) if acc.is_local else f.value,
             "verified_at": None}
            for f in acc.fields
        ],
        "emojis": [],
        "bot": acc.actor_type in ("Service", "Application"),
        "group": acc.actor_type == "Group",
        "discoverable": acc.discoverable,
        # The node's full-text search finds every account's visible posts.
        "indexable": True,
        # No per-account search-engine setting exists here (nullable, so null, not a guess).
        "noindex": None,
        "hide_collections": acc.hide_network,
        "created_at": day(acc.created_at),
        "last_status_at": (
            datetime.fromtimestamp(stats.last_post_at, UTC).strftime("%Y-%m-%d")
            if stats.last_post_at is not None else None
        ),
        "statuses_count": stats.posts,
        "followers_count": stats.followers,
        "following_count": stats.following,
    }
    if acc.is_suspended:
        found["suspended"] = True
    return found


def credential_account(acc: Account, ctx: Context, *, follow_requests: int = 0
                       ) -> dict[str, object]:  # fmt: skip
    """The signed-in person's own Account, with ``source`` (what they typed).

    The node keeps no default post privacy, sensitivity or language per person (each post
    carries its own), so ``source`` says public, not sensitive, no language; the settings
    Mastodon 4.1+ repeats there for the profile editor come from the account.
    """
    found = account(acc, ctx)
    found["source"] = {
        "privacy": "public",
        "sensitive": False,
        "language": "",
        "note": acc.bio_source,
        "fields": [{"name": f.name, "value": f.value, "verified_at": None} for f in acc.fields],
        "follow_requests_count": follow_requests,
        "discoverable": acc.discoverable,
        "hide_collections": acc.hide_network,
        "indexable": found["indexable"],
    }
    return found


def media_attachment(media: MediaAttachment, ctx: Context) -> dict[str, object]:
    """A MediaAttachment entity."""
    kind = "image" if media.content_type.startswith("image/") else "unknown"
    meta: dict[str, object] = {}
    if media.width and media.height:
        size = {"width": media.width, "height": media.height,
                "size": f"{media.width}x{media.height}",
                "aspect": round(media.width / media.height, 6)}  # fmt: skip
        meta = {"original": size, "small": size}
    focus = _focus(media)
    if focus is not None:
        meta["focus"] = {"x": focus[0], "y": focus[1]}
    return {
        "id": str(media.id),
        "type": kind,
        "url": ctx.absolute(media.url),
        "preview_url": ctx.absolute(media.thumbnail_url),
        "remote_url": media.remote_url,
        "meta": meta,
        "description": media.description or None,
        # No blurhash is computed here yet; Mastodon too sends null when it has none.
        "blurhash": None,
        "preview_remote_url": None,
    }


def _focus(media: MediaAttachment) -> tuple[float, float] | None:
    if media.focus_x is None or media.focus_y is None:
        return None
    return media.focus_x, media.focus_y


def mention(acc: Account, ctx: Context) -> dict[str, object]:
    """A Status's Mention."""
    url = f"{ctx.base_url}/@{acc.username}" if acc.is_local else (acc.url or acc.uri or "")
    return {"id": str(acc.id), "username": acc.username, "url": url, "acct": acc.acct}


def tag(name: str, ctx: Context) -> dict[str, object]:
    """A Status's Tag (without history: the API's tag endpoints add it)."""
    return {"name": name, "url": f"{ctx.base_url}/tags/{name}"}


def card(preview: LinkPreview, ctx: Context) -> dict[str, object]:
    """A PreviewCard entity."""
    return {
        "url": preview.url,
        "title": preview.title,
        "description": preview.description,
        "type": "link",
        "author_name": "",
        "author_url": "",
        "provider_name": preview.site_name,
        "provider_url": "",
        "html": "",
        "width": preview.image_width or 0,
        "height": preview.image_height or 0,
        "image": ctx.absolute(preview.image_path),
        "embed_url": "",
        "blurhash": None,
        "authors": [],
        "image_description": "",
        "published_at": None,
    }


def content_of(post: Post) -> str:
    """The HTML apps show: an article's title leads its text (apps have no field for it)."""
    if post.kind == "article" and post.title:
        return f"<p><strong>{escape(post.title)}</strong></p>{post.content_html}"
    return post.content_html


def status(view: PostView, ctx: Context) -> dict[str, object]:
    """A Status entity; a boost is a status of the booster whose ``reblog`` is the original."""
    inner = _status(view, ctx)
    if view.boost is None or view.booster is None:
        return inner
    boost = view.boost
    return {
        "id": str(boost.id),
        "uri": boost.uri or f"{ctx.base_url}/users/{view.booster.username}/statuses/{boost.id}",
        "url": None,
        "created_at": timestamp(boost.created_at),
        "account": account(view.booster, ctx),
        "content": "",
        "visibility": VISIBILITY_TO_API.get(boost.visibility, "public"),
        "sensitive": False,
        "spoiler_text": "",
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": 0,
        "replies_count": 0,
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "reblog": inner,
        "poll": None,
        "card": None,
        "language": None,
        "edited_at": None,
        "favourited": inner["favourited"],
        "reblogged": inner["reblogged"],
        "muted": False,
        "bookmarked": inner["bookmarked"],
        "pinned": False,
        "filtered": [],
    }


def _status(view: PostView, ctx: Context) -> dict[str, object]:
    post, author = view.post, view.author
    parent_author = (
        ctx.reply_authors.get(post.in_reply_to_id) if post.in_reply_to_id is not None else None
    )
    return {
        "id": str(post.id),
        "uri": post.uri or "",
        "url": post.url or post.uri,
        "created_at": timestamp(post.created_at),
        "account": account(author, ctx),
        "content": content_of(post),
        "visibility": VISIBILITY_TO_API.get(post.visibility, "public"),
        "sensitive": post.sensitive,
        "spoiler_text": post.summary,
        "media_attachments": [media_attachment(m, ctx) for m in view.media],
        "mentions": [mention(m, ctx) for m in view.mentions],
        "tags": [tag(t, ctx) for t in view.tags],
        "emojis": [],
        "reblogs_count": post.reblogs_count,
        "favourites_count": post.likes_count,
        "replies_count": post.replies_count,
        "in_reply_to_id": str(post.in_reply_to_id) if post.in_reply_to_id is not None else None,
        "in_reply_to_account_id": str(parent_author) if parent_author is not None else None,
        "reblog": None,
        "poll": None,
        "card": card(view.preview, ctx) if view.preview is not None else None,
        "language": post.language,
        "edited_at": timestamp(post.edited_at) if post.edited_at is not None else None,
        "favourited": view.state.liked,
        "reblogged": view.state.boosted,
        "muted": False,
        "bookmarked": view.state.bookmarked,
        "pinned": view.state.pinned,
        "filtered": [],
    }


def status_source(post: Post) -> dict[str, object]:
    """A StatusSource entity (what the author typed, for editing)."""
    return {"id": str(post.id), "text": post.source, "spoiler_text": post.summary}


def status_edit(
    version: PostEdit | Post, author: Account, media: list[MediaAttachment], ctx: Context
) -> dict[str, object]:
    """A StatusEdit entity: one version of a post."""
    content = version.content_html
    title = version.title
    if title:
        content = f"<p><strong>{escape(title)}</strong></p>{content}"
    created = version.created_at if isinstance(version, PostEdit) else (
        version.edited_at or version.created_at
    )
    return {
        "content": content,
        "spoiler_text": version.summary,
        "sensitive": version.sensitive,
        "created_at": timestamp(created),
        "account": account(author, ctx),
        "poll": None,
        "media_attachments": [media_attachment(m, ctx) for m in media],
        "emojis": [],
    }
