"""The relay's side of the outbox: claim rows with a lease, settle a batch, purge published rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.booking.adapters.outbox.backlog import OutboxStats, stats
from services.common.settings_types import asyncpg_dsn

# A row is claimable when it is live, not leased by a live relay, and no older row
# of its aggregate is still unpublished (leased elsewhere, pending or dead). So one
# aggregate has at most one row in flight across all relays, and a row is never
# sent before its predecessor was acknowledged: per-aggregate order without any
# coordination beyond row locks. SKIP LOCKED lets concurrent claimers pass by.
CLAIM = """
UPDATE outbox SET lease_token = $1,
    lease_until = clock_timestamp() + make_interval(secs => $2),
    attempts = outbox.attempts + 1
WHERE outbox.id = ANY(ARRAY(
    SELECT o.id FROM outbox o
    WHERE o.published_at IS NULL AND o.dead_at IS NULL
      AND (o.lease_until IS NULL OR o.lease_until < clock_timestamp())
      AND NOT EXISTS (
          SELECT 1 FROM outbox older
          WHERE older.aggregate_id = o.aggregate_id AND older.id < o.id
            AND older.published_at IS NULL)
    ORDER BY o.id
    LIMIT $3
    FOR UPDATE OF o SKIP LOCKED))
RETURNING id, event_id, event_type, event_version, topic, aggregate_type, aggregate_id,
    trace_id, payload::text, occurred_at
"""

# A batch's outcome in one statement (one round trip, atomic without a transaction):
# published rows marked, rows that failed for now released with their error, rows that
# can never be published marked dead. Every part checks the lease token: a relay whose
# lease ran out (and whose rows another relay may have re-claimed) changes nothing. The
# three id lists are disjoint; the count is of the rows marked published.
SETTLE = """
WITH published AS (
    UPDATE outbox SET published_at = clock_timestamp(), lease_token = NULL, lease_until = NULL,
        last_error = NULL
    WHERE id = ANY($1::bigint[]) AND lease_token = $6
    RETURNING 1
), released AS (
    UPDATE outbox SET lease_token = NULL, lease_until = NULL, last_error = failed.error
    FROM unnest($2::bigint[], $3::text[]) AS failed (id, error)
    WHERE outbox.id = failed.id AND outbox.lease_token = $6
), dead AS (
    UPDATE outbox SET dead_at = clock_timestamp(), lease_token = NULL, lease_until = NULL,
        last_error = failed.error
    FROM unnest($4::bigint[], $5::text[]) AS failed (id, error)
    WHERE outbox.id = failed.id AND outbox.lease_token = $6
)
SELECT count(*) FROM published
"""

PURGE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at < clock_timestamp() - make_interval(secs => $1)
    ORDER BY published_at LIMIT $2)
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: uuid.UUID
    event_type: str
    event_version: int
    topic: str
    aggregate_type: str
    aggregate_id: str
    trace_id: str | None
    payload: str  # JSON text, spliced into the envelope as is
    occurred_at: datetime


# The relay's own writes (lease, published mark) need no flush to disk before
# returning: if PostgreSQL crashes and loses one, the row is published again, which
# at-least-once delivery allows. The events themselves were committed durably by
# the booking transaction. This saves a WAL flush per claim and per settle.
#
# The claim and the settle are planned at each execution, for the outbox as it is. From
# its sixth execution a prepared statement runs on a generic plan, kept until the table's
# statistics change. One made while the outbox was small (a new database) scans the whole
# table, and the claim and the settle then read it four times over until autovacuum's
# next ANALYZE, a minute or more later. Under hold + pay on a new database the relay's
# sessions cost 1.3-1.75 ms of PostgreSQL CPU a payment, against 0.37-0.52 ms planned at
# each execution (about 0.16 ms of it planning); PostgreSQL's whole CPU a payment fell
# from 4.07-4.12 to 3.41-3.62 ms (bench holdpay, interleaved; 907db6c).
SERVER_SETTINGS = {"application_name": "outbox-relay", "synchronous_commit": "off",
                   "plan_cache_mode": "force_custom_plan"}


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo on release: the store's statements leave no session state (no
    LISTEN, cursor, lock or SET; the pool itself rolls back a transaction left open),
    so asyncpg's default reset, a round trip per release, is skipped. py-spy put that
    reset at 8 % of the relay's CPU under hold + pay."""


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=1, max_size=size,
        command_timeout=60, server_settings=SERVER_SETTINGS, reset=_keep_session,
    )


class OutboxStore:
    """The relay's side of the outbox, each call one statement on a pooled connection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, token: uuid.UUID, lease_seconds: float, limit: int) -> list[OutboxRow]:
        """Lease up to `limit` claimable rows to `token`, oldest first."""
        async with self._pool.acquire() as connection:
            records = await connection.fetch(CLAIM, token, lease_seconds, limit)
        rows = [OutboxRow(*record) for record in records]
        rows.sort(key=lambda row: row.id)
        return rows

    async def settle(
        self,
        token: uuid.UUID,
        published: list[int],
        failed: list[tuple[int, str]],
        dead: list[tuple[int, str]],
    ) -> int:
        """Record a batch's outcome in one statement; return how many rows were marked published."""
        async with self._pool.acquire() as connection:
            marked = await connection.fetchval(SETTLE, published, *_columns(failed), *_columns(dead), token)
        return int(marked)

    async def stats(self) -> OutboxStats:
        async with self._pool.acquire() as connection:
            return await stats(connection)

    async def purge_published(self, retention_seconds: float, chunk: int = 5000) -> int:
        """Delete rows published longer ago than the retention, in chunks; return the count."""
        total = 0
        while True:
            async with self._pool.acquire() as connection:
                deleted = _count(await connection.execute(PURGE, retention_seconds, chunk))
            total += deleted
            if deleted < chunk:
                return total


def _columns(items: list[tuple[int, str]]) -> tuple[list[int], list[str]]:
    return [row_id for row_id, _ in items], [error for _, error in items]


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
