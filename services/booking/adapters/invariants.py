"""The system's invariants as set-based SQL: each query returns the ids that break one.

Every query is one pass over its tables (hash joins, partial indexes), never a loop
per row, so the whole set runs in seconds on millions of rows. Each one returns
`id` and `detail` columns. The schedule and the user narrow a query when given; when
NULL the planner folds the condition away. Run on asyncpg, as the outbox store's own
invariant is: each invariant names its positional parameters in order.
"""

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg

from services.booking.adapters import outbox

SOLD_SEAT_BACKED = """
SELECT s.schedule_id || '/' || s.seat_no AS id,
       concat_ws(' and ', CASE WHEN p.id IS NULL THEN 'no PAID payment' END,
                 CASE WHEN t.id IS NULL THEN 'no live ticket' END)
       || ' (reservation ' || s.reservation_id || ')' AS detail
  FROM seats s
  LEFT JOIN payments p ON p.reservation_id = s.reservation_id AND p.status = 'PAID'
  LEFT JOIN tickets t ON t.payment_id = p.id AND t.status <> 'VOID'
       AND t.schedule_id = s.schedule_id AND t.seat_no = s.seat_no
 WHERE s.status = 'SOLD' AND (p.id IS NULL OR t.id IS NULL)
   AND (CAST($1 AS uuid) IS NULL OR s.schedule_id = $1)
"""

# Two owners of one seat are never both visible to a user filter: schedules only.
SEAT_SOLD_ONCE = """
SELECT r.schedule_id || '/' || r.seat_no AS id,
       count(*) || ' PAID payments: ' || string_agg(CAST(p.id AS text), ', ' ORDER BY p.id) AS detail
  FROM payments p JOIN reservations r ON r.id = p.reservation_id
 WHERE p.status = 'PAID' AND (CAST($1 AS uuid) IS NULL OR r.schedule_id = $1)
 GROUP BY r.schedule_id, r.seat_no HAVING count(*) > 1
UNION ALL
SELECT t.schedule_id || '/' || t.seat_no,
       count(*) || ' live tickets: ' || string_agg(CAST(t.id AS text), ', ' ORDER BY t.id)
  FROM tickets t
 WHERE t.status <> 'VOID' AND (CAST($1 AS uuid) IS NULL OR t.schedule_id = $1)
 GROUP BY t.schedule_id, t.seat_no HAVING count(*) > 1
"""

PAID_PAYMENT_KEEPS_SEAT = """
SELECT CAST(p.id AS text) AS id,
       'seat ' || r.schedule_id || '/' || r.seat_no || ' is ' || coalesce(s.status, 'missing')
       || coalesce(' for reservation ' || s.reservation_id, '') AS detail
  FROM payments p
  JOIN reservations r ON r.id = p.reservation_id
  LEFT JOIN seats s ON s.schedule_id = r.schedule_id AND s.seat_no = r.seat_no
 WHERE p.status = 'PAID'
   AND (s.status IS DISTINCT FROM 'SOLD' OR s.reservation_id IS DISTINCT FROM p.reservation_id)
   AND (CAST($1 AS uuid) IS NULL OR r.schedule_id = $1)
   AND (CAST($2 AS text) IS NULL OR p.user_id = $2)
"""

WALLET_MATCHES_HISTORY = """
SELECT coalesce(w.user_id, h.user_id) AS id,
       'balance ' || coalesce(CAST(w.balance AS text), '(no wallet)')
       || ', history sums to ' || coalesce(h.total, 0) AS detail
  FROM (SELECT user_id, balance FROM wallets
         WHERE (CAST($1 AS text) IS NULL OR user_id = $1)) AS w
  FULL JOIN (
        SELECT user_id, sum(CASE WHEN type = 'USE' THEN -amount ELSE amount END) AS total
          FROM point_history WHERE (CAST($1 AS text) IS NULL OR user_id = $1)
         GROUP BY user_id
       ) AS h ON h.user_id = w.user_id
 WHERE coalesce(w.balance, 0) <> coalesce(h.total, 0)
"""

REFUNDED_PAYMENT_RELEASED = """
SELECT CAST(p.id AS text) AS id,
       concat_ws('; ',
           CASE WHEN s.reservation_id = p.reservation_id
                THEN 'seat ' || s.schedule_id || '/' || s.seat_no || ' still ' || s.status END,
           CASE WHEN t.status <> 'VOID' THEN 'ticket ' || t.id || ' still ' || t.status END
       ) AS detail
  FROM payments p
  JOIN reservations r ON r.id = p.reservation_id
  JOIN seats s ON s.schedule_id = r.schedule_id AND s.seat_no = r.seat_no
  LEFT JOIN tickets t ON t.payment_id = p.id
 WHERE p.status = 'REFUNDED'
   AND (s.reservation_id = p.reservation_id OR t.status <> 'VOID')
   AND (CAST($1 AS uuid) IS NULL OR r.schedule_id = $1)
   AND (CAST($2 AS text) IS NULL OR p.user_id = $2)
"""

