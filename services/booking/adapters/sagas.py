"""Ticket saga state, processed-event tracking and the venue's view of a ticket in PostgreSQL."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters.outbox import insert_events_from, rows_parameter

MARK_PROCESSED = """
INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING 1
"""
# The saga's first step for PaymentCompleted events, one statement (its own transaction)
# for all the events handled at once: skip an event already processed; read what the
# venue needs; open the saga or count another pass. A saga that is no longer REGISTERING
# is left alone and its event marked processed (the upsert returns no row only then).
# `processed` and `started` say which case each is; no context means an unknown payment.
# One row per input row, in input order; no payment twice in one call (its upsert would
# touch a row twice).
CLAIM = """
WITH input AS (
    SELECT * FROM unnest(CAST($2 AS uuid[]), CAST($3 AS uuid[]), CAST($4 AS uuid[]))
           WITH ORDINALITY AS i(event_id, payment_id, ticket_id, n)
), processed AS (
    SELECT i.event_id FROM input i
      JOIN processed_events pe ON pe.consumer = $1 AND pe.event_id = i.event_id
), context AS (
    SELECT i.event_id, i.payment_id, i.ticket_id, c.title AS concert_title, s.starts_at,
           COALESCE(u.name, u.id) AS holder
      FROM input i
      JOIN payments p ON p.id = i.payment_id
      JOIN tickets t ON t.payment_id = p.id
      JOIN schedules s ON s.id = t.schedule_id
      JOIN concerts c ON c.id = s.concert_id
      JOIN users u ON u.id = p.user_id
     WHERE i.event_id NOT IN (SELECT event_id FROM processed)
), started AS (
    INSERT INTO ticket_sagas AS s (payment_id, ticket_id, status, passes, started_at, updated_at)
    SELECT payment_id, ticket_id, 'REGISTERING', 1, $5, $5 FROM context ORDER BY payment_id
    ON CONFLICT (payment_id) DO UPDATE
       SET passes = s.passes + 1, updated_at = $5 WHERE s.status = 'REGISTERING'
    RETURNING payment_id
), finished AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, event_id FROM context WHERE payment_id NOT IN (SELECT payment_id FROM started)
    ON CONFLICT DO NOTHING
)
SELECT i.event_id IN (SELECT event_id FROM processed) AS processed,
       i.payment_id IN (SELECT payment_id FROM started) AS started,
       c.concert_title, c.starts_at, c.holder
  FROM input i LEFT JOIN context c ON c.event_id = i.event_id
 ORDER BY i.n
"""
# The saga's last step for payments the venue registered, one statement for all those
# settled at once: mark each event processed, close its saga, confirm its ticket, write
# its events. Each step runs only if the one before it did, per payment: a twin delivery
# of the same event waits on the processed-event key and then writes nothing; a delivery
# of another event for the same payment waits on the saga row and finds it closed. One
# row per input row, in input order: whether this call closed that saga.
SETTLE_CONFIRMED = f"""
WITH input AS (
    SELECT * FROM unnest(CAST($2 AS uuid[]), CAST($3 AS uuid[]), CAST($4 AS uuid[]),
                         CAST($5 AS int[]))
           WITH ORDINALITY AS i(event_id, payment_id, ticket_id, attempts, n)
), marked AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, event_id FROM input ORDER BY event_id
    ON CONFLICT DO NOTHING RETURNING event_id
), finished AS (
    UPDATE ticket_sagas s SET status = 'CONFIRMED', reason = NULL, venue_attempts = i.attempts,
           updated_at = $6, finished_at = $6
      FROM input i
     WHERE s.payment_id = i.payment_id AND s.status = 'REGISTERING'
       AND i.event_id IN (SELECT event_id FROM marked)
    RETURNING s.payment_id
), ticket AS (
    UPDATE tickets t SET status = 'CONFIRMED', updated_at = $6
      FROM input i
     WHERE t.id = i.ticket_id AND t.status = 'PENDING'
       AND i.payment_id IN (SELECT payment_id FROM finished)
), events AS ({insert_events_from("$7", keyed_by="payment_id")}
     WHERE e.payment_id IN (SELECT payment_id FROM finished)
)
SELECT i.payment_id IN (SELECT payment_id FROM finished) AS done FROM input i ORDER BY i.n
"""  # noqa: S608 (constants only: no input)
# The compensation path (rare) closes the saga inside its refund transaction. Locks the
# saga row first: a twin delivery finishing at the same time waits here and then finds
# the saga closed.
FINISH = """
UPDATE ticket_sagas SET status = $2, reason = $3, venue_attempts = $4,
       updated_at = $5, finished_at = $5
 WHERE payment_id = $1 AND status = 'REGISTERING'
