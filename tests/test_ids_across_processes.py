"""IDs made by several processes on one database never clash (issue 18).

Two serving processes on one PostgreSQL database made the same ``inbox_queue`` id about
once in 4,096 coincident milliseconds (bench/pg_processes.py): each process now holds a
tag of its own, claimed with an advisory lock when it opens the database.
"""

from __future__ import annotations

from database_backend import fresh_database_url

from xnode import ids
from xnode.store import postgres
from xnode.store.database import open_database
from xnode.store.postgres import PostgresDatabase


def test_tagged_generators_never_make_the_same_id_in_the_same_millisecond():
    first, second = ids.IdGenerator(), ids.IdGenerator()
    first.tag, second.tag = 1, 2
    made_first = [first.next_id(now_ms=1_000) for _ in range(600)]
    made_second = [second.next_id(now_ms=1_000) for _ in range(600)]
    assert not set(made_first) & set(made_second)
    # Still strictly increasing, past the 256 a millisecond a tag has.
    assert made_first == sorted(set(made_first)) and made_second == sorted(set(made_second))
    assert ids.id_timestamp(made_first[0]) == 1.0


async def test_each_open_database_holds_its_own_tag_until_it_closes(pg_cluster, monkeypatch):
    # Both databases try the tags in the same order: only the advisory lock keeps the
    # second from taking the first's.
    monkeypatch.setattr(postgres.random, "sample", lambda population, k: list(population)[:k])
    url = fresh_database_url()
    async with open_database(url) as one, open_database(url) as two:
        assert isinstance(one, PostgresDatabase) and isinstance(two, PostgresDatabase)
        assert (one._id_tag, two._id_tag) == (0, 1)
        assert ids.process_tag() == 1
    assert ids.process_tag() is None  # its lock went with the connection
