"""Hostile encodings and shapes, wherever remote JSON is read: a clean refusal, never a 500.

The inbox takes UTF-8 JSON only (RFC 8259 §8.1); UTF-16/32 bodies (which
Python's parser would guess), encoded or escaped lone surrogates, NaN and
infinite or oversized numbers, absurd nesting and wrong types are refused
before anything is stored. The same bodies served to the node's fetches
(actors, posts, any activity or collection, WebFinger, NodeInfo) end in the
documented error of each reader, never in another exception.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Node, activity, note, post_activity

from federation.http import FetchError
from federation.jsonld import DocumentTooComplex, InvalidJson, parse_json
from federation.nodeinfo import NodeInfoError, parse_nodeinfo, parse_well_known
from federation.objects import InvalidObject, parse_collection
from xnode.activitypub.handlers import Refused
from xnode.activitypub.inbox import _stored_activity
from xnode.activitypub.keys import SigningKey
from xnode.activitypub.resolver import ResolveError

GOOD_TEXT = '{"a": "caf\\u00e9 \\ud83d\\ude00", "n": 1.5, "i": 9007199254740993}'


def hostile_encodings(valid: dict[str, Any]) -> dict[str, bytes]:
    """A valid document, re-encoded or escaped in every way ActivityPub does not allow."""
    text = json.dumps(valid)
    utf8 = text.encode()
    with_surrogate = {**valid, "id": f"{valid.get('id', '')}\ud800"}
    return {
        "utf-16 with BOM": text.encode("utf-16"),
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
        "utf-32": text.encode("utf-32"),
        "utf-8 BOM": codecs.BOM_UTF8 + utf8,
        "utf-8 encoded surrogate": utf8.replace(b'"}', b'\xed\xa0\x80"}', 1)
        if utf8.endswith(b'"}') else utf8[:-1] + b', "x": "\xed\xa0\x80"}',
        "latin-1": utf8[:-1] + b', "x": "caf\xe9"}',
        "escaped lone surrogate in id": json.dumps(with_surrogate).encode(),
        "escaped lone low surrogate": utf8[:-1] + b', "name": "x\\udc00y"}',
        "escaped lone surrogate in a key": utf8[:-1] + b', "\\ud83d": 1}',
        "reversed surrogate pair": utf8[:-1] + b', "name": "\\ude00\\ud83d"}',
        "NaN": utf8[:-1] + b', "x": NaN}',
        "Infinity": utf8[:-1] + b', "x": -Infinity}',
        "float out of range": utf8[:-1] + b', "x": 1e999}',
        "huge integer": utf8[:-1] + b', "x": ' + b"9" * 40 + b"}",
        "integer of 5000 digits": utf8[:-1] + b', "x": ' + b"1" * 5000 + b"}",
        "nested 200 deep": utf8[:-1] + b', "x": ' + b"[" * 200 + b"]" * 200 + b"}",
        "nested 100000 deep": b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "not JSON": b"<html>hello</html>",
        "empty": b"",
        "truncated": utf8[: len(utf8) // 2],
    }


WRONG_VALUES: list[Any] = [None, 5, -1.5, True, "", "x", [], [5], {}, {"id": 5}, [[[]]]]


def wrong_types(valid: dict[str, Any]) -> dict[str, bytes]:
    """The document with each top-level value replaced by each wrong value, and not an object."""
    cases = {f"document is {v!r}": json.dumps(v).encode() for v in WRONG_VALUES}
    for key in valid:
        for n, wrong in enumerate(WRONG_VALUES):
            cases[f"{key} = {wrong!r} ({n})"] = json.dumps({**valid, key: wrong}).encode()
    return cases


# --- the strict parser itself ------------------------------------------------------------


def test_good_text_still_parses():
    doc = parse_json(GOOD_TEXT.encode())
    assert doc == {"a": "café 😀", "n": 1.5, "i": 9007199254740993}


@pytest.mark.parametrize("case", sorted(hostile_encodings({"id": "https://x.example/1"})))
def test_the_parser_refuses_each_hostile_encoding(case):
    body = hostile_encodings({"id": "https://x.example/1"})[case]
    with pytest.raises((InvalidJson, DocumentTooComplex)):
        parse_json(body)


def test_a_queued_row_that_cannot_be_parsed_is_refused_not_retried():
    with pytest.raises(Refused):
        _stored_activity('{"id": "\\ud800"}')
    with pytest.raises(Refused):
        _stored_activity("[1, 2]")


# --- the inbox ---------------------------------------------------------------------------


@pytest.fixture
async def bob(node_a: Node, node_b: Node) -> SigningKey:
    """bob@b's signing key: every hostile body below is signed, so the refusal is the body's."""
    return await node_b.key(await node_b.user("bob"))


async def test_hostile_inbox_bodies_are_400_and_nothing_is_stored(node_a, node_b, bob):
    alice = await node_a.user("alice")
    valid = activity("Follow", node_b.actor("bob"), node_a.actor(alice.username))
    assert (await post_activity(node_a, valid, bob)).status == 202  # the shape is fine
    before = await node_a.db.fetchvalue("SELECT count(*) FROM inbox_queue")
    answers = {}
    for case, body in hostile_encodings(valid).items():
        response = await post_activity(node_a, body, bob)
        answers[case] = (response.status, (await response.json())["error"])
    assert {case: status for case, (status, _) in answers.items() if status != 400} == {}
    assert {c: t for c, (_, t) in answers.items() if not t.startswith("Not an activity:")} == {}
    assert await node_a.db.fetchvalue("SELECT count(*) FROM inbox_queue") == before


async def test_wrong_types_in_a_signed_activity_never_answer_500(node_a, node_b, bob):
    alice = await node_a.user("alice")
    post = note(node_b.actor("bob"), content="hi", to=[node_a.actor(alice.username)])
    valid = activity("Create", node_b.actor("bob"), post)
    statuses: dict[str, int] = {}
    for case, body in {**wrong_types(valid), **wrong_types({**valid, "object": post}),
                       **{f"object.{k}": v for k, v in wrong_types(post).items()}}.items():
        if case.startswith("object."):
            body = json.dumps({**valid, "object": json.loads(body)}).encode()
        statuses[case] = (await post_activity(node_a, body, bob)).status
    assert {c: s for c, s in statuses.items() if s >= 500} == {}
    # Whatever was accepted is handled or refused by the worker, never crashes it.
    while await node_a.process():
        pass
    states = await node_a.db.fetchall("SELECT state, last_error FROM inbox_queue")
    crashed = [row["last_error"] for row in states
               if row["last_error"] and not row["last_error"].startswith("refused")]  # fmt: skip
    assert crashed == []


# --- what the node fetches ---------------------------------------------------------------


class HostileServer:
    """Serves a different body at each path, as a misbehaving (or malicious) server would."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[bytes, str]] = {}
        self.server: TestServer | None = None
        self.counter = 0

    async def start(self) -> None:
        async def answer(request: web.Request) -> web.Response:
            key = request.query.get("resource", request.path)
            body, content_type = self.bodies.get(key, (b"{}", "application/activity+json"))
            return web.Response(body=body, headers={"Content-Type": content_type})

        app = web.Application()
        app.router.add_get("/{tail:.*}", answer)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    def serve(self, body: bytes, content_type: str = "application/activity+json") -> str:
        """A fresh URL answering ``body``."""
        self.counter += 1
        path = f"/doc/{self.counter}"
        self.bodies[path] = (body, content_type)
        return f"http://{self.host}{path}"

    def serve_jrd(self, body: bytes) -> str:
        """A fresh handle whose WebFinger answer is ``body``."""
        self.counter += 1
        handle = f"u{self.counter}@{self.host}"
        self.bodies[f"acct:{handle}"] = (body, "application/jrd+json")
        return handle


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    found = HostileServer()
    await found.start()
    yield found
    assert found.server is not None
    await found.server.close()


