"""Queue rows claimed by one process at a time: a lease on deliveries and the inbox queue.

With several ``xnode serve`` processes on one PostgreSQL database (issue 18), reading due
rows is not enough: two processes would read the same row and both send or handle it. A
process now claims rows (``claimed_by`` its id, ``claimed_until`` a lease) in the statement
that picks them; writing the outcome clears the claim, and a lease that ran out (the
process died) makes the row claimable again. Rows of a version before this have no claim.
"""

STATEMENTS = [
    "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT",
    "ALTER TABLE deliveries ADD COLUMN claimed_until REAL",
    "ALTER TABLE inbox_queue ADD COLUMN claimed_by TEXT",
    "ALTER TABLE inbox_queue ADD COLUMN claimed_until REAL",
]

POSTGRES = (
    "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT",
    "ALTER TABLE deliveries ADD COLUMN claimed_until DOUBLE PRECISION",
    "ALTER TABLE inbox_queue ADD COLUMN claimed_by TEXT",
    "ALTER TABLE inbox_queue ADD COLUMN claimed_until DOUBLE PRECISION",
)
