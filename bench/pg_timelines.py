"""Home timeline on PostgreSQL beside SQLite, same data, same viewers, same run (issue 18).

Target (issue 3, now on both engines): home timeline p99 <= 15 ms at the query layer
(``TimelineService.home``, hydration included), as bench/timelines.py measures it on SQLite.

Data: bench/timelines.py's data set (10,000 local accounts, 1,000,000 posts, ~100 follows
each by default; ``--small``: 1,000 and 50,000), built by its loader through the real
migrations (cached with ``--keep``), then copied whole into a throwaway PostgreSQL cluster
(tools/pg_cluster.py) by the code behind ``xnode db migrate-to-postgres``
(:func:`xnode.store.copy_to_postgres.copy_sqlite_to_postgres`: COPY, verified per table),
followed by ``VACUUM ANALYZE`` (a migrated node's first autovacuum would do the same).
So both engines hold the very same rows, and the PostgreSQL schema is the one xnode's
PostgreSQL migrations make.

Method: one process opens both databases through ``open_database`` (SQLite file, asyncpg
pool over the cluster's Unix socket) and builds a ``TimelineService`` on each. For the
same random viewers as bench/timelines.py (its workload's seed), it asks each engine for
the viewer's first home page, then for the next page (``max_id`` = the first page's
cursor), one request at a time; for each viewer the engines go in a random order, so
machine noise (2 shared cores, other runs) hits both alike. The requests are reported as a
whole and by round (consecutive slices of the viewers): compare the PostgreSQL/SQLite
ratios within the run, not the absolute figures across runs. Each request's time is split
into its page query and the rest (hydration queries and Python); the client's CPU time per
request is shown (all threads: SQLite's work is in it, PostgreSQL's is not), and, for
PostgreSQL, the server's CPU per request (the cluster's processes, from /proc; tick
resolution, so only the mean). Both engines must return the same pages (checked).

Afterwards, the home page query is explained on PostgreSQL (``EXPLAIN (ANALYZE, BUFFERS)``)
for the viewer with the slowest page query and a median one, beside SQLite's plan. Then
candidate changes are timed on PostgreSQL alone (the page query by itself, same inputs,
interleaved per viewer, each checked to return the same ids): the store's query (the
followed accounts as an array, ``p.account_id = ANY(ARRAY(SELECT ...))``), the form it had
before (``p.account_id IN (SELECT ...)``) and a LATERAL shape (the newest 40 ids of
each followed account, merged), without and then with the partial index that the SQLite
benchmark recommends; the index is built in the throwaway cluster only and dropped again.
Compare rows within a phase (without / with the index): the phases run one after the
other, so the machine's load may differ between them.

The cluster runs without fsync (tools/pg_cluster.py's throwaway settings) unless
``--durable``: nothing here writes, so it changes nothing but the copy's time.
``shared_buffers`` is 512 MB (as bench/pg_drivers.py); the rest is PostgreSQL's defaults.

Usage: python bench/pg_timelines.py [--small] [--keep PATH] [--requests N] [--rounds N]
       [--durable]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

from machine import calibration_line  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402
from timelines import (  # noqa: E402
    HOME_TARGET_MS,
    WARMUP,
    Shape,
    build_database,
    make_settings,
    percentile,
    query_label,
    sample,
)

from xnode.clock import SystemClock  # noqa: E402
from xnode.events import EventBus  # noqa: E402
from xnode.media import MediaStore  # noqa: E402
from xnode.posts.service import PostService  # noqa: E402
from xnode.store.copy_to_postgres import copy_sqlite_to_postgres  # noqa: E402
from xnode.store.database import Database, Params, database_for  # noqa: E402
from xnode.store.postgres import PostgresDatabase, numbered  # noqa: E402
from xnode.store.sqlite import SqliteDatabase  # noqa: E402
from xnode.timelines import Cursor, Page, TimelineService  # noqa: E402

ENGINES = ("SQLite", "PostgreSQL")
FIRST, NEXT = "first page", "next page"
PG_SETTINGS = {"shared_buffers": "512MB"}
# The query methods of the Database interface. Some call others (SQLite's fetchvalue calls
# fetchone): only the outermost call of a nest is one query.
QUERY_METHODS = (
    "fetchall", "fetchone", "fetchvalue", "lookup", "lookup_value", "lookup_all", "fetch_keyed",
)


# --- timing the queries a request makes -------------------------------------------------


@dataclass
class Recorded:
    """The queries of the current request: (method, SQL, params, ms)."""

    calls: list[tuple[str, str, Params, float]] = field(default_factory=list)
    # How deep in a nest of query methods the current task is. Per task, not per
    # request: hydration runs its reads concurrently on PostgreSQL, each in its own task
    # (which starts from a copy of the context, at depth 0 there).
    depth: contextvars.ContextVar[int] = field(
        default_factory=lambda: contextvars.ContextVar("depth", default=0)
    )


def timed(db: Database) -> Recorded:
    """Wrap ``db``'s query methods (on the instance) so each outermost call is recorded.

    Wrapping the instance, not subclassing, keeps one code path for both backends and
    leaves the node's classes untouched.
    """
    record = Recorded()

    def wrap(name: str) -> None:
        inner = getattr(db, name)

        async def call(sql: str, params: Params = (), *rest: Any) -> Any:
            depth = record.depth.get()
            record.depth.set(depth + 1)
            start = time.perf_counter()
            try:
                return await inner(sql, params, *rest)
            finally:
                record.depth.set(depth)
                if depth == 0:
                    ms = (time.perf_counter() - start) * 1000
                    record.calls.append((name, sql, params, ms))

        setattr(db, name, call)

    for name in QUERY_METHODS:
        wrap(name)
    return record


class ServerCpu:
    """CPU seconds used so far by a PostgreSQL cluster's processes (the postmaster's
    children: the backends, and the background workers, which idle here), from /proc."""

    def __init__(self, cluster: PgCluster) -> None:
        pid_file = cluster.data_dir / "postmaster.pid"
        self.postmaster = int(pid_file.read_text().split()[0])
        self.ticks = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        try:
            children = Path(
                f"/proc/{self.postmaster}/task/{self.postmaster}/children"
            ).read_text().split()
        except OSError:
            return 0.0
        total = 0
        for pid in children:
            try:
                # The command name may hold spaces; the fields after its ")" are fixed.
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # a process that just ended
            total += int(fields[11]) + int(fields[12])
        return total / self.ticks


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Series:
    """One engine's requests of one kind."""

    total: list[float] = field(default_factory=list)
    page_sql: list[float] = field(default_factory=list)
    rest: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    page_calls: list[tuple[str, Params, float]] = field(default_factory=list)
    per_query: dict[str, list[float]] = field(default_factory=dict)  # hydration, by label


