"""The storage rule (docs/architecture.md): SQL only in ``xnode/store/``, and web handlers
call services, never store modules. Checked by reading the source, so a new violation
fails here rather than waiting for the PostgreSQL backend to find it."""

from __future__ import annotations

import re
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


def test_web_handlers_do_not_import_the_store():
    found = []
    for path in _sources(XNODE / "web"):
        if path.name in _STORE_IMPORT_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from xnode\.store\b|from xnode import store\b|import xnode\.store)",
                        line):
                found.append(f"xnode/web/{path.name}:{number}: {line.strip()}")
    assert found == []
