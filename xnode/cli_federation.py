"""``xnode federation …``: look up remote accounts, watch the delivery queue, block servers.

Registered on the root group by :mod:`xnode.cli`.
"""

from __future__ import annotations

from pathlib import Path

import click

from xnode.cli_support import _data_option, _echo_table, _Node, _when, _with_node
from xnode.clock import SystemClock
from xnode.federation_admin import FederationAdmin

# Imports from xnode.activitypub stay inside the commands: they pull in aiohttp
# and the protocol library, which the other commands do not need.


def _admin(node: _Node) -> FederationAdmin:
    """The same service the admin web pages use, so a block from the CLI is the same block."""
    return FederationAdmin(node.db, SystemClock())


@click.group()
def federation() -> None:
    """Look up remote accounts, watch the delivery queue, block servers."""


@federation.command("lookup")
@click.argument("handle")
@_data_option
def federation_lookup(data_dir: Path, handle: str) -> None:
    """Find the account HANDLE (@user@host) through WebFinger, store it and show it."""
    from xnode.accounts.models import Account

    async def action(node: _Node) -> Account:
        from xnode.activitypub.delivery import fetch_settings_for
        from xnode.activitypub.keys import KeyRing
        from xnode.activitypub.resolver import Resolver
        from xnode.activitypub.urls import Urls

        clock, urls = SystemClock(), Urls(node.settings.base_url)
        resolver = Resolver(
            node.db, node.settings, clock, urls, KeyRing(node.db, urls, clock),
            fetch_settings_for(node.settings),
        )
        try:
            return await resolver.actor_by_handle(handle)
        finally:
            await resolver.close()

    found: Account = _with_node(data_dir, action)
    rows = [
        ("handle", f"@{found.acct}"),
        ("name", found.display_name),
        ("type", found.actor_type),
        ("id", found.uri or "(local)"),
        ("inbox", found.inbox_url or "-"),
        ("shared inbox", found.shared_inbox_url or "-"),
        ("locked", "yes" if found.locked else "no"),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':14}{value}")


@federation.command("queue")
@_data_option
def federation_queue(data_dir: Path) -> None:
    """Show deliveries still pending or failed, per server."""
    hosts = _with_node(data_dir, lambda node: _admin(node).delivery_queue())
    if not hosts:
        click.echo("Nothing is waiting to be delivered.")
        return
    now = SystemClock().now()
    rows = [
        (
            h.host,
            str(h.pending),
            str(h.failed),
            f"paused until {_when(h.circuit_open_until)}"
            if h.circuit_open_until and h.circuit_open_until > now
            else f"{h.consecutive_failures} failures" if h.consecutive_failures else "ok",
            (h.last_error or "")[:60],
        )
        for h in hosts
    ]
    _echo_table(("HOST", "PENDING", "FAILED", "HEALTH", "LAST ERROR"), rows)


@federation.command("retry")
@click.argument("host")
@_data_option
def federation_retry(data_dir: Path, host: str) -> None:
    """Retry HOST's pending and failed deliveries now (the running server picks them up)."""
    host = host.strip().lower()
    # No delivery queue in this process: the rows are made due and the serving node's
    # worker sends them on its next look.
    reset = _with_node(data_dir, lambda node: _admin(node).retry_host(host, None))
    if not reset:
        raise click.ClickException(f"no pending or failed deliveries for {host}")
    click.echo(f"{reset} deliveries to {host} are due now; a running server sends them "
               "within a minute.")


@federation.command("block")
@click.argument("domain")
@_data_option
@click.option("--severity", type=click.Choice(("suspend", "silence")), default="suspend",
              show_default=True, help="suspend: no contact at all; silence: keep out of the "
              "public timelines.")
@click.option("--reason", default="", help="A note for the admins.")
def federation_block(data_dir: Path, domain: str, severity: str, reason: str) -> None:
    """Block DOMAIN and its subdomains (or change an existing block)."""
    block, cancelled = _with_node(
        data_dir, lambda node: _admin(node).block(domain, severity, reason)
    )
    click.echo(f"Blocked {block.domain} ({block.severity}).")
    if cancelled:
        click.echo(f"Cancelled {cancelled} queued deliveries.")


@federation.command("unblock")
@click.argument("domain")
@_data_option
def federation_unblock(data_dir: Path, domain: str) -> None:
    """Lift the block on DOMAIN."""
    if not _with_node(data_dir, lambda node: _admin(node).unblock(domain)):
        raise click.ClickException(f"{domain} is not blocked")
    click.echo(f"Lifted the block on {domain}.")


@federation.command("blocks")
@_data_option
def federation_blocks(data_dir: Path) -> None:
    """List blocked domains."""
    blocks = _with_node(data_dir, lambda node: _admin(node).blocks())
    if not blocks:
        click.echo("No servers are blocked.")
        return
    rows = [(b.domain, b.severity, _when(b.created_at), b.reason[:60]) for b in blocks]
    _echo_table(("DOMAIN", "SEVERITY", "SINCE (UTC)", "REASON"), rows)