def _actor_doc(url: str) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams", "id": url, "type": "Person",
        "preferredUsername": "bob", "inbox": f"{url}/inbox", "outbox": f"{url}/outbox",
        "followers": f"{url}/followers", "name": "Bob",
        "publicKey": {"id": f"{url}#main-key", "owner": url, "publicKeyPem": "not a key"},
        "endpoints": {"sharedInbox": "http://x.example/inbox"},
    }  # fmt: skip


def _cases(valid: dict[str, Any]) -> dict[str, bytes]:
    return {**hostile_encodings(valid), **wrong_types(valid)}


async def _each_refused(
    cases: dict[str, bytes], call: Callable[[bytes], Any], allowed: tuple[type, ...]
) -> None:
    """Run ``call`` on every case; anything raised must be one of ``allowed``."""
    crashes = {}
    for case, body in cases.items():
        try:
            await call(body)
        except allowed:
            pass
        except Exception as exc:  # the point: nothing else may escape
            crashes[case] = repr(exc)
    assert crashes == {}


async def test_fetched_actors(node_a, hostile):
    async def fetch_actor(body: bytes) -> None:
        url = hostile.serve(body)
        # The document's id must be its URL: rewrite it where the case kept it.
        await node_a.resolver.actor(url)

    template = _actor_doc(f"http://{hostile.host}/doc/0")
    await _each_refused(_cases(template), fetch_actor, (ResolveError,))


