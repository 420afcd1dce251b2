"""Writing a transaction's events in the caller's transaction: which topic and aggregate each
event takes, and the INSERT that runs alone or as a CTE of the caller's one statement."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from services.booking.domain.events import (
    DomainEvent,
    NotificationRequested,
    PaymentCompleted,
    PaymentRefunded,
    TicketConfirmed,
)
from services.common import topics

# One place decides where each event goes and which aggregate orders it.
ROUTES: dict[type, tuple[str, str, str]] = {
    PaymentCompleted: (topics.PAYMENTS, "payment", "payment_id"),
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
        # orjson: a tenth of json's time, on the API's payment and the saga's settlement;
        # str() for the UUIDs asyncpg reads, which orjson does not take as uuid.UUID.
        "payload": orjson.dumps(payload, default=str).decode(),
    }


def rows_parameter(rows: Sequence[dict[str, Any]]) -> str:
    """Outbox rows as the JSON array insert_events_from reads."""
    return orjson.dumps(rows, default=str).decode()


def outbox_rows(events: Iterable[DomainEvent], trace_id: str | None) -> list[dict[str, Any]]:
    """A transaction's events as the outbox rows that carry them."""
    return [outbox_row(event, trace_id) for event in events]


async def add_rows(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows in the caller's transaction, one statement for all of them."""
    if rows:
        await conn.execute(INSERT_EVENTS, rows_parameter(rows))


async def add_events(
    conn: asyncpg.Connection, events: Sequence[DomainEvent], trace_id: str | None
) -> None:
    await add_rows(conn, outbox_rows(events, trace_id))

