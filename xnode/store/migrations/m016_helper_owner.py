"""Helper process states per serving process: ``helper_processes.process`` and ``seen_at``.

With several ``xnode serve`` processes on one PostgreSQL database (issue 18), each has its
own helpers (an inbox process, delivery processes) with the same names. The table kept one
row per name, and every serving process wiped it at start, so ``xnode check`` and the
admin pages lost the other processes' helpers. A row now belongs to one serving process
(``process``: its machine and listen address, stable across its restarts), named with the
helper (the primary key is both); ``seen_at`` is when that serving process last said it is
alive (it does every minute while it has helpers), so rows of a process that is gone can
be told apart and, after a day, forgotten. Rows of an earlier version keep their states,
under an empty ``process`` (unknown), seen when they were last written.
"""

STATEMENTS = [
    """
    CREATE TABLE helper_processes_new (
        name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('idle', 'starting', 'running', 'restarting',
                                             'failed', 'stopped')),
        crashes INTEGER NOT NULL DEFAULT 0,
        last_exit TEXT,
        pid INTEGER,
        serving_pid INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        process TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (name, process)
    )
    """,
    # The columns in PostgreSQL's order (added there at the end).
    "INSERT INTO helper_processes_new (name, state, crashes, last_exit, pid, serving_pid,"
    " updated_at, process, seen_at) SELECT name, state, crashes, last_exit, pid, serving_pid,"
    " updated_at, '', updated_at FROM helper_processes",
    "DROP TABLE helper_processes",
    "ALTER TABLE helper_processes_new RENAME TO helper_processes",
]

POSTGRES = (
    "ALTER TABLE helper_processes ADD COLUMN process TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE helper_processes ADD COLUMN seen_at DOUBLE PRECISION",
    "UPDATE helper_processes SET seen_at = updated_at",
    "ALTER TABLE helper_processes ALTER COLUMN seen_at SET NOT NULL",
    "ALTER TABLE helper_processes ALTER COLUMN process DROP DEFAULT",
    "ALTER TABLE helper_processes DROP CONSTRAINT helper_processes_pkey",
    "ALTER TABLE helper_processes ADD PRIMARY KEY (name, process)",
)
