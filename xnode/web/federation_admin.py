"""Admin page for federation: domain blocks and the delivery queue per host.

Everything here works from the database, so the page is useful even when the
delivery worker is not wired in (``delivery.DELIVERY`` unset); when it is, a Retry also
wakes the worker at once instead of at its next look.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from xnode.activitypub.delivery import DELIVERY
from xnode.errors import XnodeError
from xnode.federation_admin import MAX_REASON_CHARS, FederationAdmin
from xnode.web.forms import read_form, require_admin, text_field
from xnode.web.render import RENDERER, redirect
from xnode.web.state import CALL_RELAY, CLOCK, DB

FEDERATION_PATH = "/admin/federation"

SEVERITY_HELP = {
    "suspend": "No contact at all: nothing is delivered there and nothing from there is "
    "accepted. Queued deliveries are cancelled.",
    "silence": "Federation continues, but posts from there stay out of the public timelines.",
}


def _admin(request: web.Request) -> FederationAdmin:
    # Two references, nothing to keep between requests: built where it is used, as the
    # NodeInfo handler builds its InstanceService.
    return FederationAdmin(request.app[DB], request.app[CLOCK])


async def _page(
    request: web.Request, *, error: str | None = None, form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    overview = await _admin(request).overview()
    context: dict[str, Any] = {
        "admin_section": "federation",
        "blocks": overview.blocks,
        "hosts": overview.hosts,
        "helpers": overview.helpers,
        "helpers_gone": overview.helpers_gone,
        "outbox_failed": overview.outbox_failed,
        "relay_status": request.app[CALL_RELAY].status,
        "relay": request.app[CALL_RELAY].counters(),
        "severities": list(SEVERITY_HELP.items()),
        "now": request.app[CLOCK].now(),
        "error": error,
        "form": form or {"domain": "", "severity": "suspend", "reason": ""},
    }
    return request.app[RENDERER].render(request, "admin_federation.html", context, status=status)


async def federation_page(request: web.Request) -> web.Response:
    """Domain blocks with a form to add one, and the delivery queue per host."""
    require_admin(request)
    return await _page(request)


async def block_submit(request: web.Request) -> web.Response:
    """Block a domain (or change an existing block)."""
    require_admin(request)
    form = await read_form(request)
    values = {
        "domain": text_field(form, "domain", max_length=300).strip(),
        "severity": text_field(form, "severity", max_length=20).strip(),
        "reason": text_field(form, "reason", max_length=MAX_REASON_CHARS * 2),
    }
    try:
        block, cancelled = await _admin(request).block(
            values["domain"], values["severity"], values["reason"]
        )
    except XnodeError as exc:
        return await _page(request, error=exc.message, form=values, status=exc.status)
    message = f"{block.domain} is now {'suspended' if block.severity == 'suspend' else 'silenced'}."
    if cancelled:
        message += f" {cancelled} queued deliveries were cancelled."
    raise redirect(request, FEDERATION_PATH, message, "success")


async def unblock_submit(request: web.Request) -> web.Response:
    """Lift a domain block."""
    require_admin(request)
    form = await read_form(request)
    domain = text_field(form, "domain", max_length=300).strip()
    try:
        removed = await _admin(request).unblock(domain)
    except XnodeError as exc:
        raise redirect(request, FEDERATION_PATH, exc.message, "error") from None
    if not removed:
        raise redirect(request, FEDERATION_PATH, f"{domain} was not blocked.", "error")
    raise redirect(request, FEDERATION_PATH, f"Lifted the block on {domain}.", "success")


async def retry_submit(request: web.Request) -> web.Response:
    """Retry a host's pending and failed deliveries now."""
    require_admin(request)
    form = await read_form(request)
    host = text_field(form, "host", max_length=300).strip().lower()
    if not host:
        raise redirect(request, FEDERATION_PATH, "Choose a server to retry.", "error")
    reset = await _admin(request).retry_host(host, request.app.get(DELIVERY))
    if not reset:
        raise redirect(request, FEDERATION_PATH, f"Nothing to retry for {host}.", "error")
    raise redirect(
        request, FEDERATION_PATH, f"Retrying {reset} deliveries to {host} now.", "success"
    )


def add_routes(app: web.Application) -> None:
    """Register the federation admin routes."""
    app.router.add_get(FEDERATION_PATH, federation_page, name="admin-federation")
    app.router.add_post(f"{FEDERATION_PATH}/blocks", block_submit)
    app.router.add_post(f"{FEDERATION_PATH}/unblock", unblock_submit)
    app.router.add_post(f"{FEDERATION_PATH}/retry", retry_submit)
