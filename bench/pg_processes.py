"""Several serving processes on one PostgreSQL database: inbox and fan-out for N = 1, 2, 4.

Target (issue 18): 2 processes >= 1.6 x one process, where the machine has the cores.

For each N, a fresh database in one throwaway PostgreSQL cluster (tools/pg_cluster.py)
holds one node, served by N real ``xnode serve`` processes that share its data
directory and ``database_url`` and differ only in ``XNODE_LISTEN``, as behind a
reverse proxy (tests/test_several_processes.py starts them the same way). Helper
processes are off (``inbox_process = false``, ``delivery_processes = 0``): the
comparison is serving processes only, each running its own inbox worker and
delivery queue, which share the queues through leases (m014, ``FOR UPDATE SKIP
LOCKED``).

(a) Inbox: signed Create(Note)s from many remote actors (bench/inbox.py's
``RemoteActors``), each mentioning a local user, spread round-robin over the N
processes' ``/inbox`` URLs by one load generator in its own process, as a load
balancer would (every request carries the node's ``Host``, the one it was signed
for). An untimed warm-up first sends one activity per actor to every process. Figures:
accepted/s (until the last 202) and processed/s (until ``inbox_queue`` has no pending
row and every note is stored).

(b) Fan-out: a local author with F followers with personal inboxes on H loopback
hosts (bench/fanout.py's ``Receivers``, one process) posts once through process 1's
web form; deliveries/s from the form's POST until no delivery of the author is
pending. Each inbox got exactly one: every row is ``delivered`` (so each inbox got at
least one request) and the receivers counted exactly F requests.

Baselines (same run, once; they do not depend on N): the same signed load against a
bare aiohttp endpoint answering 202 (bench/inbox.py), and F unsigned POSTs of the same
body to the same inboxes at the delivery queue's global concurrency (bench/fanout.py).

Also printed: the 1-minute load average before each phase, and CPU seconds used during
each phase by every serving process, the PostgreSQL backends, the load generator and
the receivers: on two cores these all compete with the serving processes.

Usage: python bench/pg_processes.py [--processes 1,2,4] [--activities N] [--actors N]
       [--concurrency N] [--hosts N] [--per-host N] [--durable]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))
sys.path.insert(0, str(HERE.parent / "tests"))  # served_node: the tests' node harness

import aiohttp  # noqa: E402
from fanout import Receivers, plain_posts  # noqa: E402
from inbox import (  # noqa: E402
    BASELINE_SERVER,
    LOCAL_USER,
    RemoteActors,
    free_port,
    post_from_other_process,
    wait_ready,
)
from machine import calibration_line, child_pids, process_cpu_s  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402
from served_node import add_followers, init_with_users  # noqa: E402

from xnode.activitypub.delivery import GLOBAL_LIMIT  # noqa: E402
from xnode.store.database import Database, open_database  # noqa: E402

TARGET_RATIO = 1.6
AUTHOR = "author"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- one node served by N processes -------------------------------------------------------


@dataclass
class Node:
    """A PostgreSQL node in ``data_dir`` and its N serving processes (once started)."""

    data_dir: Path
    url: str
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def domain(self) -> str:
        """The node's domain: process 1's address (the one in its URLs)."""
        return f"127.0.0.1:{self.ports[0]}"

    @property
    def base_urls(self) -> list[str]:
        """Each serving process's own address, as a load balancer reaches it."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        """Start ``xnode serve`` N times; only the listen address differs."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("XNODE_")}
        environ.update({
            "XNODE_ALLOW_PRIVATE_ADDRESSES": "true", "XNODE_CALL_RELAY": "false",
            "XNODE_CALL_RELAY_PORT": "0",
            # Serving processes only: no inbox or delivery helper processes.
            "XNODE_INBOX_PROCESS": "false", "XNODE_DELIVERY_PROCESSES": "0",
        })  # fmt: skip
        xnode = str(Path(sys.executable).parent / "xnode")
        for n, port in enumerate(self.ports):
            log = (self.data_dir.parent / f"{self.data_dir.name}-{n + 1}.log").open("ab")
            self.procs.append(subprocess.Popen(
                [xnode, "serve", "--data", str(self.data_dir)],
                env={**environ, "XNODE_LISTEN": f"127.0.0.1:{port}"},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
            log.close()
        for base, proc in zip(self.base_urls, self.procs, strict=True):
            wait_ready(f"{base}/", proc, timeout_s=60)

    def stop(self) -> None:
        """SIGTERM every serving process and wait."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def logs_tail(self) -> str:
        """The end of every process's log (for failure messages)."""
        parts = []
        for n in range(len(self.ports)):
            path = self.data_dir.parent / f"{self.data_dir.name}-{n + 1}.log"
            parts.append(f"--- process {n + 1}:\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


async def make_node(cluster: PgCluster, tmp: Path, name: str, processes: int) -> Node:
    """Initialise a node on a fresh database, with ``alice`` (mentioned) and ``author``."""
    cluster.create_database(name)
    url = cluster.url(name)
    ports = [free_port() for _ in range(processes)]
    data_dir = tmp / name
    await init_with_users(
        data_dir, ports[0], (LOCAL_USER, AUTHOR), database_url=url, cores=1, password=PASSWORD
    )
    return Node(data_dir, url, ports)


# --- measuring ----------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used between two reads by named processes and by the cluster's backends.

    PostgreSQL backends are the postmaster's children; one that exits in between loses
    its share (the serving processes' pools keep theirs open, so little is lost).
    """

    def __init__(self, named: dict[str, int], postmaster: int) -> None:
        self.named = named
        self.postmaster = postmaster
        self.start = {name: process_cpu_s(pid) for name, pid in named.items()}
        self.backends = self._backends()

    def _backends(self) -> dict[int, float]:
        found = {}
        for pid in child_pids(self.postmaster):
            try:
                found[pid] = process_cpu_s(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
        return found

    def read(self) -> dict[str, float]:
        """CPU seconds per name since the start, ``postgres`` for all backends together."""
        used = {name: process_cpu_s(pid) - self.start[name] for name, pid in self.named.items()}
        now = self._backends()
        used["postgres"] = sum(s - self.backends.get(pid, 0.0) for pid, s in now.items())
        return used


def cpu_text(used: dict[str, float], seconds: float) -> str:
    """CPU seconds per process over a phase, and as a share of one core."""
    parts = ", ".join(f"{who} {s:.1f} s ({s / seconds:.0%})" for who, s in used.items())
    return f"CPU over {seconds:.1f} s: {parts}; total {sum(used.values()) / seconds:.2f} cores"


def load1() -> float:
    """The 1-minute load average (2 cores: above 2, something waits for a core)."""
    return os.getloadavg()[0]


async def wait_inbox_done(db: Database, total: int, timeout_s: float) -> float:
    """Wait until ``total`` activities are queued, none pending, ``total`` remote notes
    stored; the wall-clock time it happened."""
    deadline = time.time() + timeout_s
    while True:
        # A cheap EXISTS (the partial index of pending rows) while work remains.
        pending = await db.fetchvalue(
            "SELECT EXISTS (SELECT 1 FROM inbox_queue WHERE state = 'pending')"
        )
        if not pending:
            queued = await db.fetchvalue("SELECT COUNT(*) FROM inbox_queue")
            posts = await db.fetchvalue(
                "SELECT COUNT(*) FROM posts p JOIN accounts a ON a.id = p.account_id"
                " WHERE a.domain IS NOT NULL"
            )
            if queued >= total and posts >= total:
                return time.time()
        if time.time() > deadline:
            raise RuntimeError(f"inbox not processed in {timeout_s:.0f} s")
        await asyncio.sleep(0.02)


async def publish(base_url: str, source: str) -> None:
    """Sign in as the author and post through the web form, as a person would."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 too
    async with aiohttp.ClientSession(base_url=base_url, cookie_jar=jar) as session:

        async def token(page: str) -> str:
            async with session.get(page) as response:
                match = _CSRF.search(await response.text())
            assert match, f"no CSRF token on {page}"
            return match[1]

        form = {"csrf_token": await token("/login"), "username": AUTHOR, "password": PASSWORD}
        async with session.post("/login", data=form, allow_redirects=False) as response:
            assert response.status == 303, f"login answered {response.status}"
        form = {"csrf_token": await token("/"), "source": source}
        async with session.post("/posts", data=form, allow_redirects=False) as response:
            assert response.status == 303, f"posting answered {response.status}"


async def wait_fanout_done(db: Database, author_id: int, expected: int, timeout_s: float) -> None:
    """Wait until the author has ``expected`` delivery rows and none pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = await db.fetchvalue(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'pending'"
            " AND sender_account_id = ?)",
            (author_id,),
        )
        if not pending:
            rows = await db.fetchvalue(
                "SELECT COUNT(*) FROM deliveries WHERE sender_account_id = ?", (author_id,)
            )
            if rows >= expected:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"fan-out not done in {timeout_s:.0f} s")
        await asyncio.sleep(0.01)


async def wait_reached(receivers: Receivers, count: int) -> float:
    """perf_counter time when the receivers have counted ``count`` requests in all."""
    while await asyncio.to_thread(receivers.count) < count:
        await asyncio.sleep(0.02)
    return time.perf_counter()


@dataclass
class Result:
    """One N's figures."""

    processes: int
    accepted: float = 0.0
    processed: float = 0.0
    delivered: float = 0.0
    reached: float = 0.0
    inbox_ok: bool = False
    fanout_ok: bool = False
    notes: list[str] = field(default_factory=list)


async def run_n(
    args: argparse.Namespace,
    cluster: PgCluster,
    tmp: Path,
    processes: int,
    actors: RemoteActors,
    receivers: Receivers,
    postmaster: int,
) -> tuple[Result, str]:
    """Both phases with ``processes`` serving processes; (figures, one delivery's body)."""
    result = Result(processes)
    node = await make_node(cluster, tmp, f"procs_{processes}", processes)
    add_followers(node, AUTHOR, receivers.ports, args.per_host)
    followers = len(receivers.ports) * args.per_host
    inbox = f"http://{node.domain}/inbox"  # what every request is signed for
    mention = f"http://{node.domain}/users/{LOCAL_USER}"
    start = time.perf_counter()
    # Fresh signatures per N: the domain (process 1's port) differs, and the ``created``
    # time stays recent. One warm-up batch per process: each meets every actor once.
    warmups = [
        actors.signed_creates(inbox, mention, k * args.actors, args.actors)
        for k in range(processes)
    ]
    first = processes * args.actors
    timed = actors.signed_creates(inbox, mention, first, args.activities)
    print(f"\nN = {processes}: signed {first + args.activities} requests"
          f" in {time.perf_counter() - start:.1f} s")  # fmt: skip
    await asyncio.to_thread(node.start)
    body = ""
    try:
        urls = [f"{base}/inbox" for base in node.base_urls]
        warm_accepted = 0
        async with open_database(node.url) as db:
            for url, warmup in zip(urls, warmups, strict=True):
                sent = await post_from_other_process([url], warmup, args.concurrency)
                # Only what was accepted is queued: a 500 (reported below) is not waited for.
                warm_accepted += sent["statuses"].get(202, 0)
            await wait_inbox_done(db, warm_accepted, timeout_s=120)
            await asyncio.sleep(1.0)  # let the warm-up's tail (notifications, pools) settle
            names = {f"serve {n + 1}": proc.pid for n, proc in enumerate(node.procs)}
            print(f"  load average (1 min) before the inbox phase: {load1():.2f}")
            meter = CpuMeter(names, postmaster)
            sent = await post_from_other_process(urls, timed, args.concurrency)
            accepted = sent["statuses"].get(202, 0)
            done = await wait_inbox_done(db, warm_accepted + accepted, timeout_s=600)
            cpu = meter.read()
            result.accepted = args.activities / sent["elapsed"]
            seconds = done - sent["start_wall"]
            result.processed = accepted / seconds
            errors = await db.fetchvalue(
                "SELECT COUNT(*) FROM inbox_queue WHERE last_error IS NOT NULL"
            )
            by_owner = await db.fetchall(
                "SELECT claimed_by, COUNT(*) AS n FROM inbox_queue GROUP BY claimed_by"
                " ORDER BY claimed_by"
            )
            result.inbox_ok = sent["statuses"] == {202: args.activities} and errors == 0
            print(f"  inbox: accepted {result.accepted:7.0f}/s ({sent['elapsed']:.2f} s),"
                  f" processed {result.processed:7.0f}/s ({seconds:.2f} s),"
                  f" statuses {sent['statuses']}, {errors} with errors")  # fmt: skip
            print("  inbox rows handled by: "
                  + ", ".join(f"{r['claimed_by']} {r['n']}" for r in by_owner))  # fmt: skip
            print("  " + cpu_text({"load generator": sent["cpu_s"], **cpu}, seconds))

            await asyncio.sleep(2.0)
            author_id = await db.fetchvalue(
                "SELECT id FROM accounts WHERE username = ? AND domain IS NULL", (AUTHOR,)
            )
            print(f"  load average (1 min) before the fan-out: {load1():.2f}")
            before = await asyncio.to_thread(receivers.count)
            meter = CpuMeter({**names, "receivers": receivers.pid}, postmaster)
            start = time.perf_counter()
            reached = asyncio.ensure_future(wait_reached(receivers, before + followers))
            await publish(node.base_urls[0], f"Benchmark post for {followers} followers.")
            await wait_fanout_done(db, author_id, followers, timeout_s=600)
            seconds = time.perf_counter() - start
            reached_s = await reached - start
            result.reached = followers / reached_s
            cpu = meter.read()
            await asyncio.sleep(0.5)  # a duplicate would have arrived by now
            got = await asyncio.to_thread(receivers.count) - before
            delivered = await db.fetchvalue(
                "SELECT COUNT(*) FROM deliveries WHERE sender_account_id = ?"
                " AND state = 'delivered'",
                (author_id,),
            )
            senders = await db.fetchall(
                "SELECT claimed_by, COUNT(*) AS n FROM deliveries WHERE sender_account_id = ?"
                " GROUP BY claimed_by ORDER BY claimed_by",
                (author_id,),
            )
            body = await db.fetchvalue(
                "SELECT payload FROM deliveries WHERE sender_account_id = ? LIMIT 1",
                (author_id,),
            )
            result.delivered = delivered / seconds
            # Every row delivered (each inbox got >= 1) and exactly F requests arrived:
            # so each inbox got exactly one.
            result.fanout_ok = delivered == followers and got == followers
            print(f"  fan-out: {delivered} of {followers} delivered in {seconds:.2f} s ="
                  f" {result.delivered:7.0f}/s; receivers counted {got}"
                  f" -> {'each inbox once' if result.fanout_ok else 'MISMATCH'}")  # fmt: skip
            print(f"  the receivers had {followers} requests after {reached_s:.2f} s ="
                  f" {result.reached:7.0f}/s (before any re-send: a lost outcome's is"
                  f" retried after a minute)")  # fmt: skip
            print("  deliveries sent by: "
                  + ", ".join(f"{r['claimed_by']} {r['n']}" for r in senders))  # fmt: skip
            print("  " + cpu_text(cpu, seconds))
    except Exception:
        print(node.logs_tail())
        raise
    finally:
        await asyncio.to_thread(node.stop)
    for n in range(processes):
        log = (tmp / f"procs_{processes}-{n + 1}.log").read_text(errors="replace")
        tracebacks = log.count("Traceback")
        if tracebacks:
            errors = Counter(
                line.split(": ", 1)[0].split()[-1]
                for line in log.splitlines()
                if line.startswith(("asyncpg.", "psycopg.", "sqlite3.")) or "Error: " in line
            )
            failed = log.count("recording delivery")
            result.notes.append(f"process {n + 1}: {tracebacks} tracebacks {dict(errors)}")
            print(f"  process {n + 1} log: {tracebacks} tracebacks, {failed} 'recording delivery"
                  f" ... failed', errors {dict(errors)}; last:\n{log[-1500:]}")  # fmt: skip
    return result, body


async def baselines(
    args: argparse.Namespace, actors: RemoteActors, receivers: Receivers, tmp: Path, body: str
) -> tuple[float, float]:
    """(accepted/s of a bare aiohttp 202 endpoint, unsigned POSTs/s to the receivers)."""
    port = free_port()
    script = tmp / "baseline.py"
    script.write_text(BASELINE_SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/", server)
        url = f"http://127.0.0.1:{port}/inbox"
        requests = actors.signed_creates(url, f"http://127.0.0.1:{port}/users/x", 0,
                                         args.activities)  # fmt: skip
        print(f"\nbaselines: load average (1 min) {load1():.2f}")
        sent = await post_from_other_process(url, requests, args.concurrency)
        inbox_rate = args.activities / sent["elapsed"]
        print(f"  bare aiohttp 202 endpoint: {inbox_rate:7.0f}/s, statuses {sent['statuses']}")
    finally:
        server.terminate()
        server.wait(timeout=15)
    urls = [
        f"http://127.0.0.1:{port}/users/f{n}/inbox"
        for port in receivers.ports for n in range(args.per_host)
    ]  # fmt: skip
    seconds, ok = await plain_posts(urls, body.encode(), GLOBAL_LIMIT)
    fanout_rate = ok / seconds
    print(f"  unsigned POSTs at concurrency {GLOBAL_LIMIT}: {ok} in {seconds:.2f} s ="
          f" {fanout_rate:7.0f}/s")  # fmt: skip
    return inbox_rate, fanout_rate


def table(results: list[Result], base_inbox: float, base_fanout: float) -> None:
    """The figures, with each N's ratio to N = 1."""
    one = results[0]

    def ratio(value: float, reference: float) -> str:
        return f"{value / reference:.2f}x" if reference else "-"

    print("\n| serving processes | accepted/s | x N=1 | processed/s | x N=1 |"
          " deliveries/s | x N=1 | all reached once, /s | x N=1 | checks |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        checks = "ok" if r.inbox_ok and r.fanout_ok else "FAIL"
        print(f"| {r.processes} | {r.accepted:.0f} | {ratio(r.accepted, one.accepted)} |"
              f" {r.processed:.0f} | {ratio(r.processed, one.processed)} |"
              f" {r.delivered:.0f} | {ratio(r.delivered, one.delivered)} |"
              f" {r.reached:.0f} | {ratio(r.reached, one.reached)} | {checks} |")  # fmt: skip
    print(
        f"| baseline | {base_inbox:.0f} (bare aiohttp) | | | | {base_fanout:.0f} (unsigned) | | | |"
    )
    for r in results:
        for note in r.notes:
            print(f"N = {r.processes}, {note}")
    two = next((r for r in results if r.processes == 2), None)
    if two is not None and one.processes == 1:
        cores = os.cpu_count() or 1
        verdict = (
            "PASS"
            if min(two.processed / one.processed, two.delivered / one.delivered) >= TARGET_RATIO
            else "FAIL"
        )
        print(
            f"target: 2 processes >= {TARGET_RATIO} x one (processed and deliveries) -> "
            f"{verdict}" + (f" (only {cores} cores: see the CPU lines)" if cores < 4 else "")
        )


async def run(args: argparse.Namespace, tmp: Path, cluster: PgCluster) -> bool:
    start = time.perf_counter()
    actors = RemoteActors(free_port(), args.actors)
    print(f"{args.actors} actor keys in {time.perf_counter() - start:.1f} s")
    runner = await actors.serve()
    receivers = await asyncio.to_thread(Receivers, args.hosts)
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    results: list[Result] = []
    body = ""
    try:
        for processes in args.processes:
            result, body = await run_n(args, cluster, tmp, processes, actors, receivers, postmaster)
            results.append(result)
        base_inbox, base_fanout = await baselines(args, actors, receivers, tmp, body)
    finally:
        await asyncio.to_thread(receivers.stop)
        await runner.cleanup()
    table(results, base_inbox, base_fanout)
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    return all(r.inbox_ok and r.fanout_ok for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--processes",
        default="1,2,4",
        help="serving process counts, comma-separated (first is the reference)",
    )
    parser.add_argument("--activities", type=int, default=6000)
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--per-host", type=int, default=6)
    parser.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL with fsync and synchronous commit on (default: off)",
    )
    args = parser.parse_args()
    args.processes = [int(n) for n in args.processes.split(",")]
    print(
        f"several serving processes on PostgreSQL: N = {args.processes}; inbox"
        f" {args.activities} activities from {args.actors} actors at concurrency"
        f" {args.concurrency}; fan-out {args.hosts * args.per_host} personal inboxes on"
        f" {args.hosts} hosts; durable {args.durable}"
        f" (python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    print(calibration_line())
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp, PgCluster(durable=args.durable) as cluster:
        print(f"PostgreSQL {cluster.version}")
        ok = asyncio.run(run(args, Path(tmp), cluster))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