@dataclass
class Engine:
    """One engine under test."""

    name: str
    db: Database
    record: Recorded
    timelines: TimelineService
    server_cpu: ServerCpu | None = None
    series: dict[str, Series] = field(default_factory=lambda: {FIRST: Series(), NEXT: Series()})


async def one_request(
    engine: Engine, kind: str, call: Callable[[], Awaitable[Page]], keep: bool
) -> Page:
    """Run one request, recording its times if ``keep`` (not during the warm-up)."""
    engine.record.calls.clear()
    server = engine.server_cpu.seconds() if engine.server_cpu and keep else 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    page = await call()
    elapsed = (time.perf_counter() - start) * 1000
    cpu_ms = (time.process_time() - cpu) * 1000
    if not keep:
        return page
    series = engine.series[kind]
    if engine.server_cpu is not None:
        series.server_cpu.append((engine.server_cpu.seconds() - server) * 1000)
    calls = engine.record.calls
    page_ms = calls[0][3] if calls else 0.0
    series.total.append(elapsed)
    series.page_sql.append(page_ms)
    series.rest.append(elapsed - page_ms)
    series.cpu.append(cpu_ms)
    series.queries.append(len(calls))
    series.items.append(len(page.items))
    if calls:
        series.page_calls.append((calls[0][1], calls[0][2], page_ms))
    for method, sql, _, ms in calls[1:]:
        series.per_query.setdefault(f"{method}: {query_label(sql)}", []).append(ms)
    return page


@dataclass
class Measured:
    """Everything the timed run produced."""

    engines: list[Engine]
    rounds: list[tuple[int, int, float]]  # (first request, end, load average after it)
    load_before: float
    mismatches: int
    compared: int


