"""The sweeper's statements over queue_token_expiries, on asyncpg.

A payment records its spent token there in its own statement (adapters/payments.py), not
yet swept; booking-worker token-expiry takes the rows not swept, removes their tokens from
Redis and only then marks them swept (`QueueTokenExpiries`). The rows stay, as the record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services.common.settings_types import asyncpg_dsn

# Takes the oldest rows no other sweeper holds; the rows stay locked until COMMIT, which
# comes only after Redis let the tokens go, and a rollback gives them back.
TAKE = """
UPDATE queue_token_expiries SET swept_at = now() WHERE token = ANY(ARRAY(
    SELECT token FROM queue_token_expiries WHERE swept_at IS NULL
     ORDER BY expired_at LIMIT $1 FOR UPDATE SKIP LOCKED))
RETURNING token
"""

BACKLOG = """
SELECT count(*),
       coalesce(extract(epoch FROM clock_timestamp() - min(expired_at)), 0)::float8
  FROM queue_token_expiries WHERE swept_at IS NULL
"""

# A row marked swept and then lost in a crash is swept again: removing a token is idempotent.
SERVER_SETTINGS = {"application_name": "token-expiry", "synchronous_commit": "off"}


@dataclass(frozen=True, slots=True)
class Backlog:
    waiting: int
    oldest_age_seconds: float  # 0 when nothing waits


async def create_pool(database_url: str, size: int = 2) -> asyncpg.Pool:
    """A pool that connects on first use: a PostgreSQL still starting fails a sweep, not the start."""
    return await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=0, max_size=size, command_timeout=30, timeout=5,
        server_settings=SERVER_SETTINGS,
    )


class QueueTokenExpiries:
    """The sweeper's side of the table, on its own pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sweep(self, limit: int, remove: Callable[[Sequence[str]], Awaitable[None]]) -> int:
        """Take up to `limit` rows not swept, `remove` their tokens, and mark the rows swept
        only if it returned; return how many were swept. An error rolls the rows back for a
        later sweep."""
        async with self._pool.acquire() as connection, connection.transaction():
            tokens = [record["token"] for record in await connection.fetch(TAKE, limit)]
            if tokens:
                await remove(tokens)
        return len(tokens)

    async def backlog(self) -> Backlog:
        async with self._pool.acquire() as connection:
            record = await connection.fetchrow(BACKLOG)
        assert record is not None
        return Backlog(*record)
