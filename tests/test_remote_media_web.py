"""Other servers' avatars and media come through the node (issue 15).

Pages never point a reader's browser at another server: remote images are
fetched once by the node (SSRF-safe client, size and type limits), cached and
served from ``/media/remote/…``; the Content-Security-Policy allows images and
media from this node only.
"""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import create_user, login, make_settings
from PIL import Image

from federation.http import FetchSettings
from xnode.ids import new_id
from xnode.remote_media import RemoteMediaCache, sniff
from xnode.store import accounts as account_store
from xnode.web.app import create_app
from xnode.web.state import DB, RELATIONSHIPS, SETTINGS


def png(size: tuple[int, int] = (4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


PNG = png()
FILES = {
    "/avatar.png": (PNG, "image/png"),
    "/claims-jpeg.png": (PNG, "image/jpeg"),  # the wrong type: served as what the bytes are
    "/drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>',
                     "image/svg+xml"),
    "/page.html": (b"<html><script>alert(1)</script></html>", "text/html"),
    "/huge.png": (PNG + b"\0" * (9 * 1024 * 1024), "image/png"),
    "/photo.png": (png((8, 8)), "image/png"),
}


class OtherServer:
    """Another server's file host, counting requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.server: TestServer | None = None

    async def start(self) -> None:
        async def serve(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            body, content_type = FILES[request.path]
            return web.Response(body=body, headers={"Content-Type": content_type})

        app = web.Application()
        for path in FILES:
            app.router.add_get(path, serve)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
async def other():
    found = OtherServer()
    await found.start()
    yield found
    assert found.server is not None
    await found.server.close()


async def remote_account(app, other: OtherServer, avatar: str, header: str | None = None):
    account_id = new_id()
    await app[DB].execute(
        "INSERT INTO accounts (id, username, username_key, domain, uri, inbox_url,"
        " avatar_remote_url, header_remote_url, fetched_at, created_at, updated_at)"
        " VALUES (?, 'bruno', 'bruno', 'other.example', 'https://other.example/users/bruno',"
        " 'https://other.example/inbox', ?, ?, 4102444800, 0, 0)",
        (account_id, other.url(avatar), other.url(header) if header else None),
    )
    return await account_store.get_account(app[DB], account_id)


async def test_a_remote_avatar_is_fetched_once_and_served_from_here(client, app, other):
    await create_user(app, "alice")
    await login(client, "alice")
    bruno = await remote_account(app, other, "/avatar.png")
    page = await (await client.get("/@bruno@other.example")).text()
    assert other.url("") not in page  # nothing on the page points at the other server
    [src] = re.findall(r'<img class="avatar" src="([^"]+)"', page)
    assert src.startswith(f"/media/remote/avatar/{bruno.id}?v=")
    for _ in range(3):
        response = await client.get(src.replace("&amp;", "&"))
        assert response.status == 200
        assert response.content_type == "image/png"
        assert await response.read() == PNG
    assert other.hits["/avatar.png"] == 1


async def test_only_known_formats_are_served_and_never_as_claimed(client, app, other):
    bruno = await remote_account(app, other, "/claims-jpeg.png", header="/drawing.svg")
    response = await client.get(f"/media/remote/avatar/{bruno.id}")
    assert response.status == 200 and response.content_type == "image/png"
    response = await client.get(f"/media/remote/header/{bruno.id}")
    assert response.status == 502
    assert "svg" not in response.headers.get("Content-Type", "")
    # A failure is remembered for a while: the other server is not asked again at once.
    await client.get(f"/media/remote/header/{bruno.id}")
    assert other.hits["/drawing.svg"] == 1


@pytest.mark.parametrize("path", ["/page.html", "/huge.png"])
async def test_pages_and_oversize_files_are_refused(client, app, other, path):
    bruno = await remote_account(app, other, path)
    response = await client.get(f"/media/remote/avatar/{bruno.id}")
    assert response.status == 502
    cached = app[SETTINGS].remote_media_dir
    assert not cached.exists() or not any(cached.iterdir())


async def test_only_urls_the_node_stored_are_fetched(client, app, other):
    alice = (await create_user(app, "alice")).account
    assert (await client.get(f"/media/remote/avatar/{alice.id}")).status == 404
    assert (await client.get("/media/remote/avatar/12345")).status == 404
    assert (await client.get("/media/remote/attachment/12345")).status == 404


async def test_private_addresses_are_refused_by_default(tmp_path, aiohttp_client, other):
    """The SSRF guard holds for media: a node on the open internet never fetches from
    loopback or private networks, whatever a remote actor names as its avatar."""
    settings = make_settings(tmp_path / "strict", allow_private_addresses=False)
    app = create_app(settings)
    client = await aiohttp_client(app)
    bruno = await remote_account(app, other, "/avatar.png")
    response = await client.get(f"/media/remote/avatar/{bruno.id}")
    assert response.status == 502
    assert other.hits["/avatar.png"] == 0


async def test_media_of_a_followers_only_post_is_for_its_followers(
    client, app, aiohttp_client, other
):
    alice = (await create_user(app, "alice")).account
    await create_user(app, "carol")
    bruno = await remote_account(app, other, "/avatar.png")
    await app[RELATIONSHIPS].follow(alice.id, bruno.id)
    await app[DB].execute("UPDATE follows SET state = 'accepted'")
    post_id, attachment_id = new_id(), new_id()
    await app[DB].execute(
        "INSERT INTO posts (id, account_id, uri, content_html, visibility, local, created_at)"
        " VALUES (?, ?, 'https://other.example/p/1', '<p>pics</p>', 'followers', 0, 0)",
        (post_id, bruno.id),
    )
    await app[DB].execute(
        "INSERT INTO media_attachments (id, account_id, post_id, remote_url, content_type,"
        " description, position, created_at) VALUES (?, ?, ?, ?, 'image/png', 'a photo', 0, 0)",
        (attachment_id, bruno.id, post_id, other.url("/photo.png")),
    )
    path = f"/media/remote/attachment/{attachment_id}"
    assert (await client.get(path)).status == 404  # anonymous
    await login(client, "carol")
    assert (await client.get(path)).status == 404  # not a follower
    follower = await aiohttp_client(client.server)
    await login(follower, "alice")
    response = await follower.get(path)
    assert response.status == 200 and await response.read() == FILES["/photo.png"][0]
    assert response.headers["Cache-Control"].startswith("private")
    assert other.hits["/photo.png"] == 1


async def test_the_content_security_policy_keeps_images_and_media_on_this_node(client):
    policy = (await client.get("/login")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["img-src"] == "'self' data:"
    assert directives["media-src"] == "'self'"


def test_sniffing_knows_formats_by_their_bytes():
    assert sniff(PNG) == ("image/png", "png")
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 20) == ("image/jpeg", "jpg")
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == ("image/webp", "webp")
    assert sniff(b"<svg") is None and sniff(b"<html>") is None and sniff(b"") is None


async def test_the_cache_stays_within_its_bound_dropping_the_least_recently_used(tmp_path, other):
    cache = RemoteMediaCache(
        tmp_path / "cache", FetchSettings(allow_private_addresses=True), cache_bytes=3 * len(PNG)
    )
    try:
        first = await cache.get(other.url("/avatar.png"))
        for name in ("/claims-jpeg.png", "/photo.png"):
            await cache.get(other.url(name))
        await cache.get(other.url("/avatar.png"))  # used again: now the most recent
        total = sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
        assert total <= 3 * len(PNG)
        assert first.path.exists()
    finally:
        await cache.close()
