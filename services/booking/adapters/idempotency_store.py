"""Stored responses of idempotent requests, keyed by user, route and key.

On the payment path, so on asyncpg directly, in the request's unit of work; the purge runs
in the queue worker's.
"""

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

# A key is live for the 24 hours API.md promises to keep it; a user may hold only so many
# live keys (IDEMPOTENCY_KEYS_PER_USER), or one client could fill the table.
LIVE_HOURS = 24
# A concurrent claim of the same key blocks on the uncommitted row until the first
# request commits (then it finds the stored response) or rolls back (then it wins). No
# row is claimed while the user holds $5 keys younger than $6 hours (counting stops there).
CLAIM = """
INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code)
SELECT $1, $2, $3, $4, 0
 WHERE (SELECT count(*) FROM (
          SELECT 1 FROM idempotency_keys
           WHERE user_id = $1 AND created_at > now() - make_interval(hours => $6) LIMIT $5
        ) AS live) < $5
ON CONFLICT DO NOTHING
RETURNING 1
"""
# While the user holds $2 keys younger than $3 hours: how long until the oldest is not.
UNTIL_BELOW_LIMIT = """
SELECT min(created_at) + make_interval(hours => $3) - now()
  FROM (SELECT created_at FROM idempotency_keys
         WHERE user_id = $1 AND created_at > now() - make_interval(hours => $3)
         ORDER BY created_at LIMIT $2) AS live
HAVING count(*) >= $2
"""
COMPLETE = """
UPDATE idempotency_keys SET status_code = $4, response = CAST($5 AS text)::json
 WHERE user_id = $1 AND scope = $2 AND key = $3
"""
STORE = """
INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code, response)
VALUES ($1, $2, $3, $4, $5, CAST($6 AS text)::json)
ON CONFLICT DO NOTHING
RETURNING 1
"""
LOAD = """
SELECT request_hash, status_code, response::text AS response FROM idempotency_keys
 WHERE user_id = $1 AND scope = $2 AND key = $3 AND status_code > 0
"""
PURGE = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)"


@dataclass(frozen=True)
class IdempotencyKey:
    user_id: str
    scope: str
    key: str
    request_hash: str

    @property
    def names(self) -> tuple[str, str, str]:
        return self.user_id, self.scope, self.key


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: str  # the JSON text exactly as first answered


async def claim(conn: asyncpg.Connection, key: IdempotencyKey, limit: int) -> bool:
    """Claim a new key; False if it exists already or the user holds `limit` live keys."""
    return await conn.fetchval(CLAIM, *key.names, key.request_hash, limit, LIVE_HOURS) is not None


async def until_below_limit(conn: asyncpg.Connection, user_id: str, limit: int) -> timedelta | None:
    """None while `user_id` holds fewer than `limit` live keys; else when it will again."""
    wait: timedelta | None = await conn.fetchval(UNTIL_BELOW_LIMIT, user_id, limit, LIVE_HOURS)
    return wait


async def complete(conn: asyncpg.Connection, key: IdempotencyKey, status_code: int, body: str) -> None:
    await conn.execute(COMPLETE, *key.names, status_code, body)


async def store(conn: asyncpg.Connection, key: IdempotencyKey, status_code: int, body: str) -> bool:
    """Record a response made outside a claim; False if another request got there first."""
    return await conn.fetchval(STORE, *key.names, key.request_hash, status_code, body) is not None


async def load(conn: asyncpg.Connection, key: IdempotencyKey) -> StoredResponse | None:
    row = await conn.fetchrow(LOAD, *key.names)
    if row is None:
        return None
    return StoredResponse(row["request_hash"], row["status_code"], row["response"])


async def purge(conn: asyncpg.Connection, older_than_hours: int) -> int:
    return int((await conn.execute(PURGE, older_than_hours)).rsplit(" ", 1)[-1])