RETURNING 1
"""
LIST = text("""
SELECT s.payment_id, s.ticket_id, s.status, s.passes, s.venue_attempts, s.reason, s.started_at,
       s.updated_at, s.finished_at, t.status AS ticket_status, p.status AS payment_status
  FROM ticket_sagas s JOIN tickets t ON t.id = s.ticket_id JOIN payments p ON p.id = s.payment_id
 WHERE (CAST(:payment_id AS uuid) IS NULL OR s.payment_id = :payment_id)
   AND (CAST(:status AS text) IS NULL OR s.status = :status)
 ORDER BY s.updated_at DESC LIMIT :limit
""")


@dataclass(frozen=True)
class RegistrationContext:
    concert_title: str
    starts_at: datetime
    holder: str


@dataclass(frozen=True)
class Claim:
    """What the saga's first step found: a repeat, an unknown payment, or a saga to run."""

    processed: bool  # the event was handled before
    started: bool  # the saga is open (REGISTERING) for this pass
    context: RegistrationContext | None  # None: no such payment with a ticket


@dataclass(frozen=True)
class ClaimRequest:
    event_id: UUID
    payment_id: UUID
    ticket_id: UUID


@dataclass(frozen=True)
class Confirmation:
    """A payment the venue registered: its event, its attempts and the events it raises."""

    event_id: UUID
    payment_id: UUID
    ticket_id: UUID
    attempts: int
    outbox_rows: list[dict[str, Any]]


async def claim_many(conn: asyncpg.Connection, consumer: str, requests: list[ClaimRequest],
                     now: datetime) -> list[Claim]:
    """The first step for each request, in one statement; one Claim per request, in order."""
    rows = await conn.fetch(
        CLAIM, consumer, [r.event_id for r in requests], [r.payment_id for r in requests],
        [r.ticket_id for r in requests], now,
    )
    return [_claim(row) for row in rows]


def _claim(row: asyncpg.Record) -> Claim:
    context = None
    if row["concert_title"] is not None:
        context = RegistrationContext(row["concert_title"], row["starts_at"], row["holder"])
    return Claim(row["processed"], row["started"], context)


async def settle_confirmed_many(conn: asyncpg.Connection, consumer: str,
                                confirmations: list[Confirmation], now: datetime) -> list[bool]:
    """Close each saga as CONFIRMED with its events, in one statement; per confirmation,
    False when another delivery had closed it."""
    outbox_rows = [{**row, "payment_id": c.payment_id} for c in confirmations for row in c.outbox_rows]
    rows = await conn.fetch(
        SETTLE_CONFIRMED, consumer, [c.event_id for c in confirmations],
        [c.payment_id for c in confirmations], [c.ticket_id for c in confirmations],
        [c.attempts for c in confirmations], now, rows_parameter(outbox_rows),
    )
    return [bool(row["done"]) for row in rows]


class PostgresSagaLog:
    """The compensation's saga bookkeeping inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def mark_processed(self, consumer: str, event_id: UUID) -> bool:
        return await self._conn.fetchval(MARK_PROCESSED, consumer, event_id) is not None

    async def finish(self, payment_id: UUID, status: str, reason: str | None, attempts: int,
                     now: datetime) -> bool:
        return await self._conn.fetchval(FINISH, payment_id, status, reason, attempts, now) is not None


async def list_sagas(
    conn: AsyncConnection, payment_id: UUID | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    params = {"payment_id": payment_id, "status": status, "limit": limit}
    return [dict(row._mapping) for row in await conn.execute(LIST, params)]
