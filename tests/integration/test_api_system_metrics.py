"""The API's /metrics as a view of the whole system (API.md §2): outbox backlog, consumer
lag, DLQ sizes and the workers' circuit breakers, read at scrape time from a real
PostgreSQL and a real broker, and left out, never failing the scrape, when either is away.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.booking.config import Settings
from services.common import topics
from services.common.breaker import BreakerState
from services.common.http_resilience import (
    BreakerOpen,
    ResiliencePolicy,
    ResilientCaller,
    RetryPolicy,
    TransientFailure,
    provider_http,
)
from services.common.kafka import KafkaSettings, ensure_topics, system_topics
from tests.relay_support import asyncpg_dsn, consume, insert_events, produce
from tests.scrapes import Scrape, api, scrape, until
from tests.support import Booking, eventually, free_port, make_settings, sql
from workers.common.breaker_publisher import BreakerStatePublisher, publishing_breaker_states
from workers.common.database import create_worker_engine
from workers.common.dead_letters import park
from workers.devstack.embedded import RunningServer

pytestmark = pytest.mark.integration

# One attempt per call, open after two failures, no trial for a minute.
TRIPS_FAST = ResiliencePolicy(timeout=1, retry=RetryPolicy(max_attempts=1), breaker_fail_max=2,
                              breaker_reset_timeout=60)


class Silent:
    """A server that accepts connections and never answers (a hung broker or database),
    counting the connections it accepted."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> str:
        self._server = await asyncio.start_server(self._never_answer, "127.0.0.1", port)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _never_answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await reader.read()  # until the client hangs up
        writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    server = Silent()
    yield server
    await server.stop()


async def unreachable(silent: Silent, state: str) -> str:
    """The address of a server that is `silent`, or of a port that refuses connections."""
    return await silent.start() if state == "silent" else f"127.0.0.1:{free_port()}"


async def test_outbox_series_are_the_unpublished_rows_of_the_database(
    outbox_db: str, connection: asyncpg.Connection, redis_url: str, kafka_bootstrap: str,
) -> None:
    async with api(make_settings(outbox_db, redis_url, kafka_bootstrap)) as http:
        empty = await scrape(http)
        assert empty.value("outbox_backlog") == 0
        assert empty.value("outbox_dead_rows") == 0
        assert empty.value("outbox_oldest_unpublished_age_seconds") == 0

        ids = await insert_events(connection, topics.PAYMENTS, [(f"agg-{n}", n) for n in range(7)])
        await connection.execute(
            "UPDATE outbox SET dead_at = clock_timestamp() WHERE event_id::text = $1", ids[0])
        await connection.execute(
            "UPDATE outbox SET published_at = clock_timestamp() WHERE event_id::text = ANY($1)",
            ids[1:3])
        await connection.execute(
            "UPDATE outbox SET occurred_at = occurred_at - interval '90 seconds'"
            " WHERE event_id::text = $1", ids[3])
        after = await scrape(http)

    assert after.value("outbox_backlog") == 4  # 7 rows, one dead, two published
    assert after.value("outbox_dead_rows") == 1
    age = after.value("outbox_oldest_unpublished_age_seconds")
    assert age is not None and 90 <= age < 150, age


async def test_lag_and_dead_letters_come_from_the_broker_and_are_cached_between_scrapes(
    settings: Settings, broker: RunningServer, own_producer: AIOKafkaProducer,
) -> None:
    prefix = "apilag" + secrets.token_hex(3)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=broker.url), system_topics())
    # The saga group read ten payments but committed p0 up to 4 and p1 up to 3; p2 has no
    # commit, so all of it counts: 1 + 0 + 2 behind.
    await produce(own_producer, topics.PAYMENTS, {0: 5, 1: 3, 2: 2})
    await consume(broker.url, f"{prefix}-ticket-saga", topics.PAYMENTS, range(3), 10,
                  commit={0: 4, 1: 3})
    # The notifier parked two of its three messages and committed all three.
    await produce(own_producer, topics.NOTIFICATIONS, {0: 3})
    records = await consume(broker.url, f"{prefix}-notifier", topics.NOTIFICATIONS, range(1), 3,
                            commit={0: 3})
    for record in records[:2]:
        await park(own_producer, topic=record.topic, partition=record.partition,
                   offset=record.offset, key=record.key, value=record.value,
                   headers=record.headers, error=ValueError("poison"), attempts=3,
                   consumer=f"{prefix}-notifier")
    own = settings.model_copy(update={
        "kafka_bootstrap_servers": broker.url, "consumer_group_prefix": prefix,
        "metrics_broker_cache_seconds": 3.0,
    })

    async with api(own) as http:
        first = await scrape(http)
        assert first.of("kafka_consumer_group_lag") == {
            (f"{prefix}-ticket-saga", topics.PAYMENTS): 3,
            (f"{prefix}-notifier", topics.NOTIFICATIONS): 0,
        }
        expected_dlq = {(f"{topic}.dlq",): 0.0 for topic in topics.ALL}
        expected_dlq[(f"{topics.NOTIFICATIONS}.dlq",)] = 2
        assert first.of("dlq_messages") == expected_dlq

        await produce(own_producer, topics.PAYMENTS, {2: 2})
        cached = await scrape(http)  # within the 3 s: the broker is not asked again
        assert cached.value("kafka_consumer_group_lag", group=f"{prefix}-ticket-saga",
                            topic=topics.PAYMENTS) == 3
        await until(http, lambda s: s.value("kafka_consumer_group_lag", group=f"{prefix}-ticket-saga",
                                             topic=topics.PAYMENTS) == 5,
                    within=10, what="the lag was never read again")


