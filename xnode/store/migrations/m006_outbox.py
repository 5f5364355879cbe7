"""The transactional outbox, and the health of the helper processes.

``outbox``: each change that must reach other servers (a post, an edit, a
like, a follow…) writes one row here in the change's own transaction; the
federation outbox turns the row into delivery rows and deletes it in one
later transaction. A crash in between leaves the row, which is expanded after
the restart: nothing is lost, and nothing is queued twice. Rows whose
expansion keeps failing are retried with a pause and, in the end, kept as
``failed`` for an admin to see.

``helper_processes``: what the serving process last knew of each helper
process (idle until the load needs it, running, restarting after crashes,
given up), for ``xnode check`` and the admin pages, which run apart from it.
"""

STATEMENTS = [
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        event TEXT NOT NULL,
        fields TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
    """
    CREATE TABLE helper_processes (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('idle', 'starting', 'running', 'restarting',
                                             'failed', 'stopped')),
        crashes INTEGER NOT NULL DEFAULT 0,
        last_exit TEXT,
        pid INTEGER,
        serving_pid INTEGER NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
]
