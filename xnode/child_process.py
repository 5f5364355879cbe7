"""Helper processes of `xnode serve`, kept running and spoken to in JSON lines.

One Python process uses one core. The serving process can hand work to helper
processes (the inbox process, the delivery processes): each is started as
``python -m xnode COMMAND --fd N`` with one end of a socket pair, gets a first
``{"start": ...}`` line, and answers ``{"ready": true}`` once it works. Its
life is bound to the socket: the serving process stops it by closing its end
(the helper finishes what it is doing and exits), and restarts it after
``RESTART_DELAY_S`` if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from xnode.settings import Settings, settings_from_mapping

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 15.0
MAX_LINE_BYTES = 2 * 1024 * 1024  # an activity is at most 1 MiB, escaped


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


class ChildProcess:
    """One helper process, seen from the serving process: started, restarted, talked to."""

    def __init__(
        self,
        name: str,
        command: str,
        start_message: dict[str, Any],
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_down: Callable[[], None] | None = None,
    ) -> None:
        """Describe the helper; nothing runs before :meth:`start`.

        Args:
            name: For logs ("inbox process").
            command: The hidden ``xnode`` command that runs it.
            start_message: Sent as ``{"start": ...}`` first, after every (re)start.
            on_message: Called with every other line the helper sends.
            on_down: Called whenever the helper stops being ready.
        """
        self.name = name
        self.command = command
        self.start_message = start_message
        self.on_message = on_message
        self.on_down = on_down
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None  # the latest one
        self._ready = False
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the helper is up and has said it is ready."""
        return self._ready

    def start(self) -> None:
        """Start the helper and keep it running until :meth:`stop`."""
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        """Close the helper's socket and wait for it to finish and exit."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s link failed", self.name)
            log.warning("%s stopped; restarting in %.0f s", self.name, RESTART_DELAY_S)
            await asyncio.sleep(RESTART_DELAY_S)

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "xnode", self.command, "--fd", str(theirs.fileno()),
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
            while line := await reader.readline():
                message = json.loads(line)
                if message.get("ready"):
                    self._ready = True
                    log.info("%s ready (pid %d)", self.name, process.pid)
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
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                await process.wait()


async def connect_to_parent(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """In a helper: the socket to the serving process, and the start message it sent."""
    reader, writer = await asyncio.open_connection(
        sock=socket.socket(fileno=fd), limit=MAX_LINE_BYTES
    )
    first = json.loads(await reader.readline())["start"]
    return reader, writer, first
