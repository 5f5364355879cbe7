"""Helper processes of `xnode serve`, kept running and spoken to in JSON lines.

One Python process uses one core. The serving process can hand work to helper
processes (the inbox process, the delivery processes): each is started as
``python -P -m xnode COMMAND --fd N`` with one end of a socket pair, gets a
first ``{"start": ...}`` line, and answers ``{"ready": true}`` once it works.
Its life is bound to the socket: the serving process stops it by closing its
end (the helper finishes what it is doing and exits).

A helper that dies is restarted, after a pause that doubles with each crash
in a row (:func:`restart_delay_s`); a run that lasted ``STABLE_S`` resets the
count. After ``GIVE_UP_AFTER`` crashes in a row the serving process stops
trying, says so at error level, and calls ``on_given_up`` so that it does the
helper's work itself (as when the helper is turned off). Each change of state
is written to the ``helper_processes`` table for ``xnode check`` and admins.

``-P``: Python would otherwise put the working directory first on the module
path, and ``xnode serve`` started from a folder holding an ``xnode/``
directory (the one with the checkout, say) would start helpers from that
folder instead of the installed package.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from xnode.settings import Settings, settings_from_mapping
from xnode.store import helper_processes as status_store
from xnode.store.database import Database
from xnode.store.helper_processes import HelperState

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
"""The pause before the first restart; it doubles with each crash in a row."""
MAX_RESTART_DELAY_S = 60.0
STABLE_S = 60.0
"""A run this long was not a crash loop: the next crash starts the count again."""
GIVE_UP_AFTER = 5
"""Crashes in a row after which the serving process does the helper's work itself."""
STOP_TIMEOUT_S = 30.0
"""How long a stopped helper may take to finish and exit (a delivery process's sends in
flight: ``delivery_process.FINISH_TIMEOUT_S``, then closing its database)."""
EXIT_GRACE_S = 2.0
"""How long a helper whose socket closed may take to exit before it is terminated."""
MAX_LINE_BYTES = 2 * 1024 * 1024  # an activity is at most 1 MiB, escaped


def serving_process(settings: Settings) -> str:
    """This serving process's name among those serving the node: its machine and listen
    address (two processes on one machine cannot listen on the same one). Stable across
    restarts on purpose: a restarted process takes back its rows (helper states, queue
    claims)."""
    return f"{socket.gethostname()}/{settings.listen}"


async def forget_earlier_states(db: Database, process: str) -> None:
    """At the start of ``xnode serve``, before its helpers report: forget this serving
    process's rows of an earlier run (its helpers write theirs afresh), other serving
    processes' rows staying theirs; on SQLite every row, as one serving process at a time
    uses the file."""
    try:
        await status_store.forget(db, process, everyone=db.dialect != "postgres")
    except Exception:
        log.exception("could not forget the helper states of an earlier run")


async def keep_states_alive(db: Database, process: str) -> None:
    """Until cancelled, say every ``HEARTBEAT_S`` that ``process``'s helper rows are still
    a live process's, which also drops the rows of processes gone for a day.

    On PostgreSQL the other serving processes may run on other machines, where a pid
    says nothing: being heard of lately is how ``xnode check`` and the admin pages tell a
    running one from one that is gone (:meth:`HelperState.gone`).
    """
    while True:
        await asyncio.sleep(status_store.HEARTBEAT_S)
        try:
            await status_store.heartbeat(db, process, time.time())
        except Exception:
            log.exception("could not record that this process is alive")


def encode_line(message: dict[str, Any]) -> bytes:
    """One protocol line."""
    return json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"


def settings_message(settings: Settings) -> dict[str, Any]:
    """The settings, for the start message (:func:`settings_from_message` reads them)."""
    values = {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if field.name not in ("data_dir", "secret_key")
    }
    values = {name: value for name, value in values.items() if value is not None}
    return {
        "data_dir": str(settings.data_dir),
        "settings": values,
        "secret": settings.secret_key.hex(),
    }


def settings_from_message(message: dict[str, Any]) -> Settings:
    """In a helper: the serving process's settings, from its start message."""
    return settings_from_mapping(
        Path(message["data_dir"]), message["settings"], bytes.fromhex(message["secret"])
    )


def restart_delay_s(crashes: int) -> float:
    """The pause before restarting a helper that crashed ``crashes`` times in a row."""
    delay: float = min(RESTART_DELAY_S * 2 ** max(crashes - 1, 0), MAX_RESTART_DELAY_S)
    return delay


