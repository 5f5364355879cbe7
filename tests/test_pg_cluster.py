"""tools/pg_cluster.py: a throwaway PostgreSQL cluster from Debian's binaries (issue 18).

The suite's PostgreSQL pass starts one such cluster per pytest-xdist worker
(tests/database_backend.py); these tests check that groundwork on its own. They skip
(with the reason) where Debian's PostgreSQL is not installed: `make postgres`, which
`make test` runs, installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pg_cluster import PgCluster, PgClusterError, check_name, find_bin_dir

BIN_DIR = find_bin_dir()
needs_postgres = pytest.mark.skipif(
    BIN_DIR is None,
    reason="Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin) are not"
    " installed: run `make postgres`",
)


def started(*, tcp: bool = False) -> PgCluster:
    """A started cluster, or a skip saying why it could not be (root without a
    `postgres` user to run the server as is a machine problem, not a failure here)."""
    cluster = PgCluster(tcp=tcp)
    try:
        return cluster.start()
    except PgClusterError as error:
        if "system user" in str(error):
            pytest.skip(str(error))
        raise


def running(pid: int) -> bool:
    """Whether a process runs (a stopped server not yet reaped by its parent is a
    zombie: it has no command line any more)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return bool(cmdline.read_bytes())
    except OSError:
        return False


@needs_postgres
def test_a_cluster_with_two_databases_is_started_queried_and_removed():
    cluster = started()
    try:
        directory = cluster.directory
        assert directory is not None and directory.is_dir()
        cluster.create_database("xnode_gw0")
        cluster.create_database("xnode_gw1")
        # Each database answers, and each is its own: a table in one is not in the other.
        cluster.psql("xnode_gw0", "CREATE TABLE t (x int); INSERT INTO t VALUES (41)")
        assert cluster.psql("xnode_gw0", "SELECT current_database(), x + 1 FROM t") == (
            "xnode_gw0|42"
        )
        assert cluster.psql("xnode_gw1", "SELECT current_database(), to_regclass('t')") == (
            "xnode_gw1|"
        )
        # The server listens on a socket in the cluster's own directory, not TCP, and runs
        # without fsync (its data is thrown away).
        assert cluster.psql("postgres", "SHOW listen_addresses") == ""
        assert cluster.psql("postgres", "SHOW unix_socket_directories") == str(directory)
        assert cluster.psql("postgres", "SHOW fsync") == "off"
        if os.geteuid() == 0:
            # initdb refuses root: the data directory belongs to the unprivileged user.
            assert (directory / "data").stat().st_uid != 0
        pid = int((directory / "data" / "postmaster.pid").read_text().split()[0])
    finally:
        cluster.stop()
    assert not directory.exists()
    assert not running(pid), "the server still runs after stop()"
    cluster.stop()  # twice is harmless


@needs_postgres
def test_a_cluster_on_a_loopback_port():
    with started(tcp=True) as cluster:
        assert cluster.host == "127.0.0.1" and cluster.port != 5432
        cluster.create_database("bench")
        assert cluster.psql("bench", "SELECT inet_server_addr()") == "127.0.0.1"
        assert cluster.dsn("bench") == (
            f"host=127.0.0.1 port={cluster.port} user=postgres dbname=bench"
        )


def test_database_names_are_plain_identifiers():
    assert check_name("xnode_gw12") == "xnode_gw12"
    for bad in ("Xnode", "a-b", "a; DROP DATABASE postgres", "", "1db"):
        with pytest.raises(ValueError):
            check_name(bad)
