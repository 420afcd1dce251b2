"""The outbox table: every statement that writes or reads it, on asyncpg.

Writers add rows inside their own transaction (the booking transactions, often as a
CTE of their one statement: writer.py); the relay claims, settles and purges them
(relay.py); the API's /metrics, the relay's gauges and booking-reconcile read how far
behind it is (backlog.py); booking-dlq and `booking-relay republish` give rows back to
the relays (requeue.py). Import from here, not from the modules.
"""

from services.booking.adapters.outbox.backlog import PAYMENT_EVENTS_UNPUBLISHED, OutboxStats, stats
from services.booking.adapters.outbox.relay import OutboxRow, OutboxStore, create_pool
from services.booking.adapters.outbox.requeue import (
    dead_rows,
    delete_dead,
    requeue_dead,
    requeue_published,
    wake_relays,
)
from services.booking.adapters.outbox.writer import (
    ROUTES,
    add_events,
    add_rows,
    insert_events_from,
    outbox_row,
    outbox_rows,
    rows_parameter,
)

__all__ = [
    "PAYMENT_EVENTS_UNPUBLISHED",
    "ROUTES",
    "OutboxRow",
    "OutboxStats",
    "OutboxStore",
    "add_events",
    "add_rows",
    "create_pool",
    "dead_rows",
    "delete_dead",
    "insert_events_from",
    "outbox_row",
    "outbox_rows",
    "requeue_dead",
    "requeue_published",
    "rows_parameter",
    "stats",
    "wake_relays",
]
