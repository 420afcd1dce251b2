"""Rows given back to the relays: booking-dlq's dead rows and `booking-relay republish`."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

DEAD_ROWS = """
SELECT id, event_id::text, event_type, topic, aggregate_id, last_error, attempts, dead_at,
       payload::text AS payload
FROM outbox WHERE dead_at IS NOT NULL ORDER BY id
"""
REQUEUE_DEAD = """
UPDATE outbox SET dead_at = NULL, last_error = NULL, lease_token = NULL, lease_until = NULL
WHERE id = $1 AND dead_at IS NOT NULL
"""
DELETE_DEAD = "DELETE FROM outbox WHERE id = $1 AND dead_at IS NOT NULL"

COUNT_PUBLISHED = """
SELECT topic, count(*) AS rows FROM outbox
WHERE published_at >= clock_timestamp() - make_interval(secs => $1) AND dead_at IS NULL
  AND (cardinality($2::text[]) = 0 OR topic = ANY($2::text[]))
GROUP BY topic ORDER BY topic
"""
# Unpublished rows are what the relays claim.
REQUEUE_PUBLISHED = """
WITH requeued AS (
    UPDATE outbox SET published_at = NULL, lease_token = NULL, lease_until = NULL
    WHERE published_at >= clock_timestamp() - make_interval(secs => $1) AND dead_at IS NULL
      AND (cardinality($2::text[]) = 0 OR topic = ANY($2::text[]))
    RETURNING topic)
SELECT topic, count(*) AS rows FROM requeued GROUP BY topic ORDER BY topic
"""


async def dead_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(DEAD_ROWS))


async def requeue_dead(conn: asyncpg.Connection, row_id: int) -> bool:
    """Give a dead row back to the relays; False when it is not dead (any more)."""
    return not (await conn.execute(REQUEUE_DEAD, row_id)).endswith(" 0")


async def delete_dead(conn: asyncpg.Connection, row_id: int) -> bool:
    """Drop a dead row for good, unblocking its aggregate; False when it is not dead."""
    return not (await conn.execute(DELETE_DEAD, row_id)).endswith(" 0")


async def requeue_published(
    conn: asyncpg.Connection, since_seconds: float, topics: Sequence[str], *, dry_run: bool
) -> dict[str, int]:
    """Mark the rows published in the last `since_seconds` unpublished (or only count them
    with `dry_run`); the count per topic."""
    statement = COUNT_PUBLISHED if dry_run else REQUEUE_PUBLISHED
    records = await conn.fetch(statement, since_seconds, list(topics))
    return {record["topic"]: record["rows"] for record in records}


async def wake_relays(conn: asyncpg.Connection) -> None:
    """Wake the relays at commit, rather than at their next poll."""
    await conn.execute("SELECT pg_notify('outbox', '')")

