"""Apps, authorizations and tokens as the rest of the node sees them."""

from __future__ import annotations

from dataclasses import dataclass

from xnode.store.database import Row


@dataclass(frozen=True)
class Application:
    """A client app registered with ``POST /api/v1/apps``."""

    id: int
    name: str
    website: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> Application:
        """Build from an ``oauth_applications`` row."""
        return cls(
            id=row["id"], name=row["name"], website=row["website"],
            redirect_uris=tuple(row["redirect_uris"].split("\n")),
            scopes=tuple(row["scopes"].split()), client_id=row["client_id"],
            created_at=row["created_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class AuthorizationCode:
    """A code issued on the consent page, waiting to be exchanged for a token."""

    application_id: int
    account_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    @classmethod
    def from_row(cls, row: Row) -> AuthorizationCode:
        """Build from an ``oauth_codes`` row."""
        return cls(
            application_id=row["application_id"], account_id=row["account_id"],
            redirect_uri=row["redirect_uri"], scopes=tuple(row["scopes"].split()),
            code_challenge=row["code_challenge"],
            code_challenge_method=row["code_challenge_method"], expires_at=row["expires_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class AccessToken:
    """An access token: which app, for whom (None: the app itself), with which scopes."""

    id: int
    application_id: int
    account_id: int | None
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> AccessToken:
        """Build from an ``oauth_tokens`` row."""
        return cls(
            id=row["id"], application_id=row["application_id"], account_id=row["account_id"],
            scopes=tuple(row["scopes"].split()), created_at=row["created_at"],
            last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class Authorization:
    """An app a person has let act for them (for the settings page): its live tokens'
    scopes together, when it was first allowed and last used."""

    application: Application
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
