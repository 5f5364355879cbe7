"""``xnode db …``: database maintenance; for now, moving a node from SQLite to PostgreSQL.

Registered on the root group by :mod:`xnode.cli`. The copy itself (and its SQL) is in
:mod:`xnode.store.copy_to_postgres`; this module checks that the node is not serving,
shows progress, and switches ``xnode.toml`` over when the copy verified.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import click

from xnode.cli_support import _data_option, _echo_table
from xnode.clock import SystemClock
from xnode.federation_admin import FederationAdmin
from xnode.settings import CONFIG_FILE, Settings, load_settings, render_config
from xnode.store.database import POSTGRES_SCHEMES, open_database

if TYPE_CHECKING:
    from xnode.store.copy_to_postgres import CopyReport, Phase


@click.group()
def db() -> None:
    """Database maintenance: move a node from SQLite to PostgreSQL."""


@db.command("migrate-to-postgres")
@_data_option
@click.option(
    "--dsn",
    required=True,
    metavar="URL",
    help="An empty PostgreSQL database: postgresql://USER:PASSWORD@HOST/NAME.",
)
def migrate_to_postgres(data_dir: Path, dsn: str) -> None:
    """Copy this node's SQLite database into an empty PostgreSQL database.

    Stop xnode serve first. Every table is copied in one transaction and verified (row
    counts and a checksum per table); then xnode.toml gets database_url, so the next
    xnode serve uses PostgreSQL. The SQLite file stays where it is, as the way back.
    """
    # Here, not at the top: it loads the PostgreSQL driver, which only this command needs
    # (every other `xnode` command, and a SQLite node, runs without it installed).
    from xnode.store.copy_to_postgres import (
        CopyError,
        VerificationError,
        copy_sqlite_to_postgres,
        redacted,
    )

    settings = load_settings(data_dir)
    if settings.database_url is not None:
        raise click.ClickException(
            f"this node already uses PostgreSQL ({redacted(settings.database_url)},"
            " database_url in xnode.toml or XNODE_DATABASE_URL): nothing to move"
        )
    if not dsn.startswith(POSTGRES_SCHEMES):
        raise click.ClickException(
            f"--dsn: expected a postgresql:// URL, got {redacted(dsn).split('@')[-1]!r}"
        )
    path = settings.database_path
    if not path.is_file():
        raise click.ClickException(f"no database at {path}")
    config: list[Path] = []
    bar = _Progress()
    try:
        _refuse_if_serving(settings)
        with bar:
            report = asyncio.run(copy_sqlite_to_postgres(
                path, dsn, bar.update,
                after_commit=lambda _: config.append(_switch_config(settings.data_dir, dsn)),
            ))  # fmt: skip
    except VerificationError as exc:
        _echo_results(exc.report)
        raise click.ClickException(
            f"{exc}. Nothing was committed: the PostgreSQL database is empty again, and"
            " the node still uses its SQLite file"
        ) from None
    except CopyError as exc:
        raise click.ClickException(
            f"{exc}\nNothing was committed; the node still uses its SQLite file."
        ) from None

    _echo_results(report)
    click.echo(
        f"Copied and verified {report.rows} rows in {len(report.tables)} tables:"
        " row counts and checksums match."
    )
    click.echo(f"{config[0]} now has database_url: the next xnode serve uses PostgreSQL.")
    click.echo(
        f"The SQLite database {path} is left in place as the way back: remove the"
        " database_url line to return to it (changes made on PostgreSQL since would"
        " not be in it)."
    )
    click.echo(f"Media files stay in {settings.media_dir}.")


def _refuse_if_serving(settings: Settings) -> None:
    """Refuse while anything has the node's database open, or ``xnode serve`` is alive.

    Two kinds of evidence: SQLite's own locks (every connection of a serving node holds
    one; checked without writing anything), and the ``helper_processes`` rows a serving
    node writes, when their ``xnode serve`` process still runs. The copy itself then
    holds the database's exclusive lock, so a node cannot start while it runs.
    """
    from xnode.store.copy_to_postgres import sqlite_in_use

    if sqlite_in_use(settings.database_path):
        raise click.ClickException(
            f"{settings.database_path} is open in another process: the node is serving"
            " (or another xnode command runs). Stop xnode serve, then run this again"
        )

    async def serving_pids() -> list[int]:
        # Opening also applies pending SQLite migrations, as any xnode command does: the
        # copy needs the SQLite database at the schema the PostgreSQL one gets.
        async with open_database(settings.database_path) as db:
            states = await FederationAdmin(db, SystemClock()).helper_states()
        return sorted({
            s.serving_pid for s in states
            if s.state != "stopped" and s.serving_pid != os.getpid()
            and _is_xnode_process(s.serving_pid)
        })  # fmt: skip

    pids = asyncio.run(serving_pids())
    if pids:
        raise click.ClickException(
            f"the node is serving: xnode serve runs as pid {', '.join(map(str, pids))}"
            " (its helper processes reported in). Stop it, then run this again"
        )


def _is_xnode_process(pid: int) -> bool:
    """Whether ``pid`` is alive and, where the system says (Linux), an xnode process:
    a pid left in the table by a node that was killed may belong to something else now."""
    from xnode.cli import _process_alive

    if not _process_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: alive is all we know
    return b"xnode" in command


def _switch_config(data_dir: Path, dsn: str) -> Path:
    """Add ``database_url`` to ``xnode.toml``, keeping every other line (comments too).

    The file is flat (a table header would be an unknown setting), so an appended key is
    still a top-level key. Written to a temporary file and renamed, so a crash leaves the
    old file or the new one, never half of one; then read back to be sure it loads.
    """
    config = data_dir / CONFIG_FILE
    try:
        return _write_config(config, dsn)
    except OSError as exc:
        raise click.ClickException(
            f"the copy is committed and verified, but {config} could not be written"
            f" ({exc}): add the line database_url = \"...\" (the DSN) by hand"
        ) from None


def _write_config(config: Path, dsn: str) -> Path:
    text = config.read_text(encoding="utf-8")
    # render_config escapes the value as the rest of xnode.toml is written.
    line = next(
        rendered for rendered in render_config({"database_url": dsn}).splitlines()
        if rendered.startswith("database_url")
    )  # fmt: skip
    if text and not text.endswith("\n"):
        text += "\n"
    text += "\n# Moved to PostgreSQL by `xnode db migrate-to-postgres`.\n" + line + "\n"
    tmp = config.with_name(f".{CONFIG_FILE}.tmp")
    # The DSN may hold a password: the file keeps its mode, and never more than the owner's.
    mode = config.stat().st_mode & 0o700 if "@" in dsn else config.stat().st_mode & 0o777
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    tmp.replace(config)
    if tomllib.loads(config.read_text(encoding="utf-8")).get("database_url") != dsn:
        raise click.ClickException(f"{config} did not take database_url; add it by hand")
    return config


def _echo_results(report: CopyReport) -> None:
    rows = [
        (t.name, str(t.source_rows), str(t.target_rows), "ok" if t.matches else "DIFFERS")
        for t in report.tables
        if t.source_rows or t.target_rows or not t.matches
    ]
    _echo_table(("TABLE", "SQLITE ROWS", "POSTGRESQL ROWS", "CHECKSUM"), rows)


class _Progress:
    """One click progress bar per phase (copying, then verifying), over rows."""

    LABELS: ClassVar[dict[Phase, str]] = {"copy": "Copying rows  ", "verify": "Verifying rows"}

    def __init__(self) -> None:
        self._bar: Any = None
        self._phase: Phase | None = None
        self._shown = 0

    def update(self, phase: Phase, done: int, total: int) -> None:
        """The callback :func:`copy_sqlite_to_postgres` calls."""
        if phase != self._phase:
            self._finish()
            self._phase, self._shown = phase, 0
            self._bar = click.progressbar(length=max(total, 1), label=self.LABELS[phase])
            self._bar.__enter__()
        if done > self._shown:
            self._bar.update(done - self._shown)
            self._shown = done

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish()
