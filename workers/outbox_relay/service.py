"""Wire the relay: database pool, producer, listener, loops; wait out dependencies at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from services.booking.adapters.outbox import OutboxStore, create_pool
from services.common.broker_offsets import BrokerOffsets, consumer_groups
from services.common.kafka import IdempotenceRefused, ensure_topics, start_producer, system_topics
from services.common.logging import READY
from services.common.settings_types import asyncpg_dsn
from workers.outbox_relay.broker_offsets import watch_offsets
from workers.outbox_relay.config import Settings
from workers.outbox_relay.health import Health
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.publisher import Publisher
from workers.outbox_relay.relay import Relay
from workers.outbox_relay.wakeup import OutboxListener, Wakeup

log = logging.getLogger("workers.outbox_relay")
T = TypeVar("T")


@asynccontextmanager
async def running_relay(
    settings: Settings, metrics: RelayMetrics | None = None
) -> AsyncIterator[Relay]:
    """Start a relay (waiting for PostgreSQL and the broker as long as it takes); stop it on exit."""
    pool = await _until_ready("database", settings, lambda: _open_pool(settings))
    try:
        producer = await _until_ready("broker", settings, lambda: _start_producer(settings))
        try:
            async with _relay_tasks(settings, pool, producer, metrics) as relay:
                yield relay
        finally:
            await producer.stop()
    finally:
        await pool.close()


async def serve(
    settings: Settings, stop: asyncio.Event, metrics: RelayMetrics, started: asyncio.Event
) -> None:
    """Run the relay until `stop` is set; set `started` once it runs."""
    async with running_relay(settings, metrics) as relay:
        started.set()
        log.info("outbox relay %s %s", settings.relay_name, READY)
        stopping = asyncio.create_task(stop.wait())
        finished = asyncio.create_task(relay.finished.wait())
        await asyncio.wait([stopping, finished], return_when=asyncio.FIRST_COMPLETED)
        for task in (stopping, finished):
            task.cancel()
    if relay.failure is not None:
        # A bug, not an outage (those are retried forever): exit so a supervisor restarts us.
        raise RuntimeError(f"outbox relay {settings.relay_name} crashed") from relay.failure
    log.info("outbox relay %s stopped", settings.relay_name)


@asynccontextmanager
async def _relay_tasks(
    settings: Settings,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    metrics: RelayMetrics | None,
) -> AsyncIterator[Relay]:
    wakeup = Wakeup()
    publisher = Publisher(producer, settings, system_topics())
    # Metrics of their own unless given: several relays may share a process (tests).
    metrics = metrics or RelayMetrics(CollectorRegistry())
    relay = Relay(settings, OutboxStore(pool), publisher, metrics, wakeup)
    listener = OutboxListener(
        asyncpg_dsn(settings.database_dsn), wakeup,
        Health("LISTEN connection", settings.relay_backoff_initial_seconds,
               settings.relay_backoff_max_seconds),
        keepalive=max(settings.relay_poll_interval_seconds * 5, 5.0),
    )
    listening = asyncio.create_task(listener.run(), name="outbox-listener")
    running = asyncio.create_task(relay.run(), name="outbox-relay")
    watching = asyncio.create_task(_watch_offsets(settings, metrics), name="broker-offsets")
    try:
        yield relay
    finally:
        relay.stop()
        # A batch in flight finishes (bounded by the request timeout); past that,
        # cancelling is safe: its rows' leases expire and they are sent again.
        await asyncio.wait([running], timeout=settings.kafka_request_timeout_ms / 1000 + 2)
        for task in (running, listening, watching):
            task.cancel()
        await asyncio.gather(running, listening, watching, return_exceptions=True)


async def _watch_offsets(settings: Settings, metrics: RelayMetrics) -> None:
    reader = BrokerOffsets(
        settings.kafka_bootstrap_servers, consumer_groups(settings.consumer_group_prefix),
        settings.relay_offsets_timeout_seconds, client_id="outbox-relay-offsets",
    )
    # Not named "broker ...": the relay's own broker health owns those log lines.
    health = Health("lag and DLQ offsets", settings.relay_backoff_initial_seconds,
                    settings.relay_backoff_max_seconds)
    await watch_offsets(reader, metrics.broker_offsets, settings.relay_offsets_interval_seconds,
                        health)


async def _open_pool(settings: Settings) -> asyncpg.Pool:
    return await create_pool(settings.database_dsn, settings.relay_concurrency + 2)


async def _start_producer(settings: Settings) -> AIOKafkaProducer:
    producer = await start_producer(settings, client_id=f"outbox-relay-{settings.relay_name}")
    try:
        # Consumers subscribe to topics that may have no event yet: create them all now.
        await ensure_topics(settings, system_topics())
    except BaseException:
        await producer.stop()
        raise
    return producer


async def _until_ready(name: str, settings: Settings, attempt: Callable[[], Awaitable[T]]) -> T:
    health = Health(name, settings.relay_backoff_initial_seconds,
                    settings.relay_backoff_max_seconds)
    while True:
        try:
            result = await attempt()
        except IdempotenceRefused:
            raise  # a setting to change: waiting would never end
        except Exception as error:  # a dependency still starting: retry forever
            await health.failed(error)
            continue
        health.succeeded()
        return result
