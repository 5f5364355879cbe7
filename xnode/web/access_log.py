"""The access log of ``xnode serve --access-log``, without secrets in it.

Browsers cannot set headers on a WebSocket, so streaming apps put their access token in the
query (``/api/v1/streaming?access_token=…``); aiohttp's default format logs the whole
request line, which would write live tokens into log files. Such values are replaced here.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_SECRET_PARAMS = re.compile(r"((?:^|[?&])(?:access_token|code|client_secret)=)[^&#]*")


def redacted(path_qs: str) -> str:
    """A request's path and query with token-like values replaced by ``[redacted]``."""
    return _SECRET_PARAMS.sub(r"\1[redacted]", path_qs)


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, request line (secrets redacted), status, size, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write the line."""
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs "%s"', request.remote, request.method,
            redacted(request.path_qs), request.version.major, request.version.minor,
            response.status, response.body_length, time,
            request.headers.get("User-Agent", "-"),
        )  # fmt: skip
