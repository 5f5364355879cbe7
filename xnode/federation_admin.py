"""What an admin sees and does about federation: domain blocks, the delivery queue per
host, the helper processes, outbox entries given up on.

The admin page (``xnode/web/federation_admin.py``) and the ``xnode federation`` and
``xnode check`` commands call this rather than the store modules, as every handler
calls a service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xnode.clock import Clock
from xnode.store import deliveries as delivery_store
from xnode.store import domain_blocks
from xnode.store import helper_processes as helper_store
from xnode.store import outbox as outbox_store
from xnode.store.database import Database
from xnode.store.helper_processes import HelperState

if TYPE_CHECKING:
    from xnode.activitypub.delivery import DeliveryQueue

# How long a block's reason may be (forms allow for what trimming will remove).
MAX_REASON_CHARS = domain_blocks.MAX_REASON_CHARS


__all__ = ["FederationAdmin", "FederationOverview", "HelperState"]


@dataclass(frozen=True)
class FederationOverview:
    """Everything the federation admin page lists."""

    blocks: list[domain_blocks.DomainBlock]
    hosts: list[delivery_store.HostSummary]
    helpers: list[HelperState]
    helpers_gone: frozenset[str]
    """The serving processes (``HelperState.process``) not heard of lately: their helpers'
    rows say what was, not what is."""
    outbox_failed: list[outbox_store.OutboxEntry]


class FederationAdmin:
    """Domain blocks and the delivery queue, for admins."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def overview(self) -> FederationOverview:
        """Blocks, hosts with queued or failed deliveries, helpers, failed outbox entries."""
        helpers = await helper_store.all_states(self.db)
        # Wall time, as the states are written with: not the node's (injectable) clock.
        now = time.time()
        return FederationOverview(
            blocks=await domain_blocks.list_blocks(self.db),
            hosts=await delivery_store.queue_summary(self.db),
            helpers=helpers,
            helpers_gone=frozenset(h.process for h in helpers if h.gone(now)),
            outbox_failed=await outbox_store.failed(self.db),
        )

    async def delivery_queue(self) -> list[delivery_store.HostSummary]:
        """Hosts with deliveries still pending or failed, and their health."""
        return await delivery_store.queue_summary(self.db)

    async def blocks(self) -> list[domain_blocks.DomainBlock]:
        """Every blocked domain, alphabetically."""
        return await domain_blocks.list_blocks(self.db)

    async def helper_states(self) -> list[HelperState]:
        """What every serving process last reported of its helper processes."""
        return await helper_store.all_states(self.db)

    async def outbox_counts(self) -> dict[str, int]:
        """Outgoing changes not yet turned into deliveries, per state."""
        return await outbox_store.counts(self.db)

    async def helpers_in_trouble(self) -> list[HelperState]:
        """Helper processes that keep crashing (the admin pages' alert), of serving
        processes still running: one that is gone leaves its helpers' last states behind
        (the federation page shows them), which are no longer anyone's trouble."""
        now = time.time()
        return [
            h for h in await helper_store.all_states(self.db) if h.in_trouble and not h.gone(now)
        ]

    async def block(
        self, domain: str, severity: str, reason: str
    ) -> tuple[domain_blocks.DomainBlock, int]:
        """Block a domain (or change an existing block); returns the block and how many
        queued deliveries were cancelled.

        Raises:
            InvalidInput: not a domain, an unknown severity, or a reason too long.
        """
        return await domain_blocks.add_block(self.db, domain, severity, reason, self.clock.now())

    async def unblock(self, domain: str) -> bool:
        """Lift the block on a domain; False if there was none.

        Raises:
            InvalidInput: not a domain.
        """
        return await domain_blocks.remove_block(self.db, domain)

    async def retry_host(self, host: str, queue: DeliveryQueue | None) -> int:
        """Make a host's pending and failed deliveries due now; how many there were.

        With the delivery queue wired in it does this (and wakes its worker at once);
        without it the rows are reset and wait for the worker's next look.
        """
        if queue is not None:
            return await queue.retry_host(host)
        return await delivery_store.retry_host(self.db, host, self.clock.now())
