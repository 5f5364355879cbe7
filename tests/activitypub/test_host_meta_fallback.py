"""WebFinger delegated through host-meta (RFC 6415), against real loopback servers.

The handle's host answers ``/.well-known/webfinger`` with an error (or junk) and
names the real WebFinger endpoint in its ``host-meta``: another path on the same
host, or another host altogether (``user@sdf.org`` style). ``node_a`` resolves the
handle over real TCP, exactly as it would on the internet.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from conftest import Node, block_domain

from federation.keys import generate_rsa_key, public_key_of
from federation.webfinger import MAX_HOST_META_BYTES, XRD_CONTENT_TYPE, XRD_NS
from xnode.activitypub.resolver import BlockedDomain, ResolveError

JRD = "application/jrd+json"
Answer = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


@functools.cache
def public_pem() -> str:
    """One RSA key for every fake actor (generating keys is the slow part)."""
    return public_key_of(generate_rsa_key()).to_pem()


@dataclass
class FakeHost:
    """A loopback HTTP server answering from ``routes`` and recording what was asked."""

    base: str
    routes: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the host part of handles on this server."""
        return urlsplit(self.base).netloc

    def paths(self) -> list[str]:
        """The paths requested so far, in order (query strings left out)."""
        return [urlsplit(url).path for url in self.requests]

    def actor(self, username: str) -> str:
        """Serve a minimal Person at ``/users/{username}`` and return its id."""
        uri = f"{self.base}/users/{username}"
        doc = {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": uri, "type": "Person", "preferredUsername": username,
            "inbox": f"{uri}/inbox",
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public_pem()},
        }  # fmt: skip
        self.routes[f"/users/{username}"] = lambda _: web.json_response(
            doc, content_type="application/activity+json"
        )
        return uri

    def jrd(self, path: str, subject: str | None, actor_url: str) -> None:
        """Answer ``path`` with a JRD whose ``self`` link is ``actor_url``."""
        doc: dict[str, Any] = {
            "links": [{"rel": "self", "type": "application/activity+json", "href": actor_url}]
        }
        if subject is not None:
            doc["subject"] = subject
        self.routes[path] = lambda _: web.json_response(doc, content_type=JRD)

    def host_meta(self, template: str) -> None:
        """Serve an XRD host-meta whose ``lrdd`` template is ``template``."""
        self.routes["/.well-known/host-meta"] = lambda _: web.Response(
            text=xrd(template), content_type=XRD_CONTENT_TYPE
        )


def xrd(template: str) -> str:
    """A host-meta XRD document naming ``template``."""
    escaped = template.replace("&", "&amp;").replace('"', "&quot;")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<XRD xmlns="{XRD_NS}">\n'
        f'  <Link rel="lrdd" type="{XRD_CONTENT_TYPE}" template="{escaped}"/>\n</XRD>\n'
    )


@pytest.fixture
def fake_host(aiohttp_server: Any) -> Callable[[], Awaitable[FakeHost]]:
    """Start fake hosts on loopback: ``host = await fake_host()``; unknown paths 404."""

    async def start() -> FakeHost:
        holder: list[FakeHost] = []

        async def serve(request: web.Request) -> web.StreamResponse:
            fake = holder[0]
            fake.requests.append(str(request.rel_url))
            answer = fake.routes.get(request.path)
            if answer is None:
                raise web.HTTPNotFound()
            result = answer(request)
            return await result if isinstance(result, Awaitable) else result

        app = web.Application()
        app.router.add_get("/{path:.*}", serve)
        server = await aiohttp_server(app, host="127.0.0.1")
        holder.append(FakeHost(f"http://127.0.0.1:{server.port}"))
        return holder[0]

    return start


def resource_of(request_url: str) -> str:
    """The ``resource`` parameter of a recorded WebFinger request."""
    return parse_qs(urlsplit(request_url).query)["resource"][0]


# --- delegation that works ----------------------------------------------------------------


def _status(code: int) -> Answer:
    return lambda _: web.Response(status=code, text="nope")