# The saga row is the record of a venue registration: a ticket is CONFIRMED only in
# the transaction that closes its saga as CONFIRMED.
CONFIRMED_TICKET_REGISTERED = """
SELECT CAST(t.id AS text) AS id,
       CASE WHEN s.payment_id IS NULL THEN 'CONFIRMED without a saga record'
            WHEN s.ticket_id <> t.id THEN 'saga ' || s.payment_id || ' names ticket ' || s.ticket_id
            ELSE 'CONFIRMED but its saga is ' || s.status END AS detail
  FROM tickets t LEFT JOIN ticket_sagas s ON s.payment_id = t.payment_id
 WHERE t.status = 'CONFIRMED' AND (s.status IS DISTINCT FROM 'CONFIRMED' OR s.ticket_id <> t.id)
   AND (CAST($1 AS uuid) IS NULL OR t.schedule_id = $1)
   AND (CAST($2 AS text) IS NULL OR t.user_id = $2)
UNION ALL
SELECT CAST(s.ticket_id AS text), 'saga CONFIRMED but ticket is ' || coalesce(t.status, 'missing')
  FROM ticket_sagas s LEFT JOIN tickets t ON t.id = s.ticket_id
 WHERE s.status = 'CONFIRMED' AND t.status IS DISTINCT FROM 'CONFIRMED'
   AND (CAST($1 AS uuid) IS NULL OR t.schedule_id = $1)
   AND (CAST($2 AS text) IS NULL OR t.user_id = $2)
"""

TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL"


@dataclass(frozen=True)
class Scope:
    """Narrow the checks to one schedule and/or one user (None: the whole system)."""

    schedule_id: UUID | None = None
    user_id: str | None = None


Parameter = Literal["schedule_id", "user_id", "grace_seconds"]
SCHEDULE: tuple[Parameter, ...] = ("schedule_id",)
SCHEDULE_AND_USER: tuple[Parameter, ...] = ("schedule_id", "user_id")


@dataclass(frozen=True)
class Invariant:
    name: str
    rule: str
    query: str
    parameters: tuple[Parameter, ...]  # what $1, $2, ... of `query` are
    # A table written by a later migration or another deployable; absent, the check is skipped.
    needs_table: str | None = None


@dataclass(frozen=True)
class Violation:
    id: str
    detail: str


@dataclass(frozen=True)
class Findings:
    violations: tuple[Violation, ...]
    total: int


INVARIANTS = (
    Invariant("sold-seat-backed", "every SOLD seat has one PAID payment and one live ticket",
              SOLD_SEAT_BACKED, SCHEDULE),
    Invariant("seat-sold-once", "no seat has two PAID payments or two live tickets", SEAT_SOLD_ONCE,
              SCHEDULE),
    Invariant("paid-payment-keeps-seat", "every PAID payment's seat is SOLD to its reservation",
              PAID_PAYMENT_KEEPS_SEAT, SCHEDULE_AND_USER),
    Invariant("wallet-matches-history", "each wallet's balance = CHARGE + REFUND - USE of its history",
              WALLET_MATCHES_HISTORY, ("user_id",)),
    Invariant("payment-events-published",
              "every payment's outbox events are published (past the grace period)",
              outbox.PAYMENT_EVENTS_UNPUBLISHED, ("grace_seconds", "schedule_id", "user_id")),
    Invariant("refunded-payment-released", "no REFUNDED payment kept its seat or a live ticket",
              REFUNDED_PAYMENT_RELEASED, SCHEDULE_AND_USER),
    Invariant("confirmed-ticket-registered",
              "every CONFIRMED ticket was registered, per its saga record",
              CONFIRMED_TICKET_REGISTERED, SCHEDULE_AND_USER, needs_table="ticket_sagas"),
)


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval(TABLE_EXISTS, name))


async def find_violations(
    conn: asyncpg.Connection, invariant: Invariant, scope: Scope, grace_seconds: float, max_ids: int
) -> Findings:
    """The first `max_ids` offending ids (ordered) and how many there are in all."""
    values = {"schedule_id": scope.schedule_id, "user_id": scope.user_id, "grace_seconds": grace_seconds}
    arguments = [values[name] for name in invariant.parameters]
    # Our constants only: the invariant's query and the LIMIT's placeholder number.
    query = (
        f"SELECT found.id, found.detail, count(*) OVER () AS total FROM ({invariant.query}) AS found"  # noqa: S608
        f" ORDER BY found.id, found.detail LIMIT ${len(arguments) + 1}"
    )
    rows = await conn.fetch(query, *arguments, max_ids)
    return Findings(
        tuple(Violation(str(row["id"]), str(row["detail"])) for row in rows),
        int(rows[0]["total"]) if rows else 0,
    )