async def measure(engines: list[Engine], viewers: Sequence[int], rounds: int) -> Measured:
    """First and next home pages for each viewer on each engine, interleaved viewer by
    viewer in a random engine order; the first WARMUP viewers are not timed."""
    order = random.Random(7)
    measured = len(viewers) - WARMUP
    bounds = [WARMUP + measured * r // rounds for r in range(rounds + 1)]
    round_marks: list[tuple[int, int, float]] = []
    mismatches = compared = 0
    load_before = os.getloadavg()[0]
    for i, viewer in enumerate(viewers):
        keep = i >= WARMUP
        firsts: dict[str, Page] = {}
        for engine in order.sample(engines, len(engines)):
            firsts[engine.name] = await one_request(
                engine, FIRST, lambda e=engine, v=viewer: e.timelines.home(v), keep
            )
        nexts: dict[str, Page] = {}
        for engine in order.sample(engines, len(engines)):
            first = firsts[engine.name]
            if first.next_max_id is None:
                continue  # a viewer with a single page: nothing to page to
            nexts[engine.name] = await one_request(
                engine, NEXT,
                lambda e=engine, v=viewer, m=first.next_max_id: e.timelines.home(
                    v, Cursor(max_id=m)
                ),
                keep,
            )
        # The same rows must come back from both engines (ids, in order).
        for pages in (firsts, nexts):
            shown = {name: [v.post.id for v in page.items] for name, page in pages.items()}
            if len(shown) == len(engines):
                compared += 1
                mismatches += len({tuple(ids) for ids in shown.values()}) != 1
        if keep and i + 1 in bounds[1:]:
            start = bounds[len(round_marks)]
            round_marks.append((start - WARMUP, i + 1 - WARMUP, os.getloadavg()[0]))
            print(f"  round {len(round_marks)}/{rounds} done, 1-minute load average"
                  f" {os.getloadavg()[0]:.2f}", flush=True)
    return Measured(engines, round_marks, load_before, mismatches, compared)


# --- plans --------------------------------------------------------------------------------


async def pg_plan(db: PostgresDatabase, sql: str, params: Params) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of a query, as the store sends it (``$n`` params)."""
    rows = await db.fetchall(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
    return [row[0] for row in rows]


def sqlite_plan(path: Path, sql: str, params: Params) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        conn.close()


# --- candidate changes (PostgreSQL only, in the throwaway cluster) ------------------------

# The candidate index the SQLite benchmark recommends too (docs/benchmarks.md, "Timelines"):
# exactly the rows a home page may show, so the newest ids of an author come from the index
# alone (an index-only scan once VACUUM has set the visibility map).
CANDIDATE_INDEX = (
    "CREATE INDEX bench_posts_home ON posts (account_id, id)"
    " WHERE deleted_at IS NULL AND visibility <> 'direct'"
)
# The same page, shaped for PostgreSQL: the newest `limit` ids of each followed account
# (one bounded index scan each, LATERAL), merged, cut to the page, and only then the 40
# rows read. PostgreSQL cannot merge the IN list's per-account index scans in id order as
# SQLite's plan does; it either walks the whole posts_pkey backwards filtering by author,
# or reads every followed post and sorts.
LATERAL_HOME = (
    "SELECT p.id AS page_cursor, p.* FROM posts p WHERE p.id IN ("
    "SELECT q.id FROM (SELECT target_account_id AS author FROM follows WHERE account_id = ?"
    " AND state = 'accepted' UNION ALL SELECT ?) f CROSS JOIN LATERAL"
    " (SELECT q.id, q.account_id FROM posts q WHERE q.account_id = f.author"
    " AND q.deleted_at IS NULL AND q.visibility <> 'direct' ORDER BY q.id DESC LIMIT ?) q"
    " WHERE NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.account_id = ?"
    " AND mu.target_account_id = q.account_id)"
    " ORDER BY q.id DESC LIMIT ?) ORDER BY p.id DESC"
)


_FOLLOWED_ANY = "p.account_id = ANY(ARRAY("
_FOLLOWED_END = " UNION ALL SELECT ?))"


def as_in(sql: str) -> str:
    """The store's PostgreSQL home query as it was before, with ``p.account_id IN (SELECT
    ...)`` for ``p.account_id = ANY(ARRAY(SELECT ...))``. With the array the subquery runs
    once (an InitPlan) and each post is tested against it inside the scan's filter; ``IN``
    made a semi join that walks a materialised list of the followed accounts row by row for
    every post scanned. Same rows, same parameters."""
    start = sql.index(_FOLLOWED_ANY)
    end = sql.index(_FOLLOWED_END, start) + len(_FOLLOWED_END)
    inner = sql[start + len(_FOLLOWED_ANY) : end - 2]
    return f"{sql[:start]}p.account_id IN ({inner}){sql[end:]}"


@dataclass
class Candidate:
    """A page-query variant timed on the first-page inputs of the run."""

    name: str
    ms: list[float] = field(default_factory=list)
    differing: int = 0


async def candidates(
    db: PostgresDatabase, calls: Sequence[tuple[str, Params, float]], cluster: PgCluster
) -> tuple[list[Candidate], dict[str, list[str]]]:
    """Time the store's home page query against its earlier form and the LATERAL shape,
    without and then with the candidate partial index, interleaved per viewer; each must
    return the same ids."""
    order = random.Random(11)
    found: list[Candidate] = []
    plans: dict[str, list[str]] = {}
    slowest = max(calls, key=lambda call: call[2])

    def lateral(params: Params) -> list[Any]:
        viewer, limit = params[0], params[-1]
        return [viewer, viewer, limit, viewer, limit]

    for phase in ("", " + partial index"):
        if phase:
            start = time.perf_counter()
            cluster.psql("xnode_bench", CANDIDATE_INDEX)
            cluster.psql("xnode_bench", "VACUUM ANALYZE posts")
            size = cluster.psql("xnode_bench", "SELECT pg_relation_size('bench_posts_home')")
            print(f"  candidate index built in {time.perf_counter() - start:.1f} s"
                  f" (with VACUUM ANALYZE posts), {int(size) / 2**20:.0f} MB", flush=True)
        current = Candidate(f"store's query, = ANY(ARRAY(...)){phase}")
        before = Candidate(f"earlier IN (SELECT ...){phase}")
        shaped = Candidate(f"LATERAL{phase}")
        for sql, params, _ in calls:
            runs = [
                (current, sql, params), (before, as_in(sql), params),
                (shaped, LATERAL_HOME, lateral(params)),
            ]
            ids: dict[str, list[int]] = {}
            for candidate, text, values in order.sample(runs, len(runs)):
                start = time.perf_counter()
                rows = await db.fetchall(text, values)
                candidate.ms.append((time.perf_counter() - start) * 1000)
                ids[candidate.name] = [row["page_cursor"] for row in rows]
            before.differing += ids[before.name] != ids[current.name]
            shaped.differing += ids[shaped.name] != ids[current.name]
        found += [current, before, shaped]
        plans[f"earlier IN (SELECT ...){phase}"] = await pg_plan(
            db, as_in(slowest[0]), slowest[1]
        )
        plans[f"LATERAL{phase}"] = await pg_plan(db, LATERAL_HOME, lateral(slowest[1]))
        if phase:
            plans[f"store's query{phase}"] = await pg_plan(db, slowest[0], slowest[1])
    cluster.psql("xnode_bench", "DROP INDEX bench_posts_home")
    return found, plans


# --- reporting ----------------------------------------------------------------------------


def cells(values: Sequence[float]) -> str:
    return (
        f"{len(values):>6}{percentile(values, 0.5):>9.2f}{percentile(values, 0.99):>9.2f}"
        f"{max(values, default=0.0):>9.2f}"
    )


def ratio(b: Sequence[float], a: Sequence[float], fraction: float) -> float:
    """Percentile of ``b`` over that of ``a``."""
    return percentile(b, fraction) / max(percentile(a, fraction), 1e-9)


def report(measured: Measured, shape: Shape, db_mb: float, pg_mb: float) -> bool:
    """Print the figures; True if both engines meet the target on first pages."""
    sqlite_engine, pg_engine = measured.engines
    print()
    print(
        f"pg_timelines: {shape.accounts:,} accounts, {shape.posts:,} posts,"
        f" ~{shape.follows} follows each, seed {shape.seed}; SQLite {db_mb:,.0f} MB,"
        f" PostgreSQL {pg_mb:,.0f} MB"
    )
    after = measured.rounds[-1][2] if measured.rounds else 0.0
    print(
        f"1-minute load average: {measured.load_before:.2f} when measuring started, "
        + ", ".join(f"{load:.2f}" for *_, load in measured.rounds)
        + f" after each round ({os.cpu_count()} cores)"
    )
    if max(measured.load_before, after) > (os.cpu_count() or 1):
        print("WARNING: the machine was busy with other work: compare the ratios and the CPU"
              " rows, not the absolute wall-clock p99s")
    print(f"same pages on both engines: {measured.compared - measured.mismatches:,}"
          f" of {measured.compared:,}")
    print()
    print(f"{'ms':<40}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    ok = True
    for kind in (FIRST, NEXT):
        for engine in measured.engines:
            s = engine.series[kind]
            if not s.total:
                continue
            verdict = ""
            if kind == FIRST:
                passed = percentile(s.total, 0.99) <= HOME_TARGET_MS
                ok = ok and passed
                verdict = f"  target <= {HOME_TARGET_MS:.0f}: {'PASS' if passed else 'FAIL'}"
            print(
                f"{f'home, {kind}, {engine.name}':<40}{cells(s.total)}{verdict}"
                f"  ({statistics.mean(s.queries):.1f} queries,"
                f" {statistics.mean(s.items):.1f} items)"
            )
            print(f"{'  page query (SQL)':<40}{cells(s.page_sql)}")
            print(f"{'  hydration + Python':<40}{cells(s.rest)}")
            print(f"{'  client CPU, all threads':<40}{cells(s.cpu)}"
                  f"  mean {statistics.mean(s.cpu):.2f}")
            if s.server_cpu:
                print(f"{'  server CPU (mean only: tick resolution)':<40}{'':>33}"
                      f"  mean {statistics.mean(s.server_cpu):.2f}")
    print()
    print("hydration queries of the first pages, p50 / p99 ms and how many per page (SQLite |"
          " PostgreSQL; - where an engine does not make that query):")
    lite_q, pg_q = sqlite_engine.series[FIRST].per_query, pg_engine.series[FIRST].per_query
    pages = max(1, len(sqlite_engine.series[FIRST].total))

    def side(values: list[float]) -> str:
        if not values:
            return f"{'-':>6} {'':>6} {'':>5}"
        return (f"{percentile(values, 0.5):6.2f}/{percentile(values, 0.99):6.2f}"
                f" x{len(values) / pages:<4.1f}")

    # Slowest on PostgreSQL first; then those PostgreSQL does not make, slowest first.
    labels = sorted({*lite_q, *pg_q}, key=lambda k: (
        -statistics.mean(pg_q.get(k, [0.0])), -statistics.mean(lite_q.get(k, [0.0]))
    ))
    for label in labels:
        print(f"  {side(lite_q.get(label, []))} | {side(pg_q.get(label, []))}  {label}")
    print()
    print("PostgreSQL / SQLite, by round (first pages; each round is the same viewers on both):")
    print(f"{'round':<8}{'n':>6}{'load':>7}{'p50 SQLite':>12}{'p50 PG':>9}{'ratio':>7}"
          f"{'p99 SQLite':>12}{'p99 PG':>9}{'ratio':>7}")
    lite, pg = sqlite_engine.series[FIRST].total, pg_engine.series[FIRST].total
    spans = [*measured.rounds, (0, len(lite), after)]
    for index, (start, end, load) in enumerate(spans):
        a, b = lite[start:end], pg[start:end]
        name = "all" if index == len(spans) - 1 else str(index + 1)
        p50a, p50b = percentile(a, 0.5), percentile(b, 0.5)
        p99a, p99b = percentile(a, 0.99), percentile(b, 0.99)
        print(f"{name:<8}{len(a):>6}{load:>7.2f}{p50a:>12.2f}{p50b:>9.2f}{p50b / p50a:>7.2f}"
              f"{p99a:>12.2f}{p99b:>9.2f}{p99b / p99a:>7.2f}")
    for kind in (FIRST, NEXT):
        a = sqlite_engine.series[kind]
        b = pg_engine.series[kind]
        if not (a.total and b.total):
            continue
        cpu_a, cpu_b = statistics.mean(a.cpu), statistics.mean(b.cpu)
        server_b = statistics.mean(b.server_cpu) if b.server_cpu else 0.0
        print(
            f"  {kind}: PG/SQLite p50 {ratio(b.total, a.total, 0.5):.2f},"
            f" p99 {ratio(b.total, a.total, 0.99):.2f};"
            f" page query p50 {ratio(b.page_sql, a.page_sql, 0.5):.2f};"
            f" client CPU mean {cpu_b / cpu_a:.2f};"
            f" client + server CPU mean {(cpu_b + server_b) / cpu_a:.2f}"
        )
    print()
    print(
        f"target: home timeline (first page) p99 <= {HOME_TARGET_MS:.0f} ms on both engines"
        f" -> {'PASS' if ok else 'FAIL'}"
    )
    return ok


def report_candidates(found: Sequence[Candidate], plans: dict[str, list[str]]) -> None:
    print()
    print(f"{'PostgreSQL home page query alone, ms':<40}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    for candidate in found:
        note = "" if candidate.name.startswith("store") else (
            f"  {candidate.differing} pages differ"
        )
        print(f"{candidate.name:<40}{cells(candidate.ms)}{note}")
    for name, plan in plans.items():
        print()
        print(f"PostgreSQL EXPLAIN (ANALYZE, BUFFERS), {name}, the run's slowest viewer:")
        for line in plan:
            print(f"  {line}")


async def explain(
    measured: Measured, sqlite_path: Path, pg_db: PostgresDatabase
) -> None:
    """The home page query's plans: PostgreSQL's slowest page query and a median one."""
    pg_series = measured.engines[1].series[FIRST]
    if not pg_series.page_calls:
        return
    by_time = sorted(pg_series.page_calls, key=lambda call: call[2])
    picks = {"slowest": by_time[-1], "median": by_time[len(by_time) // 2]}
    sql = picks["median"][0]
    print()
    shown = " ".join(numbered(sql).split())
    print(f"home page query (the store's, as PostgreSQL gets it): {shown}")
    # The store writes the query for each engine (= ANY(ARRAY(...)) on PostgreSQL only):
    # SQLite's plan is of its own text, for the same viewer.
    viewer = picks["median"][1][0]
    lite = next(
        (call for call in measured.engines[0].series[FIRST].page_calls if call[1][0] == viewer),
        None,
    )
    if lite is not None:
        print(f"SQLite plan: {'; '.join(sqlite_plan(sqlite_path, lite[0], lite[1]))}")
    for name, (sql, params, ms) in picks.items():
        print()
        print(f"PostgreSQL EXPLAIN (ANALYZE, BUFFERS), {name} page query in the run"
              f" ({ms:.2f} ms then), viewer {params[0]}:")
        for line in await pg_plan(pg_db, sql, params):
            print(f"  {line}")


# --- the run ------------------------------------------------------------------------------


def viewers_for(path: Path, requests: int, seed: int) -> list[int]:
    """bench/timelines.py's home-timeline viewers (its workload's first draw)."""
    rng = random.Random(seed + 1)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        accounts = [row[0] for row in conn.execute("SELECT id FROM accounts ORDER BY id")]
    finally:
        conn.close()
    return sample(rng, accounts, requests + WARMUP)


async def copy_into(cluster: PgCluster, sqlite_path: Path) -> tuple[str, float]:
    """Copy the SQLite data set into a new database of ``cluster``; its URL and seconds."""
    # The copy wants the SQLite file at this xnode's schema: opening it migrates it.
    lite = SqliteDatabase(sqlite_path)
    await lite.open()
    await lite.close()
    cluster.create_database("xnode_bench")
    url = cluster.url("xnode_bench")
    marks = {"copy": 0, "verify": 0}

    def progress(phase: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done // step > marks[phase]:
            marks[phase] = done // step
            print(f"    {phase}: {done:,} of {total:,} rows", flush=True)

    start = time.perf_counter()
    await copy_sqlite_to_postgres(sqlite_path, url, progress)  # type: ignore[arg-type]
    copied = time.perf_counter() - start
    print(f"  copied and verified in {copied:.0f} s; VACUUM ANALYZE ...", flush=True)
    start = time.perf_counter()
    cluster.psql("xnode_bench", "VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - start:.0f} s", flush=True)
    return url, copied


async def run(args: argparse.Namespace, cluster: PgCluster, sqlite_path: Path,
              scratch: Path, shape: Shape, db_mb: float) -> bool:
    url, _ = await copy_into(cluster, sqlite_path)
    pg_mb = int(cluster.psql("xnode_bench", "SELECT pg_database_size(current_database())"))
    viewers = viewers_for(sqlite_path, args.requests, shape.seed)
    settings = make_settings(scratch / "node")
    engines: list[Engine] = []
    for name, target in zip(ENGINES, (sqlite_path, url), strict=True):
        db = database_for(target)
        await db.open()
        record = timed(db)
        posts = PostService(db, settings, SystemClock(), EventBus(), MediaStore(scratch / "media"))
        engines.append(Engine(name, db, record, TimelineService(db, posts)))
    engines[1].server_cpu = ServerCpu(cluster)
    try:
        # As `xnode serve` does once started: what is loaded by then is not walked by
        # every full collection.
        gc.freeze()
        print(f"  home first + next page, {len(viewers) - WARMUP} viewers (+{WARMUP} warm-up),"
              f" both engines interleaved ...", flush=True)
        measured = await measure(engines, viewers, args.rounds)
        ok = report(measured, shape, db_mb, pg_mb / 2**20)
        pg_db = engines[1].db
        assert isinstance(pg_db, PostgresDatabase)
        await explain(measured, sqlite_path, pg_db)
        if not args.skip_candidates:
            print()
            print("  candidate page queries on PostgreSQL (page query alone, same first-page"
                  " inputs, interleaved) ...", flush=True)
            found, plans = await candidates(pg_db, engines[1].series[FIRST].page_calls, cluster)
            report_candidates(found, plans)
    finally:
        for engine in engines:
            await engine.db.close()
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="local accounts (10,000)")
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts (1,000,000)")
    parser.add_argument("--follows", type=int, default=100, help="mean follows per account (100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data set (1)")
    parser.add_argument("--requests", type=int, default=1_000,
                        help="timed viewers (1,000; plus a warm-up): a first and a next page"
                        " each, on each engine")
    parser.add_argument("--rounds", type=int, default=4, help="rounds reported apart (4)")
    parser.add_argument("--small", action="store_true",
                        help="quick run: 1,000 accounts, 50,000 posts, 200 viewers")
    parser.add_argument("--keep", type=Path, metavar="PATH",
                        help="build the SQLite data set at PATH and keep it; reuse it if it was"
                        " built with the same sizes and seed (as bench/timelines.py --keep)")
    parser.add_argument("--durable", action="store_true", help="PostgreSQL with fsync on")
    parser.add_argument("--skip-candidates", action="store_true",
                        help="do not time the candidate page queries on PostgreSQL")
    args = parser.parse_args(argv)
    if args.small:
        args.accounts, args.posts, args.requests = 1_000, 50_000, 200
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shape = Shape(args.accounts, args.posts, args.follows, args.seed)
    print(calibration_line())
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="xnode-pg-timelines-") as tmp:
        scratch = Path(tmp)
        path = args.keep.resolve() if args.keep else scratch / "bench.db"
        print(f"SQLite data set: {path}", flush=True)
        load = build_database(path, shape)
        print("  reusing the kept database" if load.reused
              else f"  loaded in {load.seconds:.1f} s", flush=True)
        db_mb = path.stat().st_size / 2**20
        with PgCluster(durable=args.durable, settings=PG_SETTINGS) as cluster:
            print(f"PostgreSQL {cluster.version}, throwaway cluster in {cluster.directory}"
                  f" (Unix socket, {'fsync on' if args.durable else 'fsync off'},"
                  f" shared_buffers {PG_SETTINGS['shared_buffers']}); copying ...", flush=True)
            ok = asyncio.run(run(args, cluster, path, scratch, shape, db_mb))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
