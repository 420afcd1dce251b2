"""Ticket saga state, processed-event tracking and the venue's view of a ticket in PostgreSQL."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters.outbox import insert_events_from

MARK_PROCESSED = text("""
INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)
ON CONFLICT DO NOTHING RETURNING 1
""")
# The saga's first step for one PaymentCompleted event, in one statement (its own
# transaction): skip an event already processed; read what the venue needs; open the
# saga or count another pass. A saga that is no longer REGISTERING is left alone and the
# event marked processed (the upsert returns no row only then). `processed` and
# `started` say which case this is; no context row means an unknown payment.
CLAIM = """
WITH processed AS (
    SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2
), context AS (
    SELECT c.title AS concert_title, s.starts_at, COALESCE(u.name, u.id) AS holder
      FROM payments p
      JOIN tickets t ON t.payment_id = p.id
      JOIN schedules s ON s.id = t.schedule_id
      JOIN concerts c ON c.id = s.concert_id
      JOIN users u ON u.id = p.user_id
     WHERE p.id = $3 AND NOT EXISTS (SELECT 1 FROM processed)
), started AS (
    INSERT INTO ticket_sagas AS s (payment_id, ticket_id, status, passes, started_at, updated_at)
    SELECT $3, $4, 'REGISTERING', 1, $5, $5 FROM context
    ON CONFLICT (payment_id) DO UPDATE
       SET passes = s.passes + 1, updated_at = $5 WHERE s.status = 'REGISTERING'
    RETURNING 1
), finished AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, $2 FROM context WHERE NOT EXISTS (SELECT 1 FROM started)
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM processed) AS processed, EXISTS (SELECT 1 FROM started) AS started,
       context.concert_title, context.starts_at, context.holder
  FROM (SELECT 1) AS one LEFT JOIN context ON true
"""
# The saga's last step when the venue registered the ticket, in one statement: mark the
# event processed, close the saga, confirm the ticket, write its events. Each step runs
# only if the one before it did: a twin delivery of the same event waits on the
# processed-event key and then writes nothing; a delivery of another event for the same
# payment waits on the saga row and finds it closed.
SETTLE_CONFIRMED = f"""
WITH marked AS (
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING RETURNING 1
), finished AS (
    UPDATE ticket_sagas SET status = 'CONFIRMED', reason = NULL, venue_attempts = $5,
           updated_at = $6, finished_at = $6
     WHERE payment_id = $3 AND status = 'REGISTERING' AND EXISTS (SELECT 1 FROM marked)
    RETURNING 1
), ticket AS (
    UPDATE tickets SET status = 'CONFIRMED', updated_at = $6
     WHERE id = $4 AND status = 'PENDING' AND EXISTS (SELECT 1 FROM finished)
), events AS ({insert_events_from("$7")}
     WHERE EXISTS (SELECT 1 FROM finished)
)
SELECT EXISTS (SELECT 1 FROM finished)
"""  # noqa: S608 (constants only: no input)
# The compensation path (rare) closes the saga inside its refund transaction. Locks the
# saga row first: a twin delivery finishing at the same time waits here and then finds
# the saga closed.
FINISH = text("""
UPDATE ticket_sagas SET status = :status, reason = :reason, venue_attempts = :attempts,
       updated_at = :now, finished_at = :now
 WHERE payment_id = :payment_id AND status = 'REGISTERING'
RETURNING 1
""")
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


async def claim(conn: asyncpg.Connection, consumer: str, event_id: UUID, payment_id: UUID,
                ticket_id: UUID, now: datetime) -> Claim:
    row = await conn.fetchrow(CLAIM, consumer, event_id, payment_id, ticket_id, now)
    assert row is not None  # the outer SELECT always has its one row
    context = None
    if row["concert_title"] is not None:
        context = RegistrationContext(row["concert_title"], row["starts_at"], row["holder"])
    return Claim(row["processed"], row["started"], context)


async def settle_confirmed(conn: asyncpg.Connection, consumer: str, event_id: UUID,
                           payment_id: UUID, ticket_id: UUID, attempts: int, now: datetime,
                           outbox_rows: list[dict[str, Any]]) -> bool:
    """Close the saga as CONFIRMED with its events; False when another delivery closed it."""
    return bool(await conn.fetchval(
        SETTLE_CONFIRMED, consumer, event_id, payment_id, ticket_id, attempts, now,
        json.dumps(outbox_rows, default=str),
    ))


async def mark_processed(conn: AsyncConnection, consumer: str, event_id: UUID) -> bool:
    """Record the event as handled; False when it already was (a twin got there first)."""
    params = {"consumer": consumer, "event_id": event_id}
    return (await conn.execute(MARK_PROCESSED, params)).first() is not None


async def finish(
    conn: AsyncConnection, payment_id: UUID, status: str, reason: str | None, attempts: int,
    now: datetime,
) -> bool:
    """Close the saga; False when it was already closed."""
    row = (await conn.execute(FINISH, {
        "payment_id": payment_id, "status": status, "reason": reason, "attempts": attempts,
        "now": now,
    })).first()
    return row is not None


async def list_sagas(
    conn: AsyncConnection, payment_id: UUID | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    params = {"payment_id": payment_id, "status": status, "limit": limit}
    return [dict(row._mapping) for row in await conn.execute(LIST, params)]
