"""Forms that no browser sends (bytes that are not UTF-8, lone surrogates): 400, nothing stored."""

from __future__ import annotations

import pytest
from conftest import create_user, csrf_from, login

from xnode.web.state import DB

URLENCODED = "application/x-www-form-urlencoded"


@pytest.fixture
async def token(client, app) -> str:
    await create_user(app, "alice")
    await login(client, "alice")
    return await csrf_from(client, "/")


@pytest.mark.parametrize("source", [b"\xed\xa0\x80", b"caf\xe9", b"\xff\xfe"])
async def test_a_urlencoded_form_that_is_not_utf8_is_refused(client, app, token, source):
    body = b"source=" + source + b"&csrf_token=" + token.encode()
    response = await client.post("/posts", data=body, headers={"Content-Type": URLENCODED},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 400
    assert "not UTF-8" in await response.text()
    assert await app[DB].fetchvalue("SELECT count(*) FROM posts") == 0


@pytest.mark.parametrize("source", [b"bad \xed\xa0\x80 surrogate", b"\xff"])
async def test_a_multipart_form_that_is_not_utf8_is_refused(client, app, token, source):
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + token.encode()
        + b'\r\n--XX\r\nContent-Disposition: form-data; name="source"\r\n\r\n' + source
        + b"\r\n--XX--\r\n"
    )
    response = await client.post(
        "/posts", data=body, headers={"Content-Type": "multipart/form-data; boundary=XX"},
        allow_redirects=False,
    )
    assert response.status == 400
    assert await app[DB].fetchvalue("SELECT count(*) FROM posts") == 0


async def test_percent_escaped_bytes_that_are_not_utf8_become_replacement_characters(
    client, app, token
):
    body = b"source=caf%E9&csrf_token=" + token.encode()
    response = await client.post("/posts", data=body, headers={"Content-Type": URLENCODED},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 303
    assert await app[DB].fetchvalue("SELECT source FROM posts") == "caf\ufffd"
