"""What other servers say of their people: counts, and when we last looked at their posts.

A remote profile shows the follower, following and post counts its own server
reports (the ``totalItems`` of its collections), and its recent and pinned
posts, read from its outbox and featured collection on first view and again
when ``backfilled_at`` is old (xnode/activitypub/backfill.py).
"""

STATEMENTS = [
    "ALTER TABLE accounts ADD COLUMN followers_count INTEGER",
    "ALTER TABLE accounts ADD COLUMN following_count INTEGER",
    "ALTER TABLE accounts ADD COLUMN statuses_count INTEGER",
    "ALTER TABLE accounts ADD COLUMN backfilled_at REAL",
]

# The same change in PostgreSQL's dialect (see the package docstring for the type
# mapping): the PostgreSQL backend applies these instead, from the same numbered list.
POSTGRES = (
    "ALTER TABLE accounts ADD COLUMN followers_count BIGINT",
    "ALTER TABLE accounts ADD COLUMN following_count BIGINT",
    "ALTER TABLE accounts ADD COLUMN statuses_count BIGINT",
    "ALTER TABLE accounts ADD COLUMN backfilled_at DOUBLE PRECISION",
)
