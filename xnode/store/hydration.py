"""What a page of posts needs besides the posts, read in one go for hydration
(:meth:`xnode.posts.service.PostService.hydrate`): the posts that boosts boost, authors,
mentions and the mentioned accounts, media, hashtags, the viewer's follows and blocks
towards the authors, the viewer's likes, boosts, bookmarks and pins, whom replies answer,
and link cards.

SQLite: the aggregates' own reads (``posts``, ``relationships``, ``link_previews``), one
after the other; each is an inline read or a hop to a reader thread in this process
(0.02-0.2 ms at the p50 for a page of 40 at 1 M posts).

PostgreSQL (marked below): one statement. Ten reads there would be ten round trips to the
server process, each waiting for it to be scheduled on a busy machine: they made the home
timeline miss its 15 ms p99 at 1 M posts (docs/benchmarks.md, "PostgreSQL timelines").
Each part is an ``ARRAY(SELECT ...)`` of rows; asyncpg decodes a table's row type into a
record with the table's column names, so the models come from the same ``from_row`` as
everywhere else. The parts state the same conditions as the reads they stand for
(:func:`xnode.store.posts.viewer_states` and so on): change them together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from xnode.accounts.models import Account
from xnode.link_previews.models import LinkPreview
from xnode.posts.models import MediaAttachment, Post, ViewerState
from xnode.store import link_previews as link_preview_store
from xnode.store import posts as post_store
from xnode.store import relationships as relationship_store
from xnode.store.database import Database


@dataclass(frozen=True)
class PageFacts:
    """Everything hydration reads about a set of posts and the posts they boost, for one
    viewer. Read for every post: the facts of posts the viewer may not see go unused."""

    originals: dict[int, Post] = field(default_factory=dict)
    """The posts that boost rows boost, by id (deleted ones too)."""
    authors: dict[int, Account] = field(default_factory=dict)
    mentions: dict[int, list[int]] = field(default_factory=dict)
    """Mentioned account ids per post."""
    mentioned: dict[int, Account] = field(default_factory=dict)
    """The mentioned accounts, by id."""
    following: set[int] = field(default_factory=set)
    """Of the authors, those the viewer follows (accepted)."""
    blocked: set[int] = field(default_factory=set)
    """Of the authors, those blocked either way."""
    media: dict[int, list[MediaAttachment]] = field(default_factory=dict)
    tags: dict[int, list[str]] = field(default_factory=dict)
    states: dict[int, ViewerState] = field(default_factory=dict)
    parent_authors: dict[int, int] = field(default_factory=dict)
    """The author of each post that one of these answers, by the answered post's id."""
    previews: dict[int, LinkPreview] = field(default_factory=dict)


async def page_facts(
    db: Database, viewer_id: int | None, posts: Sequence[Post], *, previews: bool
) -> PageFacts:
    """The facts hydration needs about ``posts`` (and boost rows, and the posts they
    boost) for ``viewer_id`` (None: a logged-out visitor); ``previews``: the link cards
    too."""
    if not posts:
        return PageFacts()
    boosted = list({p.reblog_of_id for p in posts if p.reblog_of_id is not None})
    if db.dialect == "postgres":
        return await _postgres(db, viewer_id, posts, boosted, previews)
    originals = await post_store.get_posts(db, boosted)
    everything = [*posts, *originals.values()]
    ids = [p.id for p in everything]
    author_ids = list({p.account_id for p in everything})
    mentions = await post_store.mentions_of(db, ids)
    following: set[int] = set()
    blocked: set[int] = set()
    if viewer_id is not None:
        following, blocked = await relationship_store.viewer_edges(db, viewer_id, author_ids)
    return PageFacts(
        originals=originals,
        authors=await post_store.get_accounts(db, author_ids),
        mentions=mentions,
        mentioned=await post_store.get_accounts(
            db, {a for found in mentions.values() for a in found}
        ),
        following=following,
        blocked=blocked,
        media=await post_store.media_of(db, ids),
        tags=await post_store.tags_of(db, ids),
        states=(
            await post_store.viewer_states(db, viewer_id, ids) if viewer_id is not None else {}
        ),
        parent_authors=await post_store.authors_of(
            db, [p.in_reply_to_id for p in everything if p.in_reply_to_id is not None]
        ),
        previews=await link_preview_store.previews_of(db, ids) if previews else {},
    )


# --- PostgreSQL only ----------------------------------------------------------------------

