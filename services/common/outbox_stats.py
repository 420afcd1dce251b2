"""How far the outbox is behind, in one set-based query: the relay's gauges and the API's
/metrics both read it, so the two can never disagree on what "backlog" means."""

from dataclasses import dataclass

# Live rows (not dead) still unpublished, dead rows (awaiting booking-dlq), the age of the
# oldest live one, in one pass over the unpublished rows; and the age of the newest publish
# (NULL once every published row is purged), one probe of outbox_published_by_age.
# No parameters: asyncpg (the relay) and SQLAlchemy's text() (the API) both take it as is.
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
