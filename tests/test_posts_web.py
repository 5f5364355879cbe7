"""Posts through the web UI: compose, thread, edit, history, delete and the post buttons."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from conftest import create_user, csrf_from, login
from test_media import png_bytes
from test_profile import parse_tags

from xnode.posts.service import Draft
from xnode.web.state import DB, POSTS, RELATIONSHIPS

File = tuple[str, bytes, str]
POST_LOCATION = re.compile(r"^/@(\w+)/(\d+)$")
OUR_SCRIPTS = ('<script src="/static/posts.js" defer></script>',
               '<script src="/static/live.js" defer></script>',
               '<script src="/static/calls.js" defer></script>')


async def compose(
    client, fields: dict[str, str] | None = None, files: dict[str, File] | None = None,
    *, token: str | None = None, page: str = "/",
) -> Any:
    """Submit the compose form as multipart, the way a browser does."""
    form = aiohttp.FormData(default_to_multipart=True)
    if token is None:
        token = await csrf_from(client, page)
    if token:
        form.add_field("csrf_token", token)
    for name, value in (fields or {}).items():
        form.add_field(name, value)
    for name, (filename, data, content_type) in (files or {}).items():
        form.add_field(name, data, filename=filename, content_type=content_type)
    return await client.post("/posts", data=form, allow_redirects=False)


async def publish(client, source: str, **fields: str) -> str:
    """Compose a post through the form; return its page's path."""
    response = await compose(client, {"source": source, **fields})
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert POST_LOCATION.match(location), location
    return location


def post_id_of(path: str) -> int:
    return int(path.rsplit("/", 1)[1])


async def switch_to(client, username: str) -> None:
    """Forget the current session and log in as someone else."""
    client.session.cookie_jar.clear()
    await login(client, username)


async def count(app, table: str) -> int:
    return await app[DB].fetchvalue(f"SELECT COUNT(*) FROM {table}")


