"""Profile editing, image uploads, password change and self-deletion through the web UI."""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from conftest import PASSWORD, create_user, csrf_from, login, make_settings, post_form
from PIL import Image
from test_media import jpeg_with_metadata, png_bytes, png_claiming_size

from xnode.store import accounts as account_store
from xnode.store import sessions as session_store
from xnode.text import plain_text_to_html, sanitize_html
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, DB, MEDIA

NEW_PASSWORD = "a brand new passphrase"
File = tuple[str, bytes, str]


async def save_profile(
    client, fields: dict[str, str] | None = None, files: dict[str, File] | None = None,
    *, token: str | None = None,
):
    """Submit the profile form as multipart, the way a browser does."""
    form = aiohttp.FormData(default_to_multipart=True)
    if token is None:
        token = await csrf_from(client, "/settings/profile")
    if token:
        form.add_field("csrf_token", token)
    for name, value in (fields or {}).items():
        form.add_field(name, value)
    for name, (filename, data, content_type) in (files or {}).items():
        form.add_field(name, data, filename=filename, content_type=content_type)
    return await client.post("/settings/profile", data=form, allow_redirects=False)


async def account(app, username: str = "alice"):
    found = await account_store.get_local_account(app[DB], username)
    assert found is not None
    return found


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse_tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every real element of a page (text that merely looks like a tag is not one)."""
    collector = _TagCollector()
    collector.feed(page)
    return collector.tags


def media_files(app) -> list[Path]:
    root = app[MEDIA].root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
async def alice(client, app):
    await create_user(app, "alice")
    await login(client, "alice")


@pytest.fixture
async def second_client(client) -> AsyncIterator[aiohttp.ClientSession]:
    """Another browser talking to the same node (its own cookie jar)."""
    session = aiohttp.ClientSession(
        base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    yield session
    await session.close()


# --- profile text ------------------------------------------------------------------


async def test_profile_edit_shows_on_public_profile(client, app, alice):
    response = await save_profile(client, {
        "display_name": "Alice Liddell",
        "bio": "Down the rabbit hole.\n\nMore at https://alice.example/blog.",
        "field_name_0": "Website", "field_value_0": "https://alice.example",
        "field_name_1": "Pronouns", "field_value_1": "she/her",
        "locked": "1",
    })
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/settings/profile"
    settings_page = await (await client.get("/settings/profile")).text()
    assert "Your profile has been saved." in settings_page
    assert 'value="Alice Liddell"' in settings_page

    page = await (await client.get("/@alice")).text()
    assert "Alice Liddell" in page
    assert "<p>Down the rabbit hole.</p>" in page
    assert ('<a href="https://alice.example/blog" rel="nofollow noopener noreferrer">'
            in page)
    assert "Pronouns" in page and "she/her" in page
    assert ">locked</span>" in page
    stored = await account(app)
    assert [(f.name, f.value) for f in stored.fields] == [
        ("Website", "https://alice.example"), ("Pronouns", "she/her")]
    assert stored.locked and not stored.discoverable


async def test_script_and_javascript_links_render_inert(client, app, alice):
    response = await save_profile(client, {
        "display_name": "<script>alert('name')</script>",
        "bio": '<script>alert(1)</script> <a href="javascript:alert(2)">click</a> '
               "javascript:alert(3) <img src=x onerror=alert(4)>",
        "field_name_0": "<b onmouseover=alert(5)>x</b>", "field_value_0": "javascript:alert(6)",
    })
    assert response.status == 303, await response.text()
    for path in ("/@alice", "/settings/profile"):
        page = await (await client.get(path)).text()
        tags = parse_tags(page)
        # Our own deferred static script is the only script a page may carry.
        ours = ("/static/posts.js", "/static/live.js", "/static/calls.js")
        scripts = [a for t, a in tags if t == "script" and a.get("src") not in ours]
        assert scripts == [], path
        # No image but ours (the node's icon in the header), no markup from the profile.
        assert [(t, a.get("src")) for t, a in tags if t in ("img", "b")] == [
            ("img", "/static/icon.svg")
        ], path
        assert not [a for _, a in tags if any(k.startswith("on") for k in a)], path
        hrefs = [a["href"] or "" for t, a in tags if t == "a" and "href" in a]
        assert not [h for h in hrefs if not h.startswith(("/", "http", "#"))], (path, hrefs)
        assert "&lt;script&gt;" in page, path
    assert "<script" not in (await account(app)).bio_html


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({f"field_name_{i}": f"n{i}" for i in range(5)}, "at most 4 fields"),
        ({"field_value_0": "value without a label"}, "no label"),
        ({"display_name": "x" * 101}, "display name is too long"),
        ({"bio": "y" * 501}, "bio is too long"),
        ({"field_name_0": "n", "field_value_0": "v" * 256}, "too long"),
    ],
)
async def test_invalid_profile_is_refused_and_nothing_saved(client, app, alice, fields, message):
    before = await account(app)
    response = await save_profile(client, {"display_name": "Changed", **fields})
    assert response.status == 422
    page = await response.text()
    assert 'role="alert"' in page
    assert message in page
    after = await account(app)
    assert (after.display_name, after.fields, after.updated_at) == (
        before.display_name, before.fields, before.updated_at)
    # What was typed comes back, so nothing has to be typed again.
    first_value = next(iter(fields.values()))
    assert f'value="{first_value}"' in page or f">{first_value}</textarea>" in page


async def test_empty_field_rows_are_dropped_and_controls_stripped(client, app, alice):
    response = await save_profile(client, {
        "display_name": "  Al\x00ice\u202e  ", "field_name_2": "Site", "field_value_2": "x",
        "field_name_0": "", "field_value_0": "  ",
    })
    assert response.status == 303
    stored = await account(app)
    assert stored.display_name == "Alice"
    assert [(f.name, f.value) for f in stored.fields] == [("Site", "x")]


# --- images ------------------------------------------------------------------------


async def test_avatar_upload_is_cleaned_resized_and_served(client, app, alice):
    source = jpeg_with_metadata((1200, 900))
    response = await save_profile(
        client, {"display_name": "Alice"}, {"avatar": ("me.jpg", source, "image/jpeg")})
    assert response.status == 303, await response.text()
    stored = await account(app)
    assert stored.avatar_file and stored.display_name == "Alice"
    path = app[MEDIA].path_for(stored.avatar_file)
    assert path is not None and path.read_bytes() != source
    with Image.open(path) as image:
        assert image.width <= 400 and image.height <= 400
        assert dict(image.getexif()) == {}
        assert "comment" not in image.info and "icc_profile" not in image.info

    served = await client.get(f"/media/{stored.avatar_file}")
    assert served.status == 200
    assert served.headers["Content-Type"].startswith("image/")
    assert await served.read() == path.read_bytes()
    assert f'src="/media/{stored.avatar_file}"' in await (await client.get("/@alice")).text()


async def test_header_upload_and_image_removal(client, app, alice):
    png = png_bytes((3000, 1000), "RGBA")
    response = await save_profile(client, {}, {
        "header": ("h.png", png, "image/png"),
        "avatar": ("a.png", png_bytes((500, 500)), "image/png"),
    })
    assert response.status == 303, await response.text()
    stored = await account(app)
    assert stored.header_file and stored.header_file.endswith(".png")
    with Image.open(app[MEDIA].path_for(stored.header_file)) as image:
        assert image.size == (1500, 500)

    response = await save_profile(client, {"remove_avatar": "1"})
    assert response.status == 303
    after = await account(app)
    assert after.avatar_file is None
    assert after.header_file == stored.header_file


async def test_fake_image_is_refused_and_nothing_changes(client, app, alice):
    response = await save_profile(
        client, {"display_name": "Mallory"},
        {"avatar": ("evil.png", b"<?php system($_GET['c']); ?>\n" * 20, "image/png")},
    )
    assert response.status == 422
    page = await response.text()
    assert 'role="alert"' in page
    assert "Avatar: The file is not an image that can be read." in page
    stored = await account(app)
    assert stored.display_name == "" and stored.avatar_file is None
    assert media_files(app) == []


async def test_bad_header_next_to_good_avatar_saves_nothing(client, app, alice):
    response = await save_profile(client, {"display_name": "Changed"}, {
        "avatar": ("ok.jpg", jpeg_with_metadata(), "image/jpeg"),
        "header": ("bad.png", b"not a picture at all", "image/png"),
    })
    assert response.status == 422
    assert "Header image:" in await response.text()
    stored = await account(app)
    assert (stored.display_name, stored.avatar_file, stored.header_file) == ("", None, None)
    assert media_files(app) == []


async def test_empty_file_inputs_are_ignored(client, app, alice):
    # Browsers send an unused file input as a part with an empty file name.
    token = await csrf_from(client, "/settings/profile")
    parts = [f'name="csrf_token"\r\n\r\n{token}', 'name="display_name"\r\n\r\nAl',
             'name="avatar"; filename=""\r\nContent-Type: application/octet-stream\r\n\r\n']
    body = "".join(f"--XX\r\nContent-Disposition: form-data; {p}\r\n" for p in parts)
    response = await client.post(
        "/settings/profile", data=(body + "--XX--\r\n").encode(), allow_redirects=False,
        headers={"Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert response.status == 303, await response.text()
    assert (await account(app)).display_name == "Al"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_huge_dimensions_are_refused(client, app, alice):
    response = await save_profile(
        client, {}, {"avatar": ("bomb.png", png_claiming_size(30_000, 30_000), "image/png")})
    assert response.status == 422
    assert "pixels" in await response.text()
    assert (await account(app)).avatar_file is None
    assert media_files(app) == []


@pytest.fixture
async def small_upload_client(aiohttp_client, tmp_path, clock):
    """A node that accepts uploads of at most 1 MB."""
    settings = make_settings(tmp_path / "small", max_upload_mb=1)
    client = await aiohttp_client(create_app(settings, clock=clock))
    await create_user(client.server.app, "alice")
    await login(client, "alice")
    return client


@pytest.mark.parametrize("size_mb", [1.5, 3])
async def test_oversize_upload_is_refused(small_upload_client, size_mb):
    client = small_upload_client
    app = client.server.app
    noise = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=0)
    data = out.getvalue()
    data += b"\x00" * (int(size_mb * 1024 * 1024) - len(data))  # trailing bytes after IEND
    response = await save_profile(
        client, {"display_name": "Changed"}, {"avatar": ("big.png", data, "image/png")})
    assert response.status in (413, 422)
    assert "1 MB" in await response.text() or "Too large" in await response.text()
    stored = await account(app)
    assert stored.display_name == "" and stored.avatar_file is None
    assert media_files(app) == []


# --- access and CSRF -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/settings/profile", "/settings/account"])
async def test_settings_need_login(client, path):
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


async def test_posts_without_csrf_token_are_refused(client, app, alice):
    response = await save_profile(client, {"display_name": "Forged"}, token="")
    assert response.status == 403
    for path, data in [
        ("/settings/account/password", {"current_password": PASSWORD,
                                        "new_password": NEW_PASSWORD,
                                        "new_password_confirm": NEW_PASSWORD}),
        ("/settings/account/delete", {"password": PASSWORD}),
    ]:
        response = await client.post(path, data=data, allow_redirects=False)
        assert response.status == 403, path
    assert (await account(app)).display_name == ""
    assert not (await account(app)).is_deleted
    await app[ACCOUNTS].authenticate("alice", PASSWORD)


# --- password ---------------------------------------------------------------------------


async def change_password(
    client, current: str, new: str = NEW_PASSWORD, confirm: str | None = None
):
    return await post_form(
        client, "/settings/account/password",
        {"current_password": current, "new_password": new,
         "new_password_confirm": new if confirm is None else confirm},
        token_page="/settings/account",
    )


async def test_wrong_current_password_is_refused(client, app, alice):
    response = await change_password(client, "not my password")
    assert response.status == 401
    page = await response.text()
    assert 'role="alert"' in page and "current password is wrong" in page
    await app[ACCOUNTS].authenticate("alice", PASSWORD)


async def test_mismatched_or_weak_new_password_is_refused(client, app, alice):
    assert (await change_password(client, PASSWORD, confirm="something else")).status == 422
    response = await change_password(client, PASSWORD, new="short")
    assert response.status == 422
    assert "at least 10 characters" in await response.text()
    await app[ACCOUNTS].authenticate("alice", PASSWORD)


async def test_password_change_keeps_this_session_and_ends_others(
    client, app, alice, second_client
):
    await login(second_client, "alice")
    user = await app[ACCOUNTS].require_user_by_name("alice")
    assert await session_store.count_sessions_of(app[DB], user.id) == 2

    response = await change_password(client, PASSWORD)
    assert response.status == 303
    assert "Hello, alice" in await (await client.get("/")).text()
    assert "Hello, alice" not in await (await second_client.get("/")).text()
    assert await session_store.count_sessions_of(app[DB], user.id) == 1

    response = await post_form(second_client, "/login", {"username": "alice",
                                                         "password": PASSWORD})
    assert response.status == 401
    await login(second_client, "alice", NEW_PASSWORD)


async def test_repeated_wrong_passwords_are_rate_limited(client, alice):
    for _ in range(10):
        assert (await change_password(client, "wrong wrong wrong")).status == 401
    response = await change_password(client, PASSWORD)
    assert response.status == 429
    assert "Retry-After" in response.headers


async def test_one_time_password_must_be_changed_first(client, app):
    await app[ACCOUNTS].create_user("carol", "one time password 1", must_change_password=True)
    response = await post_form(client, "/login", {"username": "carol",
                                                  "password": "one time password 1"})
    assert response.headers["Location"] == "/settings/account"
    for path in ("/", "/settings/profile", "/@carol"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/settings/account"
    page = await (await client.get("/settings/account")).text()
    assert "one-time password" in page

    response = await change_password(client, "one time password 1")
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 200
    assert not (await app[ACCOUNTS].require_user_by_name("carol")).must_change_password


# --- deletion ----------------------------------------------------------------------------


async def delete_account(client, password: str):
    return await post_form(client, "/settings/account/delete", {"password": password},
                           token_page="/settings/account")


async def test_deletion_with_wrong_password_is_refused(client, app, alice):
    response = await delete_account(client, "not my password")
    assert response.status == 401
    assert 'role="alert"' in await response.text()
    assert (await client.get("/@alice")).status == 200
    assert "Hello, alice" in await (await client.get("/")).text()


async def test_deleting_own_account(client, app, alice):
    await save_profile(client, {"display_name": "Alice", "bio": "hi"})
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["xnode_session"].value
    response = await delete_account(client, PASSWORD)
    assert response.status == 303
    assert response.headers["Location"] == "/"
    assert response.cookies["xnode_session"].value == ""
    page = await (await client.get("/")).text()
    assert "Your account has been deleted" in page and "Hello, alice" not in page
    # The old cookie is dead on the server side too.
    replay = await client.get("/", headers={"Cookie": f"xnode_session={token}"})
    assert "Hello, alice" not in await replay.text()

    assert (await client.get("/@alice")).status == 410
    stored = await account(app)
    assert stored.is_deleted and stored.display_name == "" and stored.bio_html == ""
    response = await post_form(client, "/login", {"username": "alice", "password": PASSWORD})
    assert response.status == 401
    response = await post_form(client, "/signup", {
        "username": "alice", "password": PASSWORD, "password_confirm": PASSWORD})
    assert response.status == 409


async def test_last_admin_cannot_delete_self(client, app):
    await create_user(app, "boss", admin=True)
    await login(client, "boss")
    response = await delete_account(client, PASSWORD)
    assert response.status == 409
    assert "last administrator" in await response.text()
    assert (await client.get("/@boss")).status == 200

    await create_user(app, "deputy", admin=True)
    assert (await delete_account(client, PASSWORD)).status == 303
    assert (await client.get("/@boss")).status == 410


# --- text helpers ------------------------------------------------------------------------


def test_sanitize_html_allow_list():
    dirty = (
        '<p onclick="x()">Hi <a href="javascript:alert(1)">j</a> <a href="/local">r</a>'
        '<a href="https://ok.example/" rel="opener" class="mention evil">m</a>'
        '<span class="invisible flash">s</span><img src="x"><iframe>f</iframe>'
        "<script>alert(2)</script><style>p{}</style></p>"
    )
    clean = sanitize_html(dirty)
    assert clean == (
        '<p>Hi <a rel="nofollow noopener noreferrer">j</a> '
        '<a rel="nofollow noopener noreferrer">r</a>'
        '<a href="https://ok.example/" class="mention" rel="nofollow noopener noreferrer">m</a>'
        '<span class="invisible">s</span></p>'
    )
    assert sanitize_html('<a href="mailto:a@b.example">mail</a>') == (
        '<a href="mailto:a@b.example" rel="nofollow noopener noreferrer">mail</a>')


def test_plain_text_to_html():
    assert plain_text_to_html("") == ""
    assert plain_text_to_html("a < b & c\nnext\r\n\r\n\n  para") == (
        "<p>a &lt; b &amp; c<br>next</p><p>para</p>")
    html = plain_text_to_html('see (https://x.example/a_(b)?q=1&r=2). "javascript:alert(1)"')
    assert html == (
        '<p>see (<a href="https://x.example/a_(b)?q=1&amp;r=2" '
        'rel="nofollow noopener noreferrer">https://x.example/a_(b)?q=1&amp;r=2</a>). '
        '"javascript:alert(1)"</p>'
    )
    assert "<a" not in plain_text_to_html("ftp://x.example javascript:alert(1) www.x.example")
    assert re.search(r'href="http://x\.example/"', plain_text_to_html('http://x.example/"><b>'))
