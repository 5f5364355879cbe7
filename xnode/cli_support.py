"""What the ``xnode`` command modules share: the ``--data`` option, running an
action against the node's database and services, and plain-text output.

Used by :mod:`xnode.cli` and :mod:`xnode.cli_federation`; the underscored names
are shared between them, not API.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from xnode.accounts.service import AccountService
from xnode.clock import SystemClock
from xnode.settings import Settings, load_settings
from xnode.store.database import Database, open_database

T = TypeVar("T")


def _data_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="XNODE_DATA",
        default="./data",
        show_default=True,
        help="Node data directory (env: XNODE_DATA).",
    )(command)


@dataclasses.dataclass(frozen=True)
class _Node:
    settings: Settings
    db: Database
    accounts: AccountService


def _with_node(data_dir: Path, action: Callable[[_Node], Awaitable[T]]) -> T:
    """Load the node's settings, open its database and run ``action`` against it."""
    settings = load_settings(data_dir)
    if settings.database_url is None and not settings.database_path.is_file():
        # Opening would silently create an empty database in its place.
        raise click.ClickException(f"no database at {settings.database_path}")

    async def run() -> T:
        async with open_database(settings.database) as db:
            return await action(_Node(settings, db, AccountService(db, settings, SystemClock())))

    return asyncio.run(run())


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    for line in (headers, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
