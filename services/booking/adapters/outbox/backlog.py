"""How far behind the outbox is: the relay's gauges, the API's /metrics, booking-reconcile."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

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
