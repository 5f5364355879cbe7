"""Reusing models built from database rows, and hashing frozen models once.

A page of posts builds the same authors and posts again and again (a timeline,
the notifications of one person, each request's hydration). Building a frozen
dataclass of thirty fields from a row costs more than reading the row, and the
page cache (`xnode/web/render.py`) keys rendered cards by whole views, whose
hashing and comparison recursed through every field each time. Two remedies,
correct by construction:

- :class:`RowMemo` returns the model it built before when a row reads the same,
  column names and values alike (the key is the row itself, so a changed row
  simply builds a new model; nothing can go stale).
- :func:`hash_once` makes a frozen dataclass keep its hash after the first use,
  and shared instances compare by identity first (tuples do), so equal views of
  memoised posts and authors compare in a few steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from xnode.store.database import Row

T = TypeVar("T")
C = TypeVar("C", bound=type)

_HASH = "_hash_once"


class RowMemo(Generic[T]):
    """Builds models from rows, reusing the last model built from an identical row.

    Oldest entries go first beyond ``bound`` (first in, first out: moving an entry
    on every hit would cost what it saves).
    """

    def __init__(self, build: Callable[[Row], T], *, bound: int = 2048) -> None:
        self.build = build
        self.bound = bound
        self._built: dict[tuple[Any, ...], T] = {}

    def __call__(self, row: Row) -> T:
        """The model for ``row``."""
        key = (tuple(row.keys()), tuple(row))
        found = self._built.get(key)
        if found is None:
            found = self._built[key] = self.build(row)
            if len(self._built) > self.bound:
                del self._built[next(iter(self._built))]
        return found

    def clear(self) -> None:
        """Forget every model (tests that count builds)."""
        self._built.clear()


def hash_once(cls: C) -> C:
    """Class decorator for a frozen dataclass: compute its hash on first use only.

    The value lives in the instance's ``__dict__`` beside the fields, so it is not a
    field: equality, ``repr`` and ``dataclasses.replace`` (a new instance) ignore it.
    Hashes of strings differ between processes, so instances must not travel
    between processes by pickling (none do: processes exchange JSON).
    """
    # An unbound method of the class (mypy reads it as bound to the metaclass).
    computed = cast("Callable[[Any], int]", cls.__hash__)

    def __hash__(self: Any) -> int:
        try:
            return self.__dict__[_HASH]  # type: ignore[no-any-return]
        except KeyError:
            value = computed(self)
            object.__setattr__(self, _HASH, value)
            return value

    cls.__hash__ = __hash__  # type: ignore[assignment]
    return cls
