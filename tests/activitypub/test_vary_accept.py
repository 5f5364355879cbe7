"""``Vary: Accept`` on every answer of a URL that serves both HTML and ActivityStreams JSON.

A shared cache keys on the URL unless told otherwise; without ``Vary: Accept`` it
could hand a peer the profile page or a browser the actor document.
"""

from __future__ import annotations

import pytest
from conftest import AP_JSON, Node
from multidict import CIMultiDict

from xnode.activitypub.endpoints import vary_on_accept
from xnode.posts.service import Draft
from xnode.web.state import POSTS

LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
# What Firefox sends for a page load.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def vary_names(response) -> list[str]:
    """The names in all of a response's ``Vary`` headers, lower-cased."""
    return [
        name.strip().lower()
        for value in response.headers.getall("Vary", [])
        for name in value.split(",")
        if name.strip()
    ]


def varies_on_accept(response) -> bool:
    """``Accept`` is listed exactly once."""
    return vary_names(response).count("accept") == 1


@pytest.fixture
async def alice_post(node_a: Node) -> int:
    """A local user ``alice`` with one public post; returns the post id."""
    alice = await node_a.user("alice")
    return (await node_a.app[POSTS].publish(alice, Draft(source="hello"))).id


@pytest.mark.parametrize("accept", [AP_JSON, LD_JSON])
async def test_json_answers_vary_on_accept(node_a: Node, alice_post: int, accept: str):
    for path in ("/@alice", f"/@alice/{alice_post}", "/users/alice",
                 f"/users/alice/statuses/{alice_post}"):  # fmt: skip
        response = await node_a.client.get(path, headers={"Accept": accept})
        assert response.status == 200, path
        assert response.content_type == AP_JSON, path
        assert varies_on_accept(response), (path, response.headers.getall("Vary", []))


@pytest.mark.parametrize("accept", ["text/html", BROWSER, None])
async def test_html_answers_vary_on_accept(node_a: Node, alice_post: int, accept: str | None):
    headers = {"Accept": accept} if accept else {}
    for path in ("/@alice", f"/@alice/{alice_post}"):
        response = await node_a.client.get(path, headers=headers)
        assert response.status == 200, path
        assert response.content_type == "text/html", path
        assert varies_on_accept(response), (path, response.headers.getall("Vary", []))


async def test_head_requests_vary_on_accept(node_a: Node, alice_post: int):
    for path in ("/@alice", f"/@alice/{alice_post}"):
        for accept in ("text/html", AP_JSON):
            response = await node_a.client.head(path, headers={"Accept": accept})
            assert response.status == 200, (path, accept)
            assert varies_on_accept(response), (path, accept)


async def test_browser_redirect_from_the_actor_url_varies_on_accept(node_a: Node, alice_post: int):
    """``/users/alice`` answers browsers with a redirect, peers with JSON: both may be cached."""
    response = await node_a.client.get(
        "/users/alice", headers={"Accept": BROWSER}, allow_redirects=False
    )
    assert response.status == 302 and response.headers["Location"].endswith("/@alice")
    assert varies_on_accept(response)


async def test_deleted_account_tombstone_varies_on_accept(node_a: Node, alice_post: int):
    alice = await node_a.resolver.known_account(node_a.actor("alice"))
    assert alice is not None
    await node_a.db.execute("UPDATE accounts SET deleted_at = 1 WHERE id = ?", (alice.id,))
    response = await node_a.client.get("/@alice", headers={"Accept": AP_JSON})
    assert response.status == 410
    assert varies_on_accept(response)


@pytest.mark.parametrize("accept", ["text/html", AP_JSON])
async def test_error_answers_of_negotiated_urls_vary_on_accept(node_a: Node, accept: str):
    """The 404 body is HTML or JSON by ``Accept``: the error page must keep the header."""
    response = await node_a.client.get("/@nobody", headers={"Accept": accept})
    assert response.status == 404
    assert varies_on_accept(response), response.headers.getall("Vary", [])


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], ["Accept"]),
        (["Cookie"], ["Cookie, Accept"]),
        (["Accept-Encoding, Origin"], ["Accept-Encoding, Origin, Accept"]),
        (["Cookie", "Origin"], ["Cookie, Origin, Accept"]),  # two headers become one
        (["accept"], ["accept"]),  # already there, in any case: not duplicated
        (["Cookie, Accept"], ["Cookie, Accept"]),
        (["*"], ["*"]),  # varies on everything already
        ([" , Cookie,"], ["Cookie, Accept"]),
    ],
)
def test_vary_on_accept_merges(existing: list[str], expected: list[str]):
    headers: CIMultiDict[str] = CIMultiDict()
    for value in existing:
        headers.add("Vary", value)
    vary_on_accept(headers)
    assert headers.getall("Vary", []) == expected
