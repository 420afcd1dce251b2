"""The spent_queue_tokens table: every statement over it, on asyncpg.

A payment writes its spent token in its own transaction (`insert_spent_tokens_from`, a
CTE of the payment's statement, or of the unit of work's last one); booking-worker
token-expiry removes each token from Redis and only then deletes its row (`SpentTokens`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services.common.settings_types import asyncpg_dsn


def insert_spent_tokens_from(tokens: str, users: str) -> str:
    """An INSERT of the spent tokens given as two parallel text arrays, to run as a CTE of
    the caller's statement. `tokens` and `users` are placeholders such as "$12", never input."""
    return f"""
    INSERT INTO spent_queue_tokens (token, user_id)
    SELECT * FROM unnest(CAST({tokens} AS text[]), CAST({users} AS text[]))"""  # noqa: S608 (constants only: no input)


# Takes the oldest rows no other sweeper holds; the rows stay locked until COMMIT, which
# comes only after Redis let the tokens go, and a rollback gives them back.
TAKE = """
DELETE FROM spent_queue_tokens WHERE id = ANY(ARRAY(
    SELECT id FROM spent_queue_tokens ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
RETURNING token
"""

BACKLOG = """
SELECT count(*),
       coalesce(extract(epoch FROM clock_timestamp() - min(recorded_at)), 0)::float8
  FROM spent_queue_tokens
"""

# A row deleted and then lost in a crash is swept again: removing a token is idempotent.
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


class SpentTokens:
    """The sweeper's side of the table, on its own pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sweep(self, limit: int, remove: Callable[[Sequence[str]], Awaitable[None]]) -> int:
        """Take up to `limit` rows, `remove` their tokens, and delete the rows only if it
        returned; return how many were swept. An error rolls the rows back for a later sweep."""
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
