"""Call settings (who may call, always relay). The calls themselves run over the live
socket (``xnode/calls/service.py``, ``templates/static/calls.js``)."""

from __future__ import annotations

from aiohttp import web

from xnode.errors import XnodeError
from xnode.web.forms import read_form, require_user, text_field
from xnode.web.render import redirect
from xnode.web.state import CALLS

_MAX_SMALL_FIELD = 100


async def settings_submit(request: web.Request) -> web.Response:
    """Save who may call the user, and whether their calls always go through the relay."""
    user = require_user(request)
    form = await read_form(request)
    try:
        policy = text_field(form, "call_policy", max_length=_MAX_SMALL_FIELD)
        always_relay = text_field(form, "always_relay", max_length=_MAX_SMALL_FIELD) == "1"
        await request.app[CALLS].set_policy(user.id, policy, always_relay)
    except XnodeError as exc:
        raise redirect(request, "/settings/account", exc.message, "error") from None
    raise redirect(request, "/settings/account", "Your call settings are saved.", "success")


def add_routes(app: web.Application) -> None:
    """Register the call settings form."""
    app.router.add_post("/settings/calls", settings_submit)