async def test_fetched_posts_and_activities(node_a, hostile):
    author = f"http://{hostile.host}/doc/0"
    post = note(author, content="<p>hi</p>")

    async def fetch_note(body: bytes) -> None:
        assert await node_a.resolver.note(hostile.serve(body)) is None

    async def fetch_any(body: bytes) -> None:
        doc = await node_a.resolver.fetch(hostile.serve(body))
        parse_collection(doc)

    await _each_refused(_cases(post), fetch_note, ())
    collection = {"id": author + "/c", "type": "OrderedCollection", "totalItems": 2,
                  "orderedItems": [author + "/1", {"id": author + "/2"}]}  # fmt: skip
    await _each_refused(_cases(collection), fetch_any, (ResolveError, InvalidObject))


async def test_webfinger(node_a, hostile):
    async def finger(body: bytes) -> None:
        await node_a.resolver.actor_by_handle(hostile.serve_jrd(body))

    jrd = {"subject": "acct:u@x", "links": [
        {"rel": "self", "type": "application/activity+json", "href": "http://x.example/u"}]}
    await _each_refused(_cases(jrd), finger, (ResolveError,))


async def test_nodeinfo(node_a, hostile):
    fetcher = node_a.resolver.fetcher

    async def read(body: bytes) -> None:
        doc = await fetcher.fetch_json(hostile.serve(body, "application/json"))
        parse_well_known(doc)
        parse_nodeinfo(doc)

    nodeinfo = {"version": "2.1", "software": {"name": "x", "version": "1"},
                "protocols": ["activitypub"], "usage": {"users": {"total": 1}},
                "openRegistrations": False, "metadata": {}}  # fmt: skip
    await _each_refused(_cases(nodeinfo), read, (FetchError, NodeInfoError))


async def test_a_hostile_webfinger_answer_is_a_page_not_a_500(node_a, hostile):
    from conftest import create_user, login

    await create_user(node_a.app, "carol")
    await login(node_a.client, "carol")
    for case, body in hostile_encodings({"subject": "acct:u@x", "links": []}).items():
        handle = hostile.serve_jrd(body)
        response = await node_a.client.get("/search", params={"q": f"@{handle}"})
        assert response.status < 500, (case, response.status)
