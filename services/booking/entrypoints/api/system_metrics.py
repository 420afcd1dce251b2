"""The system view on the API's /metrics: outbox backlog, consumer lag, DLQ sizes and the
workers' circuit breakers, read at scrape time from PostgreSQL and the broker.

They describe the system, not this process, so they stay out of the per-worker files of
PROMETHEUS_MULTIPROC_DIR (which would add them up): the server worker that answers a
scrape reads them once. Names and meanings are the relay's and the workers' own, so the
alerts and panels, which take max() over every target, read them as they are.

Each source has a timeout, and one that fails only leaves its series out: the scrape
never fails and never waits long. The broker is read at most once per
METRICS_BROKER_CACHE_SECONDS per process, however often the API is scraped.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking.adapters.outbox import OutboxStats
from services.booking.adapters.outbox import stats as read_outbox_stats
from services.booking.config import Settings
from services.common import breaker_states
from services.common.broker_offsets import BrokerOffsets, Offsets, consumer_groups, offset_families

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every family the view may serve; a scrape leaves out those it cannot read now.
FAMILIES = frozenset({
    "outbox_backlog", "outbox_oldest_unpublished_age_seconds", "outbox_dead_rows", "outbox_relay_publishing",
    "kafka_consumer_group_lag", "dlq_messages", "provider_circuit_breaker_state",
})
STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :milliseconds, true)")


class Outage:
    """Logs a source going away and coming back, once each, not on every scrape."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._down = False

    def failed(self, error: BaseException) -> None:
        if not self._down:
            log.warning("/metrics leaves out %s: %s: %s", self._source, type(error).__name__, error)
        self._down = True

    def succeeded(self) -> None:
        if self._down:
            log.info("/metrics shows %s again", self._source)
        self._down = False


class CachedOffsets:
    """The broker's offsets, read again once the last read (or failed read) is `max_age` old.

    One read at a time, shared by the scrapes that arrive meanwhile; a scrape that gives
    up does not cancel it, so its answer still serves the next one.
    """

    def __init__(
        self, reader: BrokerOffsets, max_age: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._reader = reader
        self._max_age = max_age
        self._clock = clock
        self._offsets: Offsets | None = None
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None
        self._outage = Outage("consumer lag and DLQ sizes (broker)")

    async def read(self) -> Offsets | None:
        """The last read if fresh enough, else a new one; None while the broker fails."""
        if self._clock() - self._read_at < self._max_age:
            return self._offsets
        if self._reading is None:
            self._reading = asyncio.create_task(self._refresh(), name="metrics-broker-offsets")
        await asyncio.shield(self._reading)
        return self._offsets

    async def aclose(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _refresh(self) -> None:
        try:
            self._offsets = await self._reader.read()  # bounded by the reader's timeout
        except Exception as error:  # a down broker is a finding, shown by the series' absence
            self._offsets = None
            self._outage.failed(error)
        else:
            self._outage.succeeded()
        finally:
            # A failure is cached too: a down broker costs one slow scrape per max_age.
            self._read_at = self._clock()
            self._reading = None


class SystemView:
    def __init__(self, engine: AsyncEngine, offsets: CachedOffsets, db_timeout: float,
                 stalled_after: float) -> None:
        self._engine = engine
        self._offsets = offsets
        self._db_timeout = db_timeout
        self._stalled_after = stalled_after
        self._outbox_outage = Outage("the outbox backlog (PostgreSQL)")
        self._breakers_outage = Outage("the breaker states (PostgreSQL)")

    async def families(self) -> list[Metric]:
        """Every series of the system view that can be read now."""
        outbox, breakers, offsets = await asyncio.gather(
            self._query(_outbox_stats, self._outbox_outage),
            self._query(breaker_states.current_states, self._breakers_outage),
            self._offsets.read(),
        )
        families: list[Metric] = []
        if outbox is not None:
            families += outbox_families(outbox, self._stalled_after)
        if breakers is not None:
            families.append(breaker_family(breakers))
        if offsets is not None:
            families += offset_families(offsets)
        return families

    async def aclose(self) -> None:
        await self._offsets.aclose()

    async def _query(
        self, query: Callable[[AsyncConnection], Awaitable[T]], outage: Outage
    ) -> T | None:
        try:
            # statement_timeout ends a slow query on the server, leaving the connection fit
            # for reuse; the outer bound also covers the wait for a pooled connection.
            async with asyncio.timeout(self._db_timeout + 0.5), self._engine.connect() as conn:
                await conn.execute(
                    STATEMENT_TIMEOUT, {"milliseconds": str(int(self._db_timeout * 1000))})
                result = await query(conn)
        except Exception as error:  # the scrape answers without these series instead
            outage.failed(error)
            return None
        outage.succeeded()
        return result


def system_view(settings: Settings, engine: AsyncEngine) -> SystemView:
    reader = BrokerOffsets(
        settings.kafka_bootstrap_servers, consumer_groups(settings.consumer_group_prefix),
        settings.metrics_broker_timeout_seconds, client_id="booking-api-offsets",
    )
    return SystemView(
        engine, CachedOffsets(reader, settings.metrics_broker_cache_seconds),
        settings.metrics_db_timeout_seconds, settings.outbox_stalled_after_seconds,
    )


async def _outbox_stats(conn: AsyncConnection) -> OutboxStats:
    # On the connection's own asyncpg driver, inside the transaction that set the timeout.
    raw = await conn.get_raw_connection()
    return await read_outbox_stats(raw.driver_connection)


def outbox_families(stats: OutboxStats, stalled_after: float) -> list[Metric]:
    """The relay's outbox gauges (workers/outbox_relay/metrics.py), same names and meanings."""
    return [
        GaugeMetricFamily("outbox_backlog", "Unpublished live outbox rows.", value=stats.backlog),
        GaugeMetricFamily(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished live outbox row (0 when none).",
            value=stats.oldest_age_seconds,
        ),
        GaugeMetricFamily(
            "outbox_dead_rows", "Outbox rows that can never be published, awaiting the DLQ CLI.",
            value=stats.dead,
        ),
        # The API's own: a relay that exited (refused by the broker, crash-looping) has no
        # series of its own left to say so.
        GaugeMetricFamily(
            "outbox_relay_publishing",
            "0 while live outbox events have waited OUTBOX_STALLED_AFTER_SECONDS and nothing"
            " was published for as long; else 1.",
            value=int(stats.relay_publishing(stalled_after)),
        ),
    ]


def breaker_family(states: dict[str, int]) -> Metric:
    """The workers' provider_circuit_breaker_state, the highest per provider over processes."""
    family = GaugeMetricFamily(
        "provider_circuit_breaker_state",
        "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open (the highest over"
        " the worker processes that reported it recently).",
        labels=["provider"],
    )
    for provider, state in sorted(states.items()):
        family.add_metric([provider], state)
    return family
