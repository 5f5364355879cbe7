"""``accounts.supports_calls``: a remote actor's server speaks the calls protocol.

Read from the actor document (``supportsCalls``, docs/calls-over-activitypub.md) each
time the actor is fetched, so a caller's page can say "their server does not support
calls" before ringing, and nothing is sent to servers that would not understand it.
"""

STATEMENTS = [
    "ALTER TABLE accounts ADD COLUMN supports_calls INTEGER NOT NULL DEFAULT 0",
]

# The same change in PostgreSQL's dialect (see the package docstring for the type
# mapping): the PostgreSQL backend applies these instead, from the same numbered list.
POSTGRES = (
    "ALTER TABLE accounts ADD COLUMN supports_calls BIGINT NOT NULL DEFAULT 0",
)
