"""Writes domain events as outbox rows inside the caller's transaction."""

import dataclasses
import json
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.events import (
    DomainEvent,
    NotificationRequested,
    PaymentCompleted,
    PaymentRefunded,
    QueueTokenExpired,
    TicketConfirmed,
)
from services.common import topics

INSERT_EVENT = text("""
INSERT INTO outbox (event_id, event_type, event_version, topic, aggregate_type, aggregate_id,
                    trace_id, payload)
VALUES (:event_id, :event_type, 1, :topic, :aggregate_type, :aggregate_id, :trace_id,
        CAST(:payload AS jsonb))
""")


def insert_events_from(parameter: str, *, keyed_by: str | None = None) -> str:
    """An INSERT of the outbox rows given as one JSON array (outbox_row's dicts) in `parameter`,
    to run as a CTE of a larger statement: a transaction's writes and its events in one round
    trip. `parameter` is a placeholder such as "$7", never input. With `keyed_by`, each row
    also carries that uuid field (as `e.<keyed_by>`), for a WHERE the caller appends."""
    key = f", {keyed_by} uuid" if keyed_by else ""
    return f"""
    INSERT INTO outbox (event_id, event_type, event_version, topic, aggregate_type,
                        aggregate_id, trace_id, payload)
    SELECT e.event_id, e.event_type, 1, e.topic, e.aggregate_type, e.aggregate_id, e.trace_id,
           CAST(e.payload AS jsonb)
      FROM jsonb_to_recordset(CAST({parameter} AS jsonb)) AS e(
           event_id uuid, event_type text, topic text, aggregate_type text, aggregate_id text,
           trace_id text, payload text{key})"""  # noqa: S608 (constants only: no input)


# One place decides where each event goes and which aggregate orders it.
ROUTES: dict[type, tuple[str, str, str]] = {
    PaymentCompleted: (topics.PAYMENTS, "payment", "payment_id"),
    QueueTokenExpired: (topics.QUEUE_TOKENS, "queue_token", "token"),
    # A refund follows its payment on the payment's partition, so it is never seen first.
    PaymentRefunded: (topics.PAYMENTS, "payment", "payment_id"),
    TicketConfirmed: (topics.TICKETS, "ticket", "ticket_id"),
    NotificationRequested: (topics.NOTIFICATIONS, "notification", "notification_id"),
}


def _json_default(value: Any) -> str:
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def outbox_row(event: DomainEvent, trace_id: str | None) -> dict[str, Any]:
    topic, aggregate_type, aggregate_field = ROUTES[type(event)]
    # Events are flat: a shallow copy, not asdict's deep one (a twentieth of the saga's CPU).
    payload = {spec.name: getattr(event, spec.name) for spec in dataclasses.fields(event)}
    return {
        "event_id": uuid4(),
        "event_type": type(event).__name__,
        "topic": topic,
        "aggregate_type": aggregate_type,
        "aggregate_id": str(payload[aggregate_field]),
        "trace_id": trace_id,
        "payload": json.dumps(payload, default=_json_default),
    }


async def add_events(
    conn: AsyncConnection, events: list[DomainEvent], trace_id: str | None
) -> None:
    if events:
        await conn.execute(INSERT_EVENT, [outbox_row(event, trace_id) for event in events])