class ChildProcess:
    """One helper process, seen from the serving process: started, restarted, talked to."""

    def __init__(
        self,
        name: str,
        command: str,
        start_message: dict[str, Any],
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_down: Callable[[], None] | None = None,
        *,
        db: Database | None = None,
        process: str = "",
    ) -> None:
        """Describe the helper; nothing runs before :meth:`start`.

        Args:
            name: For logs and the status table ("inbox process").
            command: The hidden ``xnode`` command that runs it.
            start_message: Sent as ``{"start": ...}`` first, after every (re)start.
            on_message: Called with every other line the helper sends.
            on_down: Called whenever the helper stops being ready.
            db: Where its state is reported (``helper_processes``); None: nowhere.
            process: The serving process it belongs to there (:func:`serving_process`).
        """
        self.name = name
        self.command = command
        self.start_message = start_message
        self.on_message = on_message
        self.on_down = on_down
        self.db = db
        self.serving = process
        self.on_given_up: Callable[[], None] | None = None
        """Called once when the serving process stops restarting the helper."""
        self.on_exited: Callable[[], Awaitable[None]] | None = None
        """Awaited each time the helper process has exited (reaped: it holds nothing any
        more), e.g. to give up its queue claims at once rather than when they run out."""
        self.on_ready: Callable[[], None] | None = None
        """Called each time the helper says it is ready."""
        self.starts = 0
        self.crashes = 0  # in a row
        self.given_up = False
        self.process: asyncio.subprocess.Process | None = None  # the latest one
        self._last_exit: str | None = None
        self._ready = False
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the helper is up and has said it is ready."""
        return self._ready

    @property
    def running(self) -> bool:
        """Whether the helper is being kept running (started, not stopped or given up)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the helper and keep it running until :meth:`stop` (again after a stop)."""
        if not self.running and not self.given_up:
            self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        """Close the helper's socket and wait for it to finish and exit."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def send(self, message: dict[str, Any]) -> bool:
        """Write one line to the helper; False if it is not running."""
        if self._writer is None or self._writer.is_closing():
            return False
        try:
            self._writer.write(encode_line(message))
        except ConnectionError:
            return False
        return True

    async def _supervise(self) -> None:
        try:
            while True:
                started = time.monotonic()
                await self._report("starting")
                try:
                    await self._run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s link failed", self.name)
                self._last_exit = self._exit_text()
                self.crashes = 1 if time.monotonic() - started >= STABLE_S else self.crashes + 1
                if self.crashes >= GIVE_UP_AFTER:
                    await self._give_up()
                    return
                delay = restart_delay_s(self.crashes)
                log.warning("%s stopped (%s; %d in a row); restarting in %.0f s",
                            self.name, self._last_exit, self.crashes, delay)  # fmt: skip
                await self._report("restarting")
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            if not self.given_up:
                await asyncio.shield(self._report("stopped"))
            raise

    async def _give_up(self) -> None:
        self.given_up = True
        log.error(
            "%s crashed %d times in a row (last: %s); no more restarts: the serving process "
            "does its work from now on. Fix the cause (see the messages above) and restart "
            "xnode serve; `xnode check` reports it until then.",
            self.name, self.crashes, self._last_exit,
        )  # fmt: skip
        await self._report("failed")
        if self.on_given_up is not None:
            self.on_given_up()

    async def report_idle(self) -> None:
        """Record that the helper is not running because nothing needs it now."""
        await self._report("idle")

    def _exit_text(self) -> str:
        code = None if self.process is None else self.process.returncode
        if code is None:
            return "no exit status"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    async def _report(self, state: str) -> None:
        """Write the helper's state for ``xnode check`` and admins (never fails the caller)."""
        if self.db is None:
            return
        pid = self.process.pid if self.process is not None and state == "running" else None
        now = time.time()
        try:
            await status_store.report(self.db, HelperState(
                self.name, state, self.crashes, self._last_exit, pid, os.getpid(), now,
                process=self.serving, seen_at=now,
            ))  # fmt: skip
        except Exception:
            log.exception("could not record the state of the %s", self.name)

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            # -P: never the working directory's xnode/ (see the module's docstring).
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "xnode", self.command, "--fd", str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        finally:
            theirs.close()
        self.starts += 1
        self.process = process
        reader, writer = await asyncio.open_connection(sock=ours, limit=MAX_LINE_BYTES)
        self._writer = writer
        try:
            writer.write(encode_line({"start": self.start_message}))
            while line := await _read_line(reader):
                message = json.loads(line)
                if message.get("ready"):
                    self._ready = True
                    log.info("%s ready (pid %d)", self.name, process.pid)
                    await self._report("running")
                    if self.on_ready is not None:
                        self.on_ready()
                else:
                    await self.on_message(message)
        except asyncio.CancelledError:
            writer.close()  # EOF: the helper finishes what it is doing and exits
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            log.info("%s exited (status %s)", self.name, process.returncode)
            raise
        finally:
            self._ready = False
            self._writer = None
            if self.on_down is not None:
                self.on_down()
            # The socket closing usually means the helper exited: give the child
            # watcher a moment to collect its status before signalling it. (A signal
            # sent first makes subprocess poll the pid, which reaps it under the
            # watcher's nose, and the exit status is then lost: reported as 255.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_GRACE_S):
                    await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                await process.wait()
            if self.on_exited is not None:
                try:
                    await self.on_exited()
                except Exception:
                    log.exception("cleaning up after the %s failed", self.name)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """The next line from a helper; b"" at the end (a helper that died resets the socket)."""
    try:
        return await reader.readline()
    except ConnectionError:
        return b""


async def connect_to_parent(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """In a helper: the socket to the serving process, and the start message it sent."""
    reader, writer = await asyncio.open_connection(
        sock=socket.socket(fileno=fd), limit=MAX_LINE_BYTES
    )
    first = json.loads(await reader.readline())["start"]
    return reader, writer, first
