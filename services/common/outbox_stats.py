"""How far the outbox is behind, in one set-based query: the relay's gauges and the API's
/metrics both read it, so the two can never disagree on what "backlog" means."""

from dataclasses import dataclass

# Live rows (not dead) still unpublished, dead rows (awaiting booking-dlq), and the age of
# the oldest live one, in one pass over the unpublished rows.
# No parameters: asyncpg (the relay) and SQLAlchemy's text() (the API) both take it as is.
STATS = """
SELECT count(*) FILTER (WHERE dead_at IS NULL) AS backlog,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
       coalesce(extract(epoch FROM clock_timestamp()
           - min(occurred_at) FILTER (WHERE dead_at IS NULL)), 0)::float8 AS oldest_age
FROM outbox WHERE published_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    dead: int
    oldest_age_seconds: float