async def text_of(client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    body = await response.text()
    assert response.status == status, (path, response.status, body[:500])
    return body


async def act(client, post_id: int, action: str, *, referer: str | None = None,
              token: str | None = None) -> Any:
    """Press a button under a post (token taken from the front page)."""
    if token is None:
        token = await csrf_from(client, "/")
    headers = {"Referer": referer} if referer else {}
    return await client.post(
        f"/posts/{post_id}/{action}", data={"csrf_token": token} if token else {},
        headers=headers, allow_redirects=False,
    )


@pytest.fixture
async def people(client, app):
    """alice (logged in), bob and carol."""
    accounts = [(await create_user(app, name)).account for name in ("alice", "bob", "carol")]
    await login(client, "alice")
    return accounts


# --- compose -----------------------------------------------------------------------


async def test_compose_publishes_and_redirects_to_the_post(client, app, people):
    path = await publish(client, "Hello, fediverse!")
    assert path.startswith("/@alice/")
    page = await text_of(client, path)
    assert "Your post is published." in page
    assert "<p>Hello, fediverse!</p>" in page
    assert await count(app, "posts") == 1
    response = await compose(client, {"source": "back to local", "next": "/local"})
    assert response.headers["Location"] == "/local"
    response = await compose(client, {"source": "no open redirect", "next": "//evil.example/"})
    assert POST_LOCATION.match(response.headers["Location"])


async def test_content_warning_renders_in_details(client, people):
    path = await publish(client, "The butler did it.", summary="Spoilers for the film")
    page = await text_of(client, path)
    match = re.search(
        r'<details class="content-warning">\s*<summary>(.*?)</summary>(.*?)</details>', page, re.S
    )
    assert match, page
    assert "Spoilers for the film" in match[1]
    assert "The butler did it." in match[2]


async def test_markdown_renders_and_plain_text_does_not(client, people):
    path = await publish(
        client, "**bold** and _soft_\n\n- one\n- two", source_format="markdown"
    )
    page = await text_of(client, path)
    assert "<strong>bold</strong>" in page and "<em>soft</em>" in page
    assert "<li>one</li>" in page
    plain = await text_of(client, await publish(client, "**not bold**"))
    assert "<p>**not bold**</p>" in plain


@pytest.mark.parametrize("source_format", ["plain", "markdown"])
async def test_hostile_markup_renders_inert(client, people, source_format):
    source = (
        "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) "
        '<a href="javascript:alert(2)">y</a>'
    )
    path = await publish(client, source, source_format=source_format)
    for page_path in (path, "/", "/local"):
        page = await text_of(client, page_path)
        assert page.count("<script") == sum(page.count(ours) for ours in OUR_SCRIPTS), page_path
        tags = parse_tags(page)
        assert [a for t, a in tags if t == "script" and a.get("src") not in (
            "/static/posts.js", "/static/live.js", "/static/calls.js")] == []  # fmt: skip
        assert not [a for _, a in tags if any(k.startswith("on") for k in a)], page_path
        links = [(a.get("href") or "") + (a.get("src") or "") for _, a in tags]
        assert not [u for u in links if "javascript:" in u.lower()], page_path
        # No image but ours (the node's icon in the header).
        assert [a.get("src") for t, a in tags if t == "img"] == ["/static/icon.svg"], page_path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, page_path


async def test_too_long_post_is_refused_with_input_kept(client, app, people):
    response = await compose(
        client, {"source": "x" * 5001, "summary": "keep me", "visibility": "unlisted"}
    )
    assert response.status == 422
    page = await response.text()
    assert re.search(
        r'<p class="form-error" role="alert" id="compose-error">Posts are limited to 5,000 '
        r"characters \(5,001 given\)\.</p>", page
    )
    assert "x" * 5001 + "</textarea>" in page
    assert 'value="keep me"' in page
    assert '<option value="unlisted" selected>' in page
    assert await count(app, "posts") == 0


async def test_five_images_are_refused(client, app, people):
    files = {f"image_{i}": (f"{i}.png", png_bytes((20, 20)), "image/png") for i in range(5)}
    response = await compose(client, {"source": "too many"}, files)
    assert response.status == 422
    assert "At most 4 images per post." in await response.text()
    assert await count(app, "posts") == 0
    assert await count(app, "media_attachments") == 0


async def test_non_image_upload_stores_nothing(client, app, people):
    files = {
        "image_0": ("ok.png", png_bytes((20, 20)), "image/png"),
        "image_1": ("notes.txt", b"just some text", "text/plain"),
    }
    response = await compose(
        client, {"source": "with a bad file", "alt_0": "a dark square"}, files
    )
    assert response.status == 422
    page = await response.text()
    assert 'role="alert"' in page and "Image 2:" in page
    assert "a dark square</textarea>" in page
    assert "choose them again" in page
    assert await count(app, "posts") == 0
    assert await count(app, "media_attachments") == 0


async def test_images_are_stored_with_alt_text_and_thumbnails_served(client, app, people):
    files = {
        "image_0": ("red.png", png_bytes((900, 600)), "image/png"),
        "image_1": ("blue.png", png_bytes((40, 40)), "image/png"),
    }
    response = await compose(
        client, {"source": "two pictures", "alt_0": "A red field", "alt_1": "A blue tile"}, files
    )
    assert response.status == 303, await response.text()
    rows = await app[DB].fetchall(
        "SELECT description, thumbnail_file, file_name FROM media_attachments ORDER BY position"
    )
    assert [r["description"] for r in rows] == ["A red field", "A blue tile"]
    page = await text_of(client, response.headers["Location"])
    images = [a for t, a in parse_tags(page) if t == "img" and a.get("alt")]
    assert [(a["alt"], a["src"]) for a in images] == [
        ("A red field", f"/media/{rows[0]['thumbnail_file']}"),
        ("A blue tile", f"/media/{rows[1]['thumbnail_file']}"),
    ]
    for row in rows:
        for name in (row["thumbnail_file"], row["file_name"]):
            served = await client.get(f"/media/{name}")
            assert served.status == 200
            assert served.content_type.startswith("image/")


# --- threads ------------------------------------------------------------------------


async def test_reply_appears_in_thread_with_ancestors(client, app, people):
    alice, _, _ = people
    root = await publish(client, "Root of the thread", visibility="unlisted")
    root_id = post_id_of(root)
    await switch_to(client, "bob")
    page = await text_of(client, root)
    form = re.search(r'<form[^>]*id="reply".*?</form>', page, re.S)
    assert form, page
    assert f'name="in_reply_to_id" value="{root_id}"' in form[0]
    assert '@alice </textarea>' in form[0]
    assert '<option value="unlisted" selected>' in form[0]
    response = await compose(
        client, {"source": "@alice A reply", "in_reply_to_id": str(root_id),
                 "visibility": "unlisted"}, page=root,
    )
    assert response.status == 303, await response.text()
    # Back to the thread, at the new reply (issue 15: return to where you were).
    back, _, anchor = response.headers["Location"].partition("#post-")
    assert back == f"/posts/{root_id}" and anchor
    reply = f"/@bob/{anchor}"
    reply_page = await text_of(client, reply)
    assert reply_page.index("Root of the thread") < reply_page.index("A reply</p>")
    assert 'class="thread-ancestors"' in reply_page
    await app[POSTS].publish(alice, Draft("deeper down", in_reply_to_id=post_id_of(reply)))
    thread = await text_of(client, root)
    replies = thread[thread.index('<ol class="replies">'):]
    assert re.search(r'class="reply depth-1">\s*<article[^>]*>.*?A reply</p>', replies, re.S)
    assert re.search(r'class="reply depth-2">\s*<article[^>]*>.*?deeper down', replies, re.S)


async def test_reply_to_followers_only_post_defaults_to_followers(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    path = await publish(client, "for my followers", visibility="followers")
    await switch_to(client, "bob")
    form = re.search(r'<form[^>]*id="reply".*?</form>', await text_of(client, path), re.S)
    assert form and '<option value="followers" selected>' in form[0]


async def test_refused_reply_comes_back_on_the_thread(client, app, people):
    path = await publish(client, "answer me")
    response = await compose(
        client, {"source": "y" * 5001, "in_reply_to_id": str(post_id_of(path))}, page=path
    )
    assert response.status == 422
    page = await response.text()
    assert "answer me" in page and "5,000 characters" in page and 'id="reply"' in page
    assert await count(app, "posts") == 1
    for bad in ("abc", "99999999999999999999", "1"):
        response = await compose(client, {"source": "hi", "in_reply_to_id": bad}, page=path)
        assert response.status in (404, 422), bad
    assert await count(app, "posts") == 1


async def test_thread_url_must_name_the_author(client, people):
    path = await publish(client, "mine")
    post_id = post_id_of(path)
    await text_of(client, f"/@bob/{post_id}", 404)
    await text_of(client, f"/@ALICE/{post_id}", 200)
    response = await client.get(f"/posts/{post_id}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == path
    await text_of(client, "/posts/123456789", 404)
    await text_of(client, "/@alice/99999999999999999999", 404)


async def test_private_posts_are_not_found_for_others(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    private = await publish(client, "followers only words", visibility="followers")
    direct = await publish(client, "psst @carol", visibility="direct")
    await switch_to(client, "bob")
    assert "followers only words" in await text_of(client, private)
    await text_of(client, direct, 404)
    await switch_to(client, "carol")
    await text_of(client, "/")  # shows (and clears) the welcome-back message
    missing = await text_of(client, "/@alice/1234567890", 404)
    not_shown = await text_of(client, private, 404)
    assert "followers only words" not in not_shown
    # Not visible and not existing read the same.
    assert re.sub(r"\d{6,}", "", missing) == re.sub(r"\d{6,}", "", not_shown)
    assert "psst" in await text_of(client, direct)
    client.session.cookie_jar.clear()
    for path in (private, direct, f"{private}/history"):
        await text_of(client, path, 404)
    response = await client.get(f"/posts/{post_id_of(private)}", allow_redirects=False)
    assert response.status == 404


# --- edit, history, delete --------------------------------------------------------------


async def test_edit_keeps_history_and_shows_edited(client, app, people):
    path = await publish(client, "first version", summary="cw one")
    form_page = await text_of(client, f"{path}/edit")
    assert "first version</textarea>" in form_page
    token = await csrf_from(client, f"{path}/edit")
    response = await client.post(
        f"{path}/edit",
        data={"csrf_token": token, "source": "second version", "summary": ""},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == path
    page = await text_of(client, path)
    assert "second version" in page and "first version" not in page
    assert re.search(rf'<a href="{path}/history">edited ', page)
    history = await text_of(client, f"{path}/history")
    assert history.index("second version") < history.index("first version")
    assert "cw one" in history
    refused = await client.post(
        f"{path}/edit", data={"csrf_token": token, "source": "z" * 5001}, allow_redirects=False
    )
    assert refused.status == 422
    assert "5,000 characters" in await refused.text()
    assert "second version" in await text_of(client, path)


async def test_only_the_author_may_edit(client, app, people):
    path = await publish(client, "alice wrote this")
    await switch_to(client, "bob")
    await text_of(client, f"{path}/edit", 403)
    token = await csrf_from(client, "/")
    response = await client.post(
        f"{path}/edit", data={"csrf_token": token, "source": "hijacked"}, allow_redirects=False
    )
    assert response.status == 403
    page = await text_of(client, path)
    assert "alice wrote this" in page and "hijacked" not in page
    assert f'href="{path}/edit"' not in page


async def test_delete_leaves_tombstone_and_gone_page(client, app, people):
    alice, bob, _ = people
    root = await publish(client, "root post")
    reply = await app[POSTS].publish(bob, Draft("doomed reply", in_reply_to_id=post_id_of(root)))
    await app[POSTS].publish(alice, Draft("answer to the doomed", in_reply_to_id=reply.id))
    await switch_to(client, "bob")
    reply_path = f"/@bob/{reply.id}"
    response = await act(client, reply.id, "delete", referer=str(client.make_url(reply_path)))
    assert response.status == 303 and response.headers["Location"] == "/"
    assert "Your post was deleted." in await text_of(client, "/")
    thread = await text_of(client, root)
    assert "doomed reply" not in thread
    assert "This post was deleted." in thread and "answer to the doomed" in thread
    gone = await text_of(client, reply_path, 410)
    assert "This post was deleted." in gone
    # Someone else's post cannot be deleted.
    response = await act(client, post_id_of(root), "delete", referer=str(client.make_url(root)))
    assert response.status == 303 and response.headers["Location"].startswith(root)
    page = await text_of(client, root)
    assert "Only the author can change this post." in page and "root post" in page


# --- buttons ----------------------------------------------------------------------------


async def test_like_boost_bookmark_toggle_with_counters(client, app, people):
    path = await publish(client, "press my buttons")
    post_id = post_id_of(path)
    await switch_to(client, "bob")
    local = str(client.make_url("/local"))
    response = await act(client, post_id, "like", referer=local)
    assert response.status == 303 and response.headers["Location"] == f"/local#post-{post_id}"
    page = await text_of(client, path)
    assert "You liked the post." in page and "Unlike (1)" in page
    await act(client, post_id, "boost")
    await act(client, post_id, "bookmark")
    page = await text_of(client, path)
    assert "Unboost (1)" in page and "Remove bookmark" in page
    assert await count(app, "posts") == 2
    for action in ("unlike", "unboost", "unbookmark"):
        response = await act(client, post_id, action)
        assert response.headers["Location"] == f"/posts/{post_id}"
    page = await text_of(client, path)
    for label in ("Like", "Boost", "Bookmark"):
        assert f'title="{label}">' in page, label
    assert await count(app, "posts") == 1 and await count(app, "likes") == 0
    # A Referer from another site is not followed.
    response = await act(client, post_id, "like", referer="http://evil.example/x")
    assert response.headers["Location"] == f"/posts/{post_id}"


async def test_pin_is_for_the_author_only(client, app, people):
    path = await publish(client, "pin me")
    post_id = post_id_of(path)
    await act(client, post_id, "pin")
    assert 'title="Unpin">' in await text_of(client, path)
    assert await count(app, "pins") == 1
    await act(client, post_id, "unpin")
    assert 'title="Pin">' in await text_of(client, path)
    await switch_to(client, "bob")
    response = await act(client, post_id, "pin", referer=str(client.make_url(path)))
    assert response.status == 303
    assert "Only the author can change this post." in await text_of(client, path)
    assert await count(app, "pins") == 0


async def test_boosting_followers_only_post_is_refused(client, app, people):
    alice, bob, _ = people
    await app[RELATIONSHIPS].follow(bob.id, alice.id)
    path = await publish(client, "not for boosting", visibility="followers")
    await switch_to(client, "bob")
    page = await text_of(client, path)
    assert f"/posts/{post_id_of(path)}/boost" not in page
    response = await act(client, post_id_of(path), "boost", referer=str(client.make_url(path)))
    assert response.status == 303
    page = await text_of(client, path)
    assert "Only public and unlisted posts can be boosted." in page
    assert 'class="flash flash-error"' in page
    assert await count(app, "posts") == 1


async def test_post_actions_need_csrf_token(client, app, people):
    path = await publish(client, "guarded")
    post_id = post_id_of(path)
    for action in ("like", "bookmark", "pin", "delete"):
        response = await act(client, post_id, action, token="")
        assert response.status == 403, action
        response = await act(client, post_id, action, token="forged-token")
        assert response.status == 403, action
    assert await count(app, "likes") == 0 and await count(app, "bookmarks") == 0
    assert await count(app, "pins") == 0
    assert "guarded" in await text_of(client, path)
    response = await compose(client, {"source": "sneaky"}, token="")
    assert response.status == 403
    assert await count(app, "posts") == 1


async def test_logged_out_visitors_are_sent_to_log_in(client, app, people):
    path = await publish(client, "hello")
    client.session.cookie_jar.clear()
    token = await csrf_from(client, "/login")
    response = await act(
        client, post_id_of(path), "like", referer=str(client.make_url(path)), token=token
    )
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [path]
    page = await text_of(client, path)
    assert 'id="reply"' in page and "Log in</a> to reply" in page
    assert 'action="/posts"' not in page
    response = await compose(client, {"source": "anonymous"}, token=token)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    assert await count(app, "likes") == 0 and await count(app, "posts") == 1


async def test_posting_from_a_page_returns_to_it(client, app, people):
    """Composing on the home page goes back there, the new post on top (issue 15)."""
    token = await csrf_from(client, "/")
    response = await client.post(
        "/posts", data={"csrf_token": token, "source": "zqx back home"},
        headers={"Referer": str(client.make_url("/"))}, allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/"
    assert "zqx back home" in await text_of(client, "/")


async def test_reused_post_cards_carry_each_viewers_token_and_only_their_buttons(client, app):
    """Cards are rendered once and reused (xnode/web/render.py, PostCards): what is
    reused must never carry another viewer's CSRF token or the author's own buttons,
    and must change as soon as the post or the viewer's state does."""
    alice = (await create_user(app, "alice")).account
    await create_user(app, "bob")
    post = await app[POSTS].publish(alice, Draft("one card for everyone"))

    await login(client, "alice")
    alice_page = await (await client.get(f"/@alice/{post.id}")).text()
    alice_token = csrf_from_page(alice_page)
    assert f'action="/posts/{post.id}/delete"' in alice_page  # her own post
    await switch_to(client, "bob")
    bob_page = await (await client.get(f"/@alice/{post.id}")).text()
    bob_token = csrf_from_page(bob_page)
    assert bob_token != alice_token
    assert alice_token not in bob_page
    assert f'action="/posts/{post.id}/delete"' not in bob_page
    assert f'action="/posts/{post.id}/edit"' not in bob_page and "/edit\"" not in bob_page

    # Bob's token in the reused card works; the card shows his like at once.
    liked = await client.post(f"/posts/{post.id}/like", data={"csrf_token": bob_token},
                              allow_redirects=False)  # fmt: skip
    assert liked.status == 303
    bob_page = await (await client.get(f"/@alice/{post.id}")).text()
    assert f'action="/posts/{post.id}/unlike"' in bob_page
    assert '<span class="count" aria-hidden="true">1</span>' in bob_page

    # Signed out: no forms at all, and no token from anyone.
    client.session.cookie_jar.clear()
    anonymous = await (await client.get(f"/@alice/{post.id}")).text()
    assert f'action="/posts/{post.id}/' not in anonymous
    assert bob_token not in anonymous and alice_token not in anonymous


def csrf_from_page(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)
