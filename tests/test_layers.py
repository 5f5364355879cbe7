"""The storage rule (docs/architecture.md): SQL only in ``xnode/store/``, and web handlers,
client API handlers and CLI commands call services, never store modules. Checked by reading
the source, so a new violation fails here rather than waiting for the PostgreSQL backend to
find it."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from pathlib import Path

XNODE = Path(__file__).resolve().parent.parent / "xnode"

# A statement in a string literal: the keyword right after the opening quote (or an f).
_SQL = re.compile(r"""f?["'](SELECT |INSERT INTO |UPDATE \w+ SET |DELETE FROM )""")
# The visibility rule is stated once in Python and once as a SQL condition, side by side
# on purpose (store modules splice the condition into their queries).
_SQL_ALLOWED = {"posts/visibility.py"}
# Wiring, not handlers: they build the services over the database.
_STORE_IMPORT_ALLOWED = {"app.py", "state.py"}


def _sources(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_sql_lives_in_the_store_only():
    found = []
    for path in _sources(XNODE):
        relative = path.relative_to(XNODE).as_posix()
        if relative.startswith("store/") or relative in _SQL_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _SQL.search(line):
                found.append(f"xnode/{relative}:{number}: {line.strip()}")
    assert found == []


_STORE_IMPORT = re.compile(
    r"\s*(from xnode\.store(\.(?P<module>\w+))?\b|from xnode import store\b|import xnode\.store)"
)
# What the commands may take from the store: opening the database, its schema version and the
# SQLite-to-PostgreSQL copy (the storage's own tooling, not a domain operation).
_CLI_STORE_MODULES_ALLOWED = {"database", "migrations", "copy_to_postgres"}


def _store_imports(paths: list[Path], allowed_modules: AbstractSet[str] = frozenset()) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = _STORE_IMPORT.match(line)
            if match and match.group("module") not in allowed_modules:
                found.append(f"{path.relative_to(XNODE.parent)}:{number}: {line.strip()}")
    return found


def test_web_handlers_do_not_import_the_store():
    handlers = [p for p in _sources(XNODE / "web") if p.name not in _STORE_IMPORT_ALLOWED]
    assert _store_imports(handlers) == []


def test_client_api_handlers_do_not_import_the_store():
    assert _store_imports(_sources(XNODE / "api")) == []


def test_commands_do_not_import_the_store():
    commands = sorted(XNODE.glob("cli*.py")) + sorted(XNODE.rglob("*_cli.py"))
    assert len(commands) >= 4
    assert _store_imports(commands, _CLI_STORE_MODULES_ALLOWED) == []
