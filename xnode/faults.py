"""Fault injection for crash tests: stop the process at a named moment.

Durability is about what survives ``kill -9`` at the worst moment, and a test
cannot win that race reliably by timing. So the code names its dangerous
moments (:func:`point`), and a test that sets ``XNODE_FAULT_PAUSE`` to some of
those names (comma-separated) gets the process frozen there, with SIGSTOP,
after a line on stderr that says so; the test then kills it with SIGKILL.
``XNODE_FAULT_EXIT`` names points where the process exits at once instead
(:func:`exit_point`: a helper process that crashes at every start). The
variables are read from the environment once; when they are unset (always,
in production) :func:`enabled` is False and a point costs one comparison.

Points:

- ``after-commit:EVENT``: a change that emitted EVENT (e.g. ``PostPublished``)
  has committed; its events are not published yet (nothing is queued).
- ``after-outbox``: an outbox entry became delivery rows (committed); no
  sender has been told yet.
- ``after-sends:N``: this process has had answers to N deliveries.
- ``helper-start:inbox``, ``helper-start:delivery`` (exit points): a helper
  process is starting.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

ENV_VAR = "XNODE_FAULT_PAUSE"
EXIT_ENV_VAR = "XNODE_FAULT_EXIT"
EXIT_STATUS = 70  # EX_SOFTWARE

_points: frozenset[str] | None = None


def _names(variable: str) -> frozenset[str]:
    return frozenset(p.strip() for p in os.environ.get(variable, "").split(",") if p.strip())


def _configured() -> frozenset[str]:
    global _points
    if _points is None:
        _points = _names(ENV_VAR)
    return _points


def exit_point(name: str) -> None:
    """Exit the process here, at once, if ``name`` is armed in ``XNODE_FAULT_EXIT``."""
    if name in _names(EXIT_ENV_VAR):
        print(f"fault injection: pid {os.getpid()} exits at {name}", file=sys.stderr, flush=True)
        os._exit(EXIT_STATUS)


def enabled() -> bool:
    """Whether any fault point is armed (never in production)."""
    return bool(_configured())


def point(name: str) -> None:
    """Freeze this process here if ``name`` is armed (see the module's docstring)."""
    if name not in _configured():
        return
    message = f"fault injection: pid {os.getpid()} paused at {name}"
    log.critical(message)
    print(message, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
