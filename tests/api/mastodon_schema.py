"""Checking our JSON against Mastodon's documented entities.

The field names, types, which fields may be null and which may be absent, and the
version each was added in are read from Mastodon.py's ``return_types`` module, which its
authors generate from Mastodon's entity documentation (each attribute carries its type,
"(optional)"/"(nullable)" and its version history). Reading it with :mod:`ast` keeps one
source of truth instead of a hand-copied table here.

A field is required when it is neither optional nor added after the Mastodon API version
we claim; every field we send must be a documented one of the right type.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

CLAIMED_VERSION = (4, 3, 0)
# Where Mastodon.py's types are stricter than Mastodon itself:
# - a blurhash is null when the server could not compute one (Mastodon's docs: nullable);
# - ``mute_expires_at`` belongs to the muted accounts list only (MutedAccount), which
#   Mastodon.py folds into Account.
# - ``configuration.vapid`` is the key for Web Push, which this node does not offer (servers
#   without push leave it out; apps then do not subscribe).
# - ``Status.text`` (the source, sent after a delete for redrafting) is in Mastodon's
#   documentation of Status but not in Mastodon.py's.
ALSO_DOCUMENTED = frozenset({("Status", "text")})
NULL_ALLOWED = frozenset({("MediaAttachment", "blurhash")})
MAY_BE_ABSENT = frozenset({("Account", "mute_expires_at"), ("InstanceConfigurationV2", "vapid")})
_VERSION = re.compile(r"\*\s*(\d+)\.(\d+)\.(\d+)[^:]*:\s*(added|removed)")


@dataclass(frozen=True)
class Field:
    """One documented attribute of an entity."""

    name: str
    type: str
    optional: bool
    nullable: bool
    added: tuple[int, int, int]
    removed: tuple[int, int, int] | None

    @property
    def required(self) -> bool:
        """Whether a server claiming :data:`CLAIMED_VERSION` must send it."""
        if self.optional or self.added > CLAIMED_VERSION:
            return False
        return self.removed is None or self.removed > CLAIMED_VERSION


@functools.cache
def entities() -> dict[str, dict[str, Field]]:
    """Every entity Mastodon.py documents, by class name."""
    import mastodon

    source = (Path(mastodon.__file__).parent / "return_types.py").read_text()
    found: dict[str, dict[str, Field]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, Field] = {}
        body = node.body
        for index, item in enumerate(body):
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            annotation = item.annotation
            type_text = (annotation.value if isinstance(annotation, ast.Constant)
                         else ast.unparse(annotation))  # fmt: skip
            doc = ""
            if index + 1 < len(body):
                following = body[index + 1]
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    doc = str(following.value.value)
            added, removed = (0, 0, 0), None
            for major, minor, patch, what in _VERSION.findall(doc):
                version = (int(major), int(minor), int(patch))
                if what == "added" and added == (0, 0, 0):
                    added = version
                elif what == "removed":
                    removed = version
            fields[item.target.id] = Field(
                name=item.target.id, type=str(type_text),
                optional="(optional" in doc,
                nullable="nullable" in doc or str(type_text).startswith("Optional["),
                added=added, removed=removed,
            )  # fmt: skip
        if fields:
            found[node.name] = fields
    return found


def _split_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_type(type_text: str, value: Any, path: str) -> list[str]:
    """Problems with ``value`` as a value of the documented type ``type_text``."""
    if type_text.startswith("Optional["):
        return [] if value is None else check_type(type_text[9:-1], value, path)
    if type_text.startswith("Union["):
        options = _split_args(type_text[6:-1])
        results = [check_type(option, value, path) for option in options]
        return [] if any(not r for r in results) else results[0]
    if type_text.startswith(("NonPaginatableList[", "PaginatableList[", "List[")):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        inner = type_text[type_text.index("[") + 1 : -1]
        problems = []
        for index, item in enumerate(value):
            problems += check_type(inner, item, f"{path}[{index}]")
        return problems
    if type_text in ("NonPaginatableList", "PaginatableList"):
        return [] if isinstance(value, list) else [f"{path}: expected a list"]
    simple = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "datetime": _is_datetime,
        # Ids travel as strings (Mastodon.py would take numbers; Mastodon never sends them).
        "IdType": lambda v: isinstance(v, str) and v.isdigit(),
        "MaybeSnowflakeIdType": lambda v: isinstance(v, str) and v.isdigit(),
    }
    if type_text in simple:
        if value is None:
            return [f"{path}: null where {type_text} is required"]
        return [] if simple[type_text](value) else [
            f"{path}: expected {type_text}, got {value!r:.60}"
        ]
    if type_text in entities():
        return check_entity(type_text, value, path)
    return []  # a type Mastodon.py leaves open (dicts of settings and the like)


def check_entity(name: str, value: Any, path: str | None = None) -> list[str]:
    """Problems with ``value`` as the entity ``name``: missing required fields, wrong
    types, null where not nullable, fields Mastodon does not document."""
    path = path or name
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {type(value).__name__}"]
    fields = entities()[name]
    problems = []
    for key in value:
        if key not in fields and (name, key) not in ALSO_DOCUMENTED:
            problems.append(f"{path}.{key}: not a documented field of {name}")
    for field in fields.values():
        if field.name not in value:
            if field.required and (name, field.name) not in MAY_BE_ABSENT:
                problems.append(f"{path}.{field.name}: missing")
            continue
        item = value[field.name]
        if item is None:
            if not field.nullable and field.required and (name, field.name) not in NULL_ALLOWED:
                problems.append(f"{path}.{field.name}: null, but not nullable")
            continue
        problems += check_type(field.type, item, f"{path}.{field.name}")
    return problems


def assert_entity(name: str, value: Any) -> None:
    """Fail with every problem found in ``value`` as the entity ``name``."""
    problems = check_entity(name, value)
    assert not problems, "\n".join(problems)