# Each way a host says "not here": the fallback must kick in for all of them.
NOT_HERE: dict[str, Answer] = {
    "404": _status(404),
    "410": _status(410),
    "400": _status(400),
    "html-200": lambda _: web.Response(
        text="<html><body>app</body></html>", content_type="text/html"
    ),
    "empty-jrd": lambda _: web.json_response({}, content_type=JRD),
    "not-json": lambda _: web.Response(text="{nope", content_type=JRD),
}


@pytest.mark.parametrize("failure", list(NOT_HERE), ids=list(NOT_HERE))
async def test_template_on_the_same_host_is_used_when_webfinger_fails(
    node_a: Node, fake_host: Any, failure: str
):
    host = await fake_host()
    host.routes["/.well-known/webfinger"] = NOT_HERE[failure]
    host.host_meta(f"{host.base}/wf/lookup?resource={{uri}}")
    actor = host.actor("dan")
    host.jrd("/wf/lookup", f"acct:dan@{host.host}", actor)

    account = await node_a.resolver.actor_by_handle(f"@dan@{host.host}")

    assert account.uri == actor and not account.is_local
    assert account.acct == f"dan@{host.host}"
    assert host.paths() == [
        "/.well-known/webfinger", "/.well-known/host-meta", "/wf/lookup", "/users/dan",
    ]
    # The template's {uri} was filled with the acct: URI.
    assert resource_of(host.requests[2]) == f"acct:dan@{host.host}"


@pytest.mark.parametrize("subject_on", ["delegate", "handle-host", "none"])
async def test_webfinger_delegated_to_another_host(
    node_a: Node, fake_host: Any, subject_on: str
):
    """``dan@front`` whose WebFinger lives on ``back`` (the sdf.org set-up).

    The delegate may name the account on its own host (``dan@back``), on the
    delegating host (Mastodon with LOCAL_DOMAIN/WEB_DOMAIN), or not at all.
    """
    front, back = await fake_host(), await fake_host()
    front.host_meta(f"{back.base}/.well-known/webfinger?resource={{uri}}")
    actor = back.actor("dan")
    subject = {"delegate": f"acct:dan@{back.host}", "handle-host": f"acct:dan@{front.host}",
               "none": None}[subject_on]  # fmt: skip
    back.jrd("/.well-known/webfinger", subject, actor)

    account = await node_a.resolver.actor_by_handle(f"dan@{front.host}")

    assert account.uri == actor
    # Stored under the actor's own host: the delegation impersonates nobody.
    assert account.acct == f"dan@{back.host}"
    assert front.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]
    assert back.paths() == ["/.well-known/webfinger", "/users/dan"]
    assert resource_of(back.requests[0]) == f"acct:dan@{front.host}"


async def test_json_host_meta_is_understood(node_a: Node, fake_host: Any):
    host = await fake_host()
    template = f"{host.base}/wf?resource={{uri}}"
    host.routes["/.well-known/host-meta"] = lambda _: web.json_response(
        {"links": [{"rel": "lrdd", "template": template}]}
    )
    actor = host.actor("dan")
    host.jrd("/wf", f"acct:dan@{host.host}", actor)
    assert (await node_a.resolver.actor_by_handle(f"dan@{host.host}")).uri == actor


async def test_working_webfinger_never_asks_for_host_meta(node_a: Node, fake_host: Any):
    host = await fake_host()
    actor = host.actor("dan")
    host.jrd("/.well-known/webfinger", f"acct:dan@{host.host}", actor)
    host.host_meta(f"{host.base}/elsewhere?resource={{uri}}")
    assert (await node_a.resolver.actor_by_handle(f"dan@{host.host}")).uri == actor
    assert host.paths() == ["/.well-known/webfinger", "/users/dan"]


# --- delegation that must fail cleanly ------------------------------------------------------


async def test_no_host_meta_either_is_a_clear_resolve_error(node_a: Node, fake_host: Any):
    host = await fake_host()  # 404 for everything

    with pytest.raises(ResolveError) as caught:
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")

    message = str(caught.value)
    assert f"dan@{host.host}" in message and "host-meta" in message and "404" in message
    assert caught.value.status == 404
    assert host.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]