# ?1 the viewer (NULL for none: then no row of the viewer's matches), ?2 the boosted posts,
# ?3 the posts and the boosted posts, ?4 the posts' authors, ?5 the posts they answer,
# ?6 whether to read cards. The boosted posts' authors and parents are found here.
_FACTS = (
    "WITH author_ids AS (SELECT unnest(?4::bigint[]) AS id"
    "  UNION SELECT account_id FROM posts WHERE id = ANY(?2::bigint[])),"
    " parent_ids AS (SELECT unnest(?5::bigint[]) AS id"
    "  UNION SELECT in_reply_to_id FROM posts WHERE id = ANY(?2::bigint[]))"
    # Sets as = ANY(ARRAY(subquery)) rather than IN (subquery): the same plans (an index
    # probe per id) for less planning, which runs on every call here (plan_cache_mode is
    # force_custom_plan, xnode/store/postgres.py): 0.55 against 0.78 ms.
    " SELECT"
    " ARRAY(SELECT p FROM posts p WHERE p.id = ANY(?2::bigint[])) AS originals,"
    " ARRAY(SELECT a FROM accounts a"
    "  WHERE a.id = ANY(ARRAY(SELECT id FROM author_ids))) AS authors,"
    " ARRAY(SELECT ROW(m.post_id, m.account_id) FROM mentions m"
    "  WHERE m.post_id = ANY(?3::bigint[])) AS mentions,"
    " ARRAY(SELECT a FROM accounts a WHERE a.id = ANY(ARRAY(SELECT m.account_id"
    "  FROM mentions m WHERE m.post_id = ANY(?3::bigint[])))) AS mentioned,"
    " ARRAY(SELECT target_account_id FROM follows WHERE account_id = ?1::bigint"
    "  AND state = 'accepted' AND target_account_id = ANY(ARRAY(SELECT id FROM author_ids)))"
    "  AS following,"
    " ARRAY(SELECT target_account_id FROM blocks WHERE account_id = ?1::bigint"
    "  AND target_account_id = ANY(ARRAY(SELECT id FROM author_ids))"
    "  UNION ALL SELECT account_id FROM blocks WHERE target_account_id = ?1::bigint"
    "  AND account_id = ANY(ARRAY(SELECT id FROM author_ids))) AS blocked,"
    " ARRAY(SELECT ma FROM media_attachments ma WHERE ma.post_id = ANY(?3::bigint[])"
    "  ORDER BY ma.post_id, ma.position) AS media,"
    " ARRAY(SELECT ROW(t.post_id, t.tag) FROM post_tags t"
    "  WHERE t.post_id = ANY(?3::bigint[])) AS tags,"
    " ARRAY(SELECT post_id FROM likes WHERE account_id = ?1::bigint"
    "  AND post_id = ANY(?3::bigint[])) AS liked,"
    " ARRAY(SELECT reblog_of_id FROM posts WHERE account_id = ?1::bigint"
    "  AND reblog_of_id = ANY(?3::bigint[])) AS boosted,"
    " ARRAY(SELECT post_id FROM bookmarks WHERE account_id = ?1::bigint"
    "  AND post_id = ANY(?3::bigint[])) AS bookmarked,"
    " ARRAY(SELECT post_id FROM pins WHERE account_id = ?1::bigint"
    "  AND post_id = ANY(?3::bigint[])) AS pinned,"
    " ARRAY(SELECT ROW(p.id, p.account_id) FROM posts p"
    "  WHERE p.id = ANY(ARRAY(SELECT id FROM parent_ids))) AS parents,"
    # Which post shows which card, then the cards: a row type inside an anonymous record
    # does not decode (asyncpg knows a row type's fields only as a column's own type).
    " ARRAY(SELECT ROW(pl.post_id, pl.preview_id) FROM post_link_previews pl"
    "  WHERE ?6::boolean AND pl.post_id = ANY(?3::bigint[])) AS shows,"
    " ARRAY(SELECT lp FROM link_previews lp WHERE ?6::boolean AND lp.state = 'ok'"
    "  AND lp.id = ANY(ARRAY(SELECT pl.preview_id FROM post_link_previews pl"
    "  WHERE pl.post_id = ANY(?3::bigint[])))) AS cards"
)


async def _postgres(
    db: Database, viewer_id: int | None, posts: Sequence[Post], boosted: list[int],
    previews: bool,
) -> PageFacts:
    ids = list({*(p.id for p in posts), *boosted})
    author_ids = list({p.account_id for p in posts})
    parent_ids = list({p.in_reply_to_id for p in posts if p.in_reply_to_id is not None})
    row = await db.fetchone(
        _FACTS, (viewer_id, boosted, ids, author_ids, parent_ids, previews)
    )
    assert row is not None  # a SELECT without FROM has its one row
    mentions: dict[int, list[int]] = defaultdict(list)
    for post_id, account_id in row["mentions"]:
        mentions[post_id].append(account_id)
    media: dict[int, list[MediaAttachment]] = defaultdict(list)
    for attachment in row["media"]:
        media[attachment["post_id"]].append(MediaAttachment.from_row(attachment))
    tags: dict[int, list[str]] = defaultdict(list)
    for post_id, tag in row["tags"]:
        tags[post_id].append(tag)
    flags: dict[int, dict[str, bool]] = defaultdict(dict)
    for name in ("liked", "boosted", "bookmarked", "pinned"):
        for post_id in row[name]:
            flags[post_id][name] = True
    cards = {card["id"]: link_preview_store.preview_from_row(card) for card in row["cards"]}
    return PageFacts(
        originals={p["id"]: Post.from_row(p) for p in row["originals"]},
        authors={a["id"]: Account.from_row(a) for a in row["authors"]},
        mentions=mentions,
        mentioned={a["id"]: Account.from_row(a) for a in row["mentioned"]},
        following=set(row["following"]),
        blocked=set(row["blocked"]),
        media=media,
        tags=tags,
        states={post_id: ViewerState(**values) for post_id, values in flags.items()},
        parent_authors={post_id: author for post_id, author in row["parents"]},
        previews={
            post_id: cards[card_id] for post_id, card_id in row["shows"] if card_id in cards
        },
    )