# A silent broker or database never answers: a scrape that reads it without its own
# timeout never ends, and the test client gives up after 30 s, before aiokafka's (40 s)
# or asyncpg's (60 s) defaults would. So a scrape that answers at all was bounded by
# METRICS_*_TIMEOUT_SECONDS.


@pytest.mark.parametrize("broker_state", ["refused", "silent"])
async def test_an_unreachable_broker_leaves_lag_out_and_its_failed_read_is_cached(
    settings: Settings, silent: Silent, broker_state: str,
) -> None:
    address = await unreachable(silent, broker_state)
    own = settings.model_copy(update={
        "kafka_bootstrap_servers": address, "metrics_broker_timeout_seconds": 1.0,
        "metrics_broker_cache_seconds": 30.0,
    })
    async with api(own) as http:
        first = await scrape(http)
        if broker_state == "refused":  # from now on the broker's port counts who asks
            await silent.start(int(address.rsplit(":", 1)[1]))
        asked = silent.accepted
        assert asked > 0 or broker_state == "refused"
        again = await scrape(http)
        assert silent.accepted == asked  # the failed read is cached: the broker is not asked again
    for result in (first, again):
        assert not {"kafka_consumer_group_lag", "dlq_messages"} & result.families, result.text
        # The database half of the view, and the API's own metrics, are still there.
        assert result.value("outbox_backlog") is not None
        assert "http_requests" in result.families


@pytest.mark.parametrize("database_state", ["refused", "silent"])
async def test_an_unreachable_database_leaves_its_series_out_of_a_scrape_that_answers(
    settings: Settings, silent: Silent, database_state: str,
) -> None:
    address = await unreachable(silent, database_state)
    own = settings.model_copy(update={
        "database_url": f"postgresql+asyncpg://booking@{address}/booking",
        "metrics_db_timeout_seconds": 0.5,
    })
    async with api(own) as http:
        result = await scrape(http)
    lost = {"outbox_backlog", "outbox_dead_rows", "outbox_oldest_unpublished_age_seconds",
            "provider_circuit_breaker_state"}
    assert not lost & result.families, result.text
    assert "kafka_consumer_group_lag" in result.families  # the broker still answers


async def test_an_open_breaker_in_a_worker_shows_as_the_highest_state_of_live_processes(
    booking: Booking, settings: Settings, metrics_http: httpx.AsyncClient,
) -> None:
    provider = "venue-" + secrets.token_hex(4)
    refused = f"http://127.0.0.1:{free_port()}/v1/registrations"
    engine = create_worker_engine(settings.database_dsn, pool_size=2, application_name="breaker-test")

    def state(result: Scrape) -> float | None:
        return result.value("provider_circuit_breaker_state", provider=provider)

    try:
        async with provider_http() as client:
            steady = ResilientCaller(provider, client, TRIPS_FAST)
            tripping = ResilientCaller(provider, client, TRIPS_FAST)
            # Heartbeats a minute apart: only the transition itself can publish it in time.
            async with publishing_breaker_states(engine, [steady.breaker], instance="replica-a",
                                                 heartbeat=60):
                async with publishing_breaker_states(engine, [tripping.breaker],
                                                     instance="replica-b", heartbeat=60):
                    await until(metrics_http, lambda s: state(s) == 0, within=5,
                                what="the closed breakers were never published")
                    for _ in range(2):
                        with pytest.raises(TransientFailure):
                            await tripping.post_json(refused, {"registration_id": "r"})
                    assert tripping.breaker.state is BreakerState.OPEN
                    opened = await until(metrics_http, lambda s: state(s) == 2, within=3,
                                         what="the open breaker was not published at once")
                    # One family, the system view's: not also this test process's own gauge.
                    assert opened.text.count("# TYPE provider_circuit_breaker_state gauge") == 1

                # replica-b stopped (its breaker is still open in this process): replica-a's
                # closed one is all that is left.
                await until(metrics_http, lambda s: state(s) == 0, within=3,
                            what="a stopped process still counted")
                await sql(settings, "UPDATE provider_breaker_states SET seen_at = now() - interval"
                          " '1 hour' WHERE provider = :provider", provider=provider)
                stale = await scrape(metrics_http)
                assert state(stale) is None, "a process without heartbeats still counted"
    finally:
        await engine.dispose()


