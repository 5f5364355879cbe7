"""Rate limits shared by every serving process (issue 18).

With several ``xnode serve`` processes on one PostgreSQL database, a limit kept in each
process's memory would let a client multiply it by the number of processes (a reverse
proxy spreads its requests). The limits then live here: one row per counted event for
the sliding-window limits (logins, sign-ups, password checks, calls) and one row per key
for the client API's fixed windows. On PostgreSQL both tables are UNLOGGED: they are
written on every API request, and losing them in a crash only forgives some attempts.

A SQLite node (one process) keeps its limits in memory and leaves these tables empty;
they exist there too so that both engines have the same schema and
``xnode db migrate-to-postgres`` needs no special case.
"""

STATEMENTS = [
    "CREATE TABLE rate_limit_hits (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX rate_limit_hits_key ON rate_limit_hits (key, at)",
    "CREATE TABLE rate_limit_windows (key TEXT PRIMARY KEY, started_at REAL NOT NULL,"
    " used INTEGER NOT NULL)",
]

POSTGRES = (
    "CREATE UNLOGGED TABLE rate_limit_hits (key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX rate_limit_hits_key ON rate_limit_hits (key, at)",
    "CREATE UNLOGGED TABLE rate_limit_windows (key TEXT PRIMARY KEY,"
    " started_at DOUBLE PRECISION NOT NULL, used INTEGER NOT NULL)",
)
