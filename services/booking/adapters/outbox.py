"""The outbox table: every statement that writes or reads it, on asyncpg.

Writers add rows inside their own transaction (the booking transactions, often as a
CTE of their one statement); the relay claims, settles and purges them; the API's
/metrics and the relay's gauges read the backlog; booking-dlq and `booking-relay
republish` give rows back to the relays; booking-reconcile looks for stuck ones.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.booking.domain.events import (
    DomainEvent,
    NotificationRequested,
    PaymentCompleted,
    PaymentRefunded,
    QueueTokenExpired,
    TicketConfirmed,
)
from services.common import topics
from services.common.settings_types import asyncpg_dsn

# One place decides where each event goes and which aggregate orders it.
ROUTES: dict[type, tuple[str, str, str]] = {
    PaymentCompleted: (topics.PAYMENTS, "payment", "payment_id"),
    QueueTokenExpired: (topics.QUEUE_TOKENS, "queue_token", "token"),
    # A refund follows its payment on the payment's partition, so it is never seen first.
    PaymentRefunded: (topics.PAYMENTS, "payment", "payment_id"),
    TicketConfirmed: (topics.TICKETS, "ticket", "ticket_id"),
    NotificationRequested: (topics.NOTIFICATIONS, "notification", "notification_id"),
}


def insert_events_from(parameter: str, *, keyed_by: str | None = None) -> str:
    """An INSERT of the outbox rows given as one JSON array (outbox_row's dicts) in `parameter`,
    to run alone or as a CTE of a larger statement: a transaction's writes and its events in
    one round trip. `parameter` is a placeholder such as "$7", never input. With `keyed_by`,
    each row also carries that uuid field (as `e.<keyed_by>`), for a WHERE the caller appends."""
    key = f", {keyed_by} uuid" if keyed_by else ""
    return f"""
    INSERT INTO outbox (event_id, event_type, event_version, topic, aggregate_type,
                        aggregate_id, trace_id, payload)
    SELECT e.event_id, e.event_type, 1, e.topic, e.aggregate_type, e.aggregate_id, e.trace_id,
           CAST(e.payload AS jsonb)
      FROM jsonb_to_recordset(CAST({parameter} AS jsonb)) AS e(
           event_id uuid, event_type text, topic text, aggregate_type text, aggregate_id text,
           trace_id text, payload text{key})"""  # noqa: S608 (constants only: no input)


INSERT_EVENTS = insert_events_from("$1")


def _json_default(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def outbox_row(event: DomainEvent, trace_id: str | None) -> dict[str, Any]:
    topic, aggregate_type, aggregate_field = ROUTES[type(event)]
    # Events are flat: a shallow copy, not asdict's deep one (a twentieth of the saga's CPU).
    payload = {spec.name: getattr(event, spec.name) for spec in dataclasses.fields(event)}
    return {
        "event_id": uuid.uuid4(),
        "event_type": type(event).__name__,
        "topic": topic,
        "aggregate_type": aggregate_type,
        "aggregate_id": str(payload[aggregate_field]),
        "trace_id": trace_id,
        "payload": json.dumps(payload, default=_json_default),
    }


def rows_parameter(rows: Sequence[dict[str, Any]]) -> str:
    """Outbox rows as the JSON array insert_events_from reads."""
    return json.dumps(rows, default=str)


async def add_rows(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows in the caller's transaction, one statement for all of them."""
    if rows:
        await conn.execute(INSERT_EVENTS, rows_parameter(rows))


async def add_events(
    conn: asyncpg.Connection, events: Sequence[DomainEvent], trace_id: str | None
) -> None:
    await add_rows(conn, [outbox_row(event, trace_id) for event in events])


async def wake_relays(conn: asyncpg.Connection) -> None:
    """Wake the relays at commit, rather than at their next poll."""
    await conn.execute("SELECT pg_notify('outbox', '')")


# --- The relay -----------------------------------------------------------------------

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
SERVER_SETTINGS = {"application_name": "outbox-relay", "synchronous_commit": "off"}


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


# --- How far behind: the relay's gauges and the API's /metrics -----------------------

# Live rows (not dead) still unpublished, dead rows (awaiting booking-dlq), the age of the
# oldest live one, in one pass over the unpublished rows; and the age of the newest publish
# (NULL once every published row is purged), one probe of outbox_published_by_age.
STATS = """
SELECT count(*) FILTER (WHERE dead_at IS NULL) AS backlog,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
       coalesce(extract(epoch FROM clock_timestamp()
           - min(occurred_at) FILTER (WHERE dead_at IS NULL)), 0)::float8 AS oldest_age,
       extract(epoch FROM clock_timestamp() - (
           SELECT max(published_at) FROM outbox WHERE published_at IS NOT NULL))::float8
           AS last_published_age
FROM outbox WHERE published_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    dead: int
    oldest_age_seconds: float
    last_published_age_seconds: float | None  # None: nothing published within the retention

    def relay_publishing(self, stalled_after: float) -> bool:
        """False while live events have waited `stalled_after` seconds and no relay has
        published anything for as long: a relay that is down, refused or stuck."""
        if self.oldest_age_seconds < stalled_after:  # nothing waits (age 0), or not for long
            return True
        last = self.last_published_age_seconds
        return last is not None and last < stalled_after


async def stats(conn: asyncpg.Connection) -> OutboxStats:
    record = await conn.fetchrow(STATS)
    assert record is not None
    return OutboxStats(*record)


# --- Rows given back to the relays: booking-dlq and `booking-relay republish` --------

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



# --- booking-reconcile ---------------------------------------------------------------

# Payment events still unpublished past the grace period. The partial index
# outbox_unpublished_by_aggregate holds exactly the rows looked at; younger rows are the
# relay's normal work in progress. $1 the grace period, $2 a schedule, $3 a user (NULL:
# all); the reconcile's invariant runner wraps it (services/booking/adapters/invariants.py).
PAYMENT_EVENTS_UNPUBLISHED = """
SELECT o.aggregate_id AS id,
       o.event_type || ' (outbox ' || o.id || ') '
       || CASE WHEN o.dead_at IS NOT NULL THEN 'dead: ' || coalesce(o.last_error, 'unpublishable')
               ELSE 'unpublished after ' || o.attempts || ' attempt(s) since '
                    || date_trunc('second', o.occurred_at) END
       AS detail
  FROM outbox o
  JOIN payments p ON p.id = CAST(o.aggregate_id AS uuid)
  JOIN reservations r ON r.id = p.reservation_id
 WHERE o.published_at IS NULL AND o.aggregate_type = 'payment'
   AND o.occurred_at < now() - make_interval(secs => $1)
   AND (CAST($2 AS uuid) IS NULL OR r.schedule_id = $2)
   AND (CAST($3 AS text) IS NULL OR p.user_id = $3)
"""
