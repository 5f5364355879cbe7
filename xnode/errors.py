"""Domain errors. Services raise these; the web layer maps them to HTTP
statuses and the CLI to a message and a non-zero exit."""

from __future__ import annotations


class XnodeError(Exception):
    """Base class for errors a user or peer can cause; ``message`` is shown to them."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def json_body(self) -> dict[str, str]:
        """The error as a JSON client reads it (the client API's ``{"error": …}``)."""
        return {"error": self.message}


class InvalidInput(XnodeError):
    """The input is malformed or breaks a rule (HTTP 422)."""

    status = 422


class Conflict(XnodeError):
    """The input clashes with existing data, e.g. a taken username (HTTP 409)."""

    status = 409


class NotFound(XnodeError):
    """The thing asked for does not exist or is not visible (HTTP 404)."""

    status = 404


class Forbidden(XnodeError):
    """The actor may not do this (HTTP 403)."""

    status = 403


class Unauthorized(XnodeError):
    """Credentials are missing or wrong (HTTP 401)."""

    status = 401


class PayloadTooLarge(XnodeError):
    """An upload or body exceeds the configured limit (HTTP 413)."""

    status = 413


class RateLimited(XnodeError):
    """Too many attempts; retry after ``retry_after`` seconds (HTTP 429)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
