"""Stored responses of idempotent requests, keyed by user, route and key."""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# A concurrent claim of the same key blocks on the uncommitted row until the first
# request commits (then it finds the stored response) or rolls back (then it wins).
CLAIM = text("""
INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code)
VALUES (:user_id, :scope, :key, :request_hash, 0)
ON CONFLICT DO NOTHING
RETURNING 1
""")
COMPLETE = text("""
UPDATE idempotency_keys SET status_code = :status_code, response = CAST(:response AS json)
 WHERE user_id = :user_id AND scope = :scope AND key = :key
""")
STORE = text("""
INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code, response)
VALUES (:user_id, :scope, :key, :request_hash, :status_code, CAST(:response AS json))
ON CONFLICT DO NOTHING
RETURNING 1
""")
LOAD = text("""
SELECT request_hash, status_code, response::text AS response FROM idempotency_keys
 WHERE user_id = :user_id AND scope = :scope AND key = :key AND status_code > 0
""")
PURGE = text("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => :hours)")


@dataclass(frozen=True)
class IdempotencyKey:
    user_id: str
    scope: str
    key: str
    request_hash: str

    def params(self) -> dict[str, str]:
        return {"user_id": self.user_id, "scope": self.scope, "key": self.key,
                "request_hash": self.request_hash}


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: str  # the JSON text exactly as first answered


async def claim(conn: AsyncConnection, key: IdempotencyKey) -> bool:
    return (await conn.execute(CLAIM, key.params())).first() is not None


async def complete(conn: AsyncConnection, key: IdempotencyKey, status_code: int, body: str) -> None:
    await conn.execute(COMPLETE, {**key.params(), "status_code": status_code, "response": body})


async def store(conn: AsyncConnection, key: IdempotencyKey, status_code: int, body: str) -> bool:
    """Record a response made outside a claim; False if another request got there first."""
    params = {**key.params(), "status_code": status_code, "response": body}
    return (await conn.execute(STORE, params)).first() is not None


async def load(conn: AsyncConnection, key: IdempotencyKey) -> StoredResponse | None:
    row = (await conn.execute(LOAD, key.params())).first()
    if row is None:
        return None
    return StoredResponse(row.request_hash, row.status_code, row.response)


async def purge(conn: AsyncConnection, older_than_hours: int) -> int:
    result = await conn.execute(PURGE, {"hours": older_than_hours})
    return int(result.rowcount)
