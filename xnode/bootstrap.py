"""Node initialisation: data directory, configuration, secret key, database.

``init_node`` is all-or-nothing: it validates everything before touching the
disk and removes what it wrote if a later step fails, so a failed ``xnode
init`` can simply be run again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnode.accounts import passwords
from xnode.accounts.service import AccountService
from xnode.accounts.usernames import validate_username
from xnode.clock import SystemClock
from xnode.errors import Conflict
from xnode.settings import (
    CONFIG_FILE,
    DATABASE_FILE,
    MAX_DELIVERY_PROCESSES,
    SECRET_FILE,
    Settings,
    default_base_url,
    render_config,
    settings_from_mapping,
)
from xnode.store.database import open_database

SECRET_BYTES = 32


def helper_processes_for(cores: int | None) -> dict[str, Any]:
    """Settings that put a machine's cores to work: on two or more, the inbox and
    the deliveries get processes of their own (one Python process uses one core),
    one delivery process per core (three on two cores sent no more than two,
    within the noise, and each costs memory: docs/benchmarks.md).
    """
    if cores is None or cores < 2:
        return {}
    return {
        "inbox_process": True,
        "delivery_processes": min(cores, MAX_DELIVERY_PROCESSES),
    }


@dataclass(frozen=True)
class InitResult:
    """A freshly initialised node, and the first admin's one-time password if one was made."""

    settings: Settings
    admin_username: str | None = None
    admin_password: str | None = None


def _refuse_existing_node(data_dir: Path) -> None:
    if (data_dir / CONFIG_FILE).exists():
        raise Conflict(f"a node already exists at {data_dir} ({CONFIG_FILE} is present)")
    # A database without a config file is someone's data that lost its config;
    # initialising over it would silently pair old users with a new identity.
    if (data_dir / DATABASE_FILE).exists():
        raise Conflict(
            f"{data_dir} already holds a database ({DATABASE_FILE}) but no {CONFIG_FILE}; "
            "restore the config file or choose another directory"
        )


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    # O_CREAT's mode does not apply to a file left over from a failed init.
    os.chmod(path, 0o600)


@contextmanager
def _removed_on_failure(paths: list[Path]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise


async def init_node(
    data_dir: Path,
    *,
    domain: str,
    https: bool = True,
    port: int | None = None,
    listen: str | None = None,
    registration: str | None = None,
    admin: str | None = None,
    cores: int | None = None,
    database_url: str | None = None,
) -> InitResult:
    """Create a node in ``data_dir``: config file, secret key, database, optional admin.

    ``cores`` (default: this machine's) decides the helper processes written
    to the config (:func:`helper_processes_for`). ``database_url``: an empty
    PostgreSQL database to use instead of the embedded SQLite file.

    Raises:
        Conflict: a node (config file or database) already exists there.
        SettingsError: the options make an invalid configuration.
        InvalidInput: the admin username is not acceptable.
    """
    data_dir = data_dir.resolve()
    _refuse_existing_node(data_dir)
    values: dict[str, Any] = {
        "domain": domain,
        "base_url": default_base_url(domain, https, port),
        "listen": listen or Settings.listen,
        "registration": registration or Settings.registration,
        **helper_processes_for(os.cpu_count() if cores is None else cores),
    }
    if database_url is not None:
        values["database_url"] = database_url
    secret = secrets.token_bytes(SECRET_BYTES)
    settings = settings_from_mapping(data_dir, values, secret_key=secret)
    admin_name = None if admin is None else validate_username(admin, allow_reserved=True)

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.media_dir.mkdir(exist_ok=True)
    db_path = settings.database_path
    written = [data_dir / SECRET_FILE]
    if database_url is None:
        written += [
            db_path,
            db_path.with_name(db_path.name + "-wal"),
            db_path.with_name(db_path.name + "-shm"),
        ]
    admin_password = None
    with _removed_on_failure(written):
        _write_private(data_dir / SECRET_FILE, secret.hex() + "\n")
        if database_url is None:
            # It holds password hashes; SQLite gives its -wal and -shm files the same mode.
            db_path.touch(mode=0o600)
        async with open_database(settings.database) as db:
            accounts = AccountService(db, settings, SystemClock())
            if database_url is not None and await accounts.holds_a_node():
                raise Conflict("that PostgreSQL database already holds a node's accounts")
            if admin_name is not None:
                admin_password = passwords.generate_password()
                await accounts.create_user(
                    admin_name,
                    admin_password,
                    is_admin=True,
                    must_change_password=True,
                    allow_reserved=True,
                )
        # Written last: its presence is what marks the directory as a node.
        (data_dir / CONFIG_FILE).write_text(render_config(values), encoding="utf-8")
    return InitResult(settings, admin_username=admin_name, admin_password=admin_password)
