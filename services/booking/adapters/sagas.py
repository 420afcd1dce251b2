"""Ticket saga state, processed-event tracking and the venue's view of a ticket in PostgreSQL."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

MARK_PROCESSED = text("""
INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)
ON CONFLICT DO NOTHING RETURNING 1
""")
IS_PROCESSED = text("SELECT 1 FROM processed_events WHERE consumer = :consumer AND event_id = :event_id")
# Counts a pass at the venue; a finished saga is returned untouched.
START = text("""
INSERT INTO ticket_sagas AS s (payment_id, ticket_id, status, passes, started_at, updated_at)
VALUES (:payment_id, :ticket_id, 'REGISTERING', 1, :now, :now)
ON CONFLICT (payment_id) DO UPDATE
   SET passes = s.passes + 1, updated_at = :now WHERE s.status = 'REGISTERING'
RETURNING status
""")
STATUS = text("SELECT status FROM ticket_sagas WHERE payment_id = :payment_id")
# Locks the saga row first: a twin delivery finishing at the same time waits here and
# then finds the saga closed.
FINISH = text("""
UPDATE ticket_sagas SET status = :status, reason = :reason, venue_attempts = :attempts,
       updated_at = :now, finished_at = :now
 WHERE payment_id = :payment_id AND status = 'REGISTERING'
RETURNING 1
""")
CONFIRM_TICKET = text("""
UPDATE tickets SET status = 'CONFIRMED', updated_at = :now WHERE id = :ticket_id AND status = 'PENDING'
""")
REGISTRATION_CONTEXT = text("""
SELECT c.title AS concert_title, s.starts_at, COALESCE(u.name, u.id) AS holder
  FROM payments p
  JOIN tickets t ON t.payment_id = p.id
  JOIN schedules s ON s.id = t.schedule_id
  JOIN concerts c ON c.id = s.concert_id
  JOIN users u ON u.id = p.user_id
 WHERE p.id = :payment_id
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


async def is_processed(conn: AsyncConnection, consumer: str, event_id: UUID) -> bool:
    params = {"consumer": consumer, "event_id": event_id}
    return (await conn.execute(IS_PROCESSED, params)).first() is not None


async def mark_processed(conn: AsyncConnection, consumer: str, event_id: UUID) -> bool:
    """Record the event as handled; False when it already was (a twin got there first)."""
    params = {"consumer": consumer, "event_id": event_id}
    return (await conn.execute(MARK_PROCESSED, params)).first() is not None


async def start(conn: AsyncConnection, payment_id: UUID, ticket_id: UUID, now: datetime) -> str:
    """Open the saga or count another pass; return its status (finished ones are left alone)."""
    params = {"payment_id": payment_id, "ticket_id": ticket_id, "now": now}
    row = (await conn.execute(START, params)).first()
    if row is not None:
        return str(row.status)
    return str((await conn.execute(STATUS, {"payment_id": payment_id})).scalar_one())


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


async def confirm_ticket(conn: AsyncConnection, ticket_id: UUID, now: datetime) -> None:
    await conn.execute(CONFIRM_TICKET, {"ticket_id": ticket_id, "now": now})


async def registration_context(conn: AsyncConnection, payment_id: UUID) -> RegistrationContext | None:
    row = (await conn.execute(REGISTRATION_CONTEXT, {"payment_id": payment_id})).first()
    return None if row is None else RegistrationContext(**row._mapping)


async def list_sagas(
    conn: AsyncConnection, payment_id: UUID | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    params = {"payment_id": payment_id, "status": status, "limit": limit}
    return [dict(row._mapping) for row in await conn.execute(LIST, params)]
