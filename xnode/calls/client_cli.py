"""``xnode call`` and ``xnode calls selftest``: the aiortc call client from the command line.

Both run next to a serving node: they open its database (from ``--data``) only to make
a session for a local user directly (``SessionService``, as a login would), then connect
to the node's ``base_url`` as that user's tab would. The session ends when the command
does. aiortc is imported only when a command runs (``xnode.calls.client`` loads it
lazily), so other commands start as fast as before.

The selftest's two people are throwaway local users, ``selftest_a`` (the caller) and
``selftest_b`` (the callee), created on the first run with random passwords nobody
knows and reused after; ``selftest_b`` takes calls from everyone (nobody but the
selftest ever has a tab of it open). Remove them with ``xnode user delete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from xnode.accounts.models import User
from xnode.accounts.sessions import SessionService
from xnode.cli_support import _data_option, _Node, _with_node
from xnode.clock import SystemClock
from xnode.errors import NotFound

if TYPE_CHECKING:
    from xnode.calls.client import ActiveCall, CallClient

SELFTEST_CALLER = "selftest_a"
SELFTEST_CALLEE = "selftest_b"
RING_WAIT_S = 60.0
"""How long a placed call may ring before the command gives up (the node's ring time is 45 s)."""


@contextlib.asynccontextmanager
async def _session(node: _Node, user: User) -> AsyncIterator[str]:
    """A session token for ``user`` while the command runs."""
    sessions = SessionService(node.db, SystemClock())
    token = await sessions.start(user.account.id, user_agent="xnode call (aiortc)")
    try:
        yield token
    finally:
        await sessions.end(token)


def _client_error() -> type[Exception]:
    from xnode.calls.client import CallClientError

    return CallClientError


async def _hold(active: ActiveCall, seconds: float) -> None:
    """Keep the call up ``seconds`` (less if the other side hangs up)."""
    await active.wait_media(frames=1, timeout_s=seconds)
    await active.wait_ended(seconds)


async def _wait_rtt(active: ActiveCall, timeout_s: float = 5.0) -> None:
    """Wait a little for a round-trip time (RTCP receiver reports come about once a second)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline and active.end_reason is None:
        if (await active.report()).rtt_ms is not None:
            return
        await asyncio.sleep(0.2)


def _same_person(wanted: str, acct: str, domain: str) -> bool:
    """Whether a caller's ``acct`` is the handle asked for (``@bob`` means bob here, not a
    bob on another server; ``bob@<this domain>`` is bob here too)."""

    def full(handle: str) -> str:
        handle = handle.strip().lstrip("@").lower()
        return handle if "@" in handle else f"{handle}@{domain.lower()}"

    return full(wanted) == full(acct)


# --- xnode call --------------------------------------------------------------------------


@click.command("call")
@click.argument("handle", required=False)
@_data_option
@click.option("--as", "name", required=True, help="The local user who calls (or answers).")
@click.option("--video", is_flag=True, help="A video call (moving frames), not audio only.")
@click.option("--relay", is_flag=True, help="Relay only: media through the node's TURN relay.")
@click.option("--seconds", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="How long to keep the call up once connected.")  # fmt: skip
@click.option("--answer", is_flag=True,
              help="Wait for a call (from HANDLE, if given) and answer it, instead of calling.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="With --answer: how long to wait for a call.")  # fmt: skip
@click.option("--file", "media_file", help="Send this audio/video file instead of a tone and "
              "moving frames (anything ffmpeg reads).")  # fmt: skip
def call_command(
    handle: str | None, data_dir: Path, name: str, video: bool, relay: bool, seconds: float,
    answer: bool, wait_s: float, media_file: str | None,
) -> None:
    """Call HANDLE as the local user NAME (or answer a call with --answer), from Python.

    Sends a tone (and moving frames with --video), then prints the frames received both
    ways, the candidate pair, the round-trip time and the verification code. Exits with
    1 if the call did not connect or no media came.
    """
    if not answer and not handle:
        raise click.UsageError("name whom to call (HANDLE), or wait for a call with --answer")

    async def action(node: _Node) -> bool:
        from xnode.calls.client import CallClient, CallClientError
        from xnode.calls.client_media import MediaSource

        user = await node.accounts.require_user_by_name(name)
        async with _session(node, user) as token:
            client = CallClient(MediaSource(media_file))
            await client.connect(node.settings.base_url, session_token=token)
            try:
                if answer:
                    active = await _answer_one(client, handle, node, video, relay, wait_s)
                else:
                    active = await client.place(handle or "", video=video, relay=relay)
                    click.echo(f"calling {handle} (call {active.call})…")
                if not await active.wait_connected(RING_WAIT_S):
                    await active.hangup()
                    raise CallClientError(f"the call ended: {active.end_reason or 'no answer'}")
                click.echo("connected")
                await _hold(active, seconds)
                await _wait_rtt(active)
                report = await active.hangup()
            finally:
                await client.close()
        for line in report.lines():
            click.echo(line)
        return report.audio_frames_received > 0

    try:
        flowed = _with_node(data_dir, action)
    except _client_error() as exc:
        raise click.ClickException(str(exc)) from None
    if not flowed:
        raise click.ClickException("no media came from the other side")


async def _answer_one(
    client: CallClient, handle: str | None, node: _Node, video: bool, relay: bool, wait_s: float
) -> ActiveCall:
    """Wait for a call (from ``handle``, declining others) and answer it."""
    from xnode.calls.client import CallClientError

    click.echo("waiting for a call…")
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            incoming = await asyncio.wait_for(client.incoming.get(), max(left, 0.01))
        except TimeoutError:
            raise CallClientError(f"no call came within {wait_s:g} s") from None
        if handle and not _same_person(handle, incoming.caller, node.settings.domain):
            click.echo(f"declining a call from @{incoming.caller}")
            await client.decline(incoming)
            continue
        click.echo(f"answering @{incoming.caller} (call {incoming.call})")
        return await client.answer(incoming, video=video, relay=relay)


# --- xnode calls selftest ----------------------------------------------------------------


@click.group("calls")
def calls_group() -> None:
    """Calls: check that they work on this node."""


async def _selftest_user(node: _Node, name: str) -> User:
    try:
        return await node.accounts.require_user_by_name(name)
    except NotFound:
        click.echo(f"creating the throwaway user {name}")
        return await node.accounts.create_user(name, secrets.token_urlsafe(24))


@calls_group.command("selftest")
@_data_option
@click.option("--seconds", type=click.FloatRange(min=0.5), default=3.0, show_default=True,
              help="How long the test call lasts once media flow.")  # fmt: skip
@click.option("--audio-only", is_flag=True, help="An audio call (video by default).")
def selftest(data_dir: Path, seconds: float, audio_only: bool) -> None:
    """Call between two throwaway users through this node's own relay (relay forced).

    Prints whether media flowed both ways, the candidate types used and the round-trip
    time; exits with 1 if media did not flow. The node must be running, with its relay.
    """

    async def action(node: _Node) -> bool:
        from xnode.calls.client import CallClient
        from xnode.calls.service import CallService
        from xnode.live.hub import LiveHub

        caller = await _selftest_user(node, SELFTEST_CALLER)
        callee = await _selftest_user(node, SELFTEST_CALLEE)
        calls = CallService(node.db, SystemClock(), LiveHub(), base_url=node.settings.base_url,
                            domain=node.settings.domain)  # fmt: skip
        await calls.set_policy(callee.account.id, "everyone", True)
        async with _session(node, caller) as a_token, _session(node, callee) as b_token:
            a, b = CallClient(), CallClient(auto_answer=True, relay=True)
            try:
                await b.connect(node.settings.base_url, session_token=b_token)
                await a.connect(node.settings.base_url, session_token=a_token)
                return await _selftest_call(a, b, not audio_only, seconds)
            finally:
                await a.close()
                await b.close()

    try:
        flowed = _with_node(data_dir, action)
    except _client_error() as exc:
        raise click.ClickException(str(exc)) from None
    if not flowed:
        raise click.ClickException(
            "media did not flow both ways through the relay. See its refusals and drops on"
            " Admin → Federation: 'forbidden_peer' means the relay refuses peers on its own"
            " address, and both test clients' relayed addresses are on it (only nodes with"
            " allow_private_addresses relay between two of their own allocations)"
        )


async def _selftest_call(a: CallClient, b: CallClient, video: bool, seconds: float) -> bool:
    """One relayed call from ``a`` to ``b``; prints both sides' reports; whether media flowed."""
    placed = await a.place(f"@{SELFTEST_CALLEE}", video=video, relay=True)
    try:
        answered = await asyncio.wait_for(b.answered.get(), 15)
    except TimeoutError:
        reason = placed.end_reason or "no answer"
        await placed.hangup()
        click.echo(f"the call did not ring through: {reason}", err=True)
        return False
    connected = await placed.wait_connected(20) and await answered.wait_connected(5)
    if connected:
        await placed.wait_media(frames=10, timeout_s=10)
        await answered.wait_media(frames=10, timeout_s=10)
        await placed.wait_ended(seconds)
        await _wait_rtt(placed)
    mine, theirs = await placed.report(), await answered.report()
    await placed.hangup()
    kinds = ["audio_frames_received"] + (["video_frames_received"] if video else [])
    flowed = connected and all(getattr(r, k) > 0 for r in (mine, theirs) for k in kinds)
    click.echo(f"media flowed both ways: {'yes' if flowed else 'no'}")
    for report in (mine, theirs):
        for line in report.lines():
            click.echo(line)
    if mine.verification_code and theirs.verification_code:
        same = mine.verification_code == theirs.verification_code
        click.echo(f"verification codes match: {'yes' if same else 'NO'}")
    return flowed


# --- xnode calls relay ---------------------------------------------------------------------


@calls_group.command("relay")
@_data_option
def relay_status(data_dir: Path) -> None:
    """The call relay's state and counters, as the running node last recorded them."""
    import time

    from xnode.calls.ice import last_report

    async def action(node: _Node) -> tuple[dict[str, Any], float] | None:
        return await last_report(node.db)

    found = _with_node(data_dir, action)
    if found is None:
        raise click.ClickException("no relay report yet: has `xnode serve` run on this node?")
    report, written_at = found
    click.echo(f"relay: {report.get('status', 'unknown')}")
    # Recorded when it changes (checked every 30 s): older means nothing moved since.
    click.echo(f"  (last changed {max(0, int(time.time() - written_at))} s ago)")
    counters = report.get("counters")
    if isinstance(counters, dict):
        for key, value in counters.items():
            if isinstance(value, dict):
                shown = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
                click.echo(f"  {key}: {shown}")
            else:
                click.echo(f"  {key}: {value}")


def register(main: click.Group) -> None:
    """Add ``xnode call`` and ``xnode calls`` to the root command group."""
    main.add_command(call_command)
    main.add_command(calls_group)