async def test_a_provider_call_never_waits_for_a_breaker_state_write(settings: Settings) -> None:
    """The write hangs (its table locked) for as long as the test wants: the calls, and the
    breaker's trip, happen while it hangs; once the lock goes, the open state is written."""
    application = "breaker-test-" + secrets.token_hex(4)
    # lock_timeout 0: the write waits for the lock without end, the publisher for an hour.
    engine = create_worker_engine(settings.database_dsn, pool_size=1, application_name=application,
                                  lock_timeout_ms=0)
    refused = f"http://127.0.0.1:{free_port()}/v1/registrations"
    locker = await asyncpg.connect(asyncpg_dsn(settings.database_dsn))

    async def write_hangs() -> bool:
        # Not on `locker`: inside its transaction, pg_stat_activity is a snapshot.
        return await sql(settings, "SELECT count(*) AS n FROM pg_stat_activity"
                         " WHERE application_name = :a AND wait_event_type = 'Lock'",
                         a=application) == [{"n": 1}]

    try:
        async with provider_http() as client:
            caller = ResilientCaller("venue-" + secrets.token_hex(4), client, TRIPS_FAST)
            publisher = BreakerStatePublisher(engine, [caller.breaker], heartbeat=0.2,
                                              write_timeout=3600)

            async def open_state_written() -> bool:
                rows = await sql(settings, "SELECT state FROM provider_breaker_states"
                                 " WHERE provider = :p AND instance = :i",
                                 p=caller.breaker.provider, i=publisher.instance)
                return rows == [{"state": 2}]

            locking = locker.transaction()
            await locking.start()
            await locker.execute("LOCK TABLE provider_breaker_states IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(publisher.run())
            try:
                await eventually(write_hangs, within=10, what="the write waiting for the lock")
                for _ in range(2):
                    with pytest.raises(TransientFailure):
                        await caller.post_json(refused, {"registration_id": "r"})
                with pytest.raises(BreakerOpen):
                    await caller.post_json(refused, {"registration_id": "r"})
                assert await write_hangs() and not task.done()  # all of it while the write hung
                await locking.rollback()
                await eventually(open_state_written, within=10, what="the open state written")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await publisher.forget()
    finally:
        await locker.close()
        await engine.dispose()


@pytest.mark.parametrize("database_state", ["refused", "silent"])
async def test_a_database_outage_never_stops_the_publisher(
    silent: Silent, database_state: str, caplog: pytest.LogCaptureFixture,
) -> None:
    address = await unreachable(silent, database_state)
    engine = create_worker_engine(f"postgresql+asyncpg://booking@{address}/booking", pool_size=1,
                                  application_name="breaker-test")
    refused = f"http://127.0.0.1:{free_port()}/v1/registrations"
    try:
        async with provider_http() as client:
            caller = ResilientCaller("venue-" + secrets.token_hex(4), client, TRIPS_FAST)
            async with publishing_breaker_states(engine, [caller.breaker], heartbeat=0.2):
                for _ in range(2):
                    with pytest.raises(TransientFailure):
                        await caller.post_json(refused, {"registration_id": "r"})
                with pytest.raises(BreakerOpen):
                    await caller.post_json(refused, {"registration_id": "r"})

                async def write_failed() -> bool:
                    return any(r.getMessage().startswith("breaker states not published")
                               for r in caplog.records)

                # Failed writes (timed out when silent) are logged, and the publisher goes on.
                await eventually(write_failed, within=10, what="no failed write was logged")
                publishers = [task for task in asyncio.all_tasks()
                              if task.get_name() == "breaker-states"]
                assert len(publishers) == 1 and not publishers[0].done()
            # Leaving the block ended: the last write (forget) is bounded by its timeout too.
    finally:
        await engine.dispose()
