"""Typed application keys for the federation services (kept apart to avoid import cycles)."""

from __future__ import annotations

from aiohttp import web

from xnode.activitypub.call_signals import CallSignals
from xnode.activitypub.keys import KeyRing
from xnode.activitypub.resolver import Resolver
from xnode.activitypub.serialize import Serializer
from xnode.activitypub.urls import Urls

URLS = web.AppKey("ap_urls", Urls)
KEYRING = web.AppKey("ap_keyring", KeyRing)
SERIALIZER = web.AppKey("ap_serializer", Serializer)
RESOLVER = web.AppKey("ap_resolver", Resolver)
CALL_SIGNALS = web.AppKey("ap_call_signals", CallSignals)
