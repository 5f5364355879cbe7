"""SQL for OAuth apps, authorization codes and access tokens (all secrets stored hashed)."""

from __future__ import annotations

from xnode.oauth.models import AccessToken, Application, AuthorizationCode
from xnode.store.database import Database


async def insert_application(
    db: Database, *, id: int, name: str, website: str | None, redirect_uris: str,
    scopes: str, client_id: str, client_secret_hash: str, now: float,
) -> None:
    """Register an app."""
    await db.execute(
        "INSERT INTO oauth_applications (id, name, website, redirect_uris, scopes, client_id,"
        " client_secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (id, name, website, redirect_uris, scopes, client_id, client_secret_hash, now),
    )


async def get_application(db: Database, application_id: int) -> Application | None:
    """An app by id."""
    row = await db.lookup("SELECT * FROM oauth_applications WHERE id = ?", (application_id,))
    return None if row is None else Application.from_row(row)


async def get_application_by_client(db: Database, client_id: str) -> tuple[Application, str] | None:
    """An app and its secret's hash, by client id."""
    row = await db.lookup("SELECT * FROM oauth_applications WHERE client_id = ?", (client_id,))
    return None if row is None else (Application.from_row(row), row["client_secret_hash"])


async def insert_code(
    db: Database, *, code_hash: str, application_id: int, account_id: int, redirect_uri: str,
    scopes: str, code_challenge: str | None, code_challenge_method: str | None, now: float,
    expires_at: float,
) -> None:
    """Keep an authorization code until it is exchanged or expires."""
    await db.execute(
        "INSERT INTO oauth_codes (code_hash, application_id, account_id, redirect_uri, scopes,"
        " code_challenge, code_challenge_method, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (code_hash, application_id, account_id, redirect_uri, scopes, code_challenge,
         code_challenge_method, now, expires_at),
    )  # fmt: skip


async def take_code(db: Database, code_hash: str) -> AuthorizationCode | None:
    """Remove a code and return it (a code is good for one exchange, even a failed one)."""
    async with db.transaction() as conn:
        rows = list(await conn.execute_fetchall(
            "DELETE FROM oauth_codes WHERE code_hash = ? RETURNING *", (code_hash,)
        ))
    return AuthorizationCode.from_row(rows[0]) if rows else None


async def purge_expired_codes(db: Database, now: float) -> int:
    """Forget codes nobody exchanged in time."""
    return await db.execute("DELETE FROM oauth_codes WHERE expires_at <= ?", (now,))


async def insert_token(
    db: Database, *, id: int, token_hash: str, application_id: int, account_id: int | None,
    scopes: str, now: float,
) -> None:
    """Record a new access token."""
    await db.execute(
        "INSERT INTO oauth_tokens (id, token_hash, application_id, account_id, scopes,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (id, token_hash, application_id, account_id, scopes, now),
    )


async def get_token(db: Database, token_hash: str) -> AccessToken | None:
    """A live (unrevoked) token by its hash."""
    row = await db.lookup(
        "SELECT * FROM oauth_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    )
    return None if row is None else AccessToken.from_row(row)


async def touch_token(db: Database, token_id: int, now: float) -> None:
    """Note that a token was used."""
    await db.execute("UPDATE oauth_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))


async def revoke_token(db: Database, token_hash: str, application_id: int, now: float) -> int:
    """Revoke one of an app's tokens; return the token's id (0 if there was none)."""
    async with db.transaction() as conn:
        rows = list(await conn.execute_fetchall(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE token_hash = ? AND application_id = ?"
            " AND revoked_at IS NULL RETURNING id",
            (now, token_hash, application_id),
        ))
    return int(rows[0]["id"]) if rows else 0


async def revoke_application_tokens(
    db: Database, account_id: int, application_id: int, now: float
) -> list[int]:
    """Revoke every live token an app holds for a person; return their ids."""
    async with db.transaction() as conn:
        rows = list(await conn.execute_fetchall(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE account_id = ? AND application_id = ?"
            " AND revoked_at IS NULL RETURNING id",
            (now, account_id, application_id),
        ))
    return [int(row["id"]) for row in rows]


async def live_tokens_of(db: Database, account_id: int) -> list[tuple[AccessToken, Application]]:
    """A person's live tokens with their apps, newest first."""
    rows = await db.fetchall(
        "SELECT t.id AS token_id, t.application_id, t.account_id, t.scopes AS token_scopes,"
        " t.created_at AS token_created_at, t.last_used_at, t.revoked_at, a.*"
        " FROM oauth_tokens t JOIN oauth_applications a ON a.id = t.application_id"
        " WHERE t.account_id = ? AND t.revoked_at IS NULL ORDER BY t.id DESC",
        (account_id,),
    )
    return [
        (
            AccessToken(
                id=row["token_id"], application_id=row["application_id"],
                account_id=row["account_id"], scopes=tuple(row["token_scopes"].split()),
                created_at=row["token_created_at"], last_used_at=row["last_used_at"],
                revoked_at=row["revoked_at"],
            ),
            Application.from_row(row),
        )
        for row in rows
    ]  # fmt: skip
