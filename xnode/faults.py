"""Fault injection for crash tests: stop the process at a named moment.

Durability is about what survives ``kill -9`` at the worst moment, and a test
cannot win that race reliably by timing. So the code names its dangerous
moments (:func:`point`), and a test that sets ``XNODE_FAULT_PAUSE`` to some of
those names (comma-separated) gets the process frozen there, with SIGSTOP,
after a line on stderr that says so; the test then kills it with SIGKILL.
The variable is read from the environment once; when it is unset (always, in
production) :func:`enabled` is False and a point costs one comparison.

Points:

- ``after-commit:EVENT``: a change that emitted EVENT (e.g. ``PostPublished``)
  has committed; its events are not published yet (nothing is queued).
- ``after-outbox``: an outbox entry became delivery rows (committed); no
  sender has been told yet.
- ``after-sends:N``: this process has had answers to N deliveries.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

ENV_VAR = "XNODE_FAULT_PAUSE"

_points: frozenset[str] | None = None


def _configured() -> frozenset[str]:
    global _points
    if _points is None:
        raw = os.environ.get(ENV_VAR, "")
        _points = frozenset(p.strip() for p in raw.split(",") if p.strip())
    return _points


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