BAD_HOST_META: dict[str, Answer] = {
    "html": lambda _: web.Response(text="<html><body>hi</body></html>", content_type="text/html"),
    "no-lrdd": lambda _: web.Response(
        text=f'<XRD xmlns="{XRD_NS}"><Link rel="other" template="x{{uri}}"/></XRD>',
        content_type=XRD_CONTENT_TYPE,
    ),
    "dtd": lambda _: web.Response(
        text='<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><XRD>&a;</XRD>',
        content_type=XRD_CONTENT_TYPE,
    ),
    "too-large": lambda _: web.Response(
        text=xrd("http://127.0.0.1:1/wf?resource={uri}") + " " * MAX_HOST_META_BYTES,
        content_type=XRD_CONTENT_TYPE,
    ),
    "server-error": _status(500),
}


@pytest.mark.parametrize("kind", list(BAD_HOST_META), ids=list(BAD_HOST_META))
async def test_unusable_host_meta_is_a_resolve_error(node_a: Node, fake_host: Any, kind: str):
    host = await fake_host()
    host.routes["/.well-known/host-meta"] = BAD_HOST_META[kind]
    with pytest.raises(ResolveError, match="host-meta"):
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")
    assert host.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]


async def test_host_meta_naming_the_failed_endpoint_is_not_retried(node_a: Node, fake_host: Any):
    """Our own host-meta shape: the template is the default query, spelled differently."""
    host = await fake_host()
    host.host_meta(f"{host.base}/.well-known/webfinger?resource={{uri}}")
    with pytest.raises(ResolveError, match="404"):
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")
    assert host.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]


async def test_only_one_fallback(node_a: Node, fake_host: Any):
    """A delegate that fails is not asked for its own host-meta: no chains, no loops."""
    front, back = await fake_host(), await fake_host()
    front.host_meta(f"{back.base}/wf?resource={{uri}}")
    back.host_meta(f"{front.base}/wf?resource={{uri}}")
    with pytest.raises(ResolveError, match="template") as caught:
        await node_a.resolver.actor_by_handle(f"dan@{front.host}")
    assert "404" in str(caught.value)
    assert front.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]
    assert back.paths() == ["/wf"]


async def test_delegate_cannot_vouch_for_a_third_host(node_a: Node, fake_host: Any):
    front, back = await fake_host(), await fake_host()
    front.host_meta(f"{back.base}/wf?resource={{uri}}")
    back.jrd("/wf", "acct:dan@elsewhere.example", back.actor("dan"))
    with pytest.raises(ResolveError, match="not vouched"):
        await node_a.resolver.actor_by_handle(f"dan@{front.host}")
    assert back.paths() == ["/wf"]  # the actor is never fetched


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_server_trouble_does_not_trigger_host_meta(
    node_a: Node, fake_host: Any, status: int
):
    host = await fake_host()
    host.routes["/.well-known/webfinger"] = _status(status)
    host.host_meta(f"{host.base}/wf?resource={{uri}}")
    with pytest.raises(ResolveError, match=str(status)):
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")
    assert host.paths() == ["/.well-known/webfinger"]


@pytest.mark.parametrize(
    "template",
    [
        "ftp://127.0.0.1/wf?resource={uri}",
        "http://user:pw@127.0.0.1:1/wf?resource={uri}",
        "/relative/wf?resource={uri}",
    ],
)
async def test_unusable_template_is_refused(node_a: Node, fake_host: Any, template: str):
    host = await fake_host()
    # The JSON form: parse_host_meta checks less there, so the resolver must.
    host.routes["/.well-known/host-meta"] = lambda _: web.Response(
        text=json.dumps({"links": [{"rel": "lrdd", "template": template}]}), content_type=JRD
    )
    with pytest.raises(ResolveError, match="template"):
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")
    assert host.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]


async def test_delegate_on_a_suspended_domain_is_refused(node_a: Node, fake_host: Any):
    host = await fake_host()
    # "localhost" is not the fake host's own name (127.0.0.1), so only the delegate is blocked.
    host.host_meta("http://localhost:1/wf?resource={uri}")
    await block_domain(node_a, "localhost")
    with pytest.raises(BlockedDomain):
        await node_a.resolver.actor_by_handle(f"dan@{host.host}")
    assert host.paths() == ["/.well-known/webfinger", "/.well-known/host-meta"]
