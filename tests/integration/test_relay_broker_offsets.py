"""Consumer lag and DLQ sizes on the relay's /metrics, read from a real broker.

Exact values: messages are produced to chosen partitions in record batches (as the relay
sends them), a group commits chosen offsets, a consumer parks messages with the real
`park()`. Then the broker goes away: the gauges disappear, the relay carries on, and
they come back with the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from services.common import topics
from services.common.broker_offsets import BrokerOffsets
from tests.relay_support import (
    consume,
    insert_events,
    produce,
    relay_settings,
    topic_with_dead_letters,
    unique_topic,
)
from workers.common.dead_letters import park
from workers.devstack.embedded import RunningServer
from workers.devstack.processes import free_port
from workers.outbox_relay.broker_offsets import OffsetGauges, watch_offsets
from workers.outbox_relay.health import Health
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.service import running_relay

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, ...], float]


def samples(registry: CollectorRegistry, name: str) -> Samples:
    return {tuple(sample.labels.values()): sample.value
            for metric in registry.collect() for sample in metric.samples if sample.name == name}


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_relay_serves_exact_lag_and_dlq_sizes_and_survives_a_broker_outage(
    outbox_db: str, connection: asyncpg.Connection, broker: RunningServer,
    own_producer: AIOKafkaProducer,
) -> None:
    registry = CollectorRegistry()
    settings = relay_settings(
        outbox_db, broker.url, consumer_group_prefix="lagtest", relay_offsets_interval_seconds=0.2,
        relay_offsets_timeout_seconds=2, relay_backoff_max_seconds=0.5,
        kafka_request_timeout_ms=2000, relay_lease_seconds=5,
    )
    async with running_relay(settings, RelayMetrics(registry)) as relay:  # creates every topic
        # The saga group read all ten payments but committed p0 up to 4 and p1 up to 3;
        # p2 has no commit, so all of it counts: 1 + 0 + 2 behind.
        await produce(own_producer, topics.PAYMENTS, {0: 5, 1: 3, 2: 2})
        await consume(broker.url, "lagtest-ticket-saga", topics.PAYMENTS, range(3), 10,
                      commit={0: 4, 1: 3})
        # The notifier parked two of its three messages and committed all three.
        await produce(own_producer, topics.NOTIFICATIONS, {0: 3})
        records = await consume(broker.url, "lagtest-notifier", topics.NOTIFICATIONS, range(1), 3,
                                commit={0: 3})
        for record in records[:2]:
            await park(own_producer, topic=record.topic, partition=record.partition,
                       offset=record.offset, key=record.key, value=record.value,
                       headers=record.headers, error=ValueError("poison"), attempts=3,
                       consumer="lagtest-notifier")

        expected_lag = {
            ("lagtest-ticket-saga", topics.PAYMENTS): 3.0,
            ("lagtest-notifier", topics.NOTIFICATIONS): 0.0,
        }
        expected_dlq = {(f"{topic}.dlq",): 0.0 for topic in topics.ALL}
        expected_dlq[(f"{topics.NOTIFICATIONS}.dlq",)] = 2.0
        await until(lambda: samples(registry, "dlq_messages") == expected_dlq
                    and samples(registry, "kafka_consumer_group_lag") == expected_lag,
                    within=10, what="gauges never showed the exact values")

        await asyncio.to_thread(broker.stop)
        # Committed during the outage: the relay fails to publish it and says so.
        await insert_events(connection, topics.PAYMENTS, [("after-outage", 1)])
        await until(lambda: not samples(registry, "kafka_consumer_group_lag")
                    and not samples(registry, "dlq_messages"),
                    within=10, what="stale gauges were kept while the broker was away")
        await until(lambda: registry.get_sample_value("outbox_relay_broker_up") == 0,
                    within=10, what="the relay never noticed the outage")
        await asyncio.sleep(1)  # a few failed reads
        assert not relay.finished.is_set() and relay.failure is None

        # The memory broker comes back empty; the relay recreates the topics and
        # publishes the event, which no group has read yet.
        await asyncio.to_thread(broker.start)
        expected_lag = {key: 0.0 for key in expected_lag}
        expected_lag["lagtest-ticket-saga", topics.PAYMENTS] = 1.0
        expected_dlq = {(f"{topic}.dlq",): 0.0 for topic in topics.ALL}
        await until(lambda: samples(registry, "dlq_messages") == expected_dlq
                    and samples(registry, "kafka_consumer_group_lag") == expected_lag,
                    within=30, what="gauges did not come back with the broker")


async def test_reader_counts_uncommitted_partitions_and_never_creates_a_topic(
    kafka_bootstrap: str, producer: AIOKafkaProducer,
) -> None:
    topic = await topic_with_dead_letters(kafka_bootstrap, "lag", partitions=2)
    missing = unique_topic("missing")
    await produce(producer, topic, {0: 3, 1: 1})
    await consume(kafka_bootstrap, f"{topic}-reader", topic, range(2), 4, commit={0: 1})
    await produce(producer, f"{topic}.dlq", {1: 2})

    groups = {f"{topic}-reader": [topic], f"{topic}-idle": [topic], f"{topic}-lost": [missing]}
    offsets = await BrokerOffsets(kafka_bootstrap, groups, timeout=5).read()

    assert {key: lag for key, lag in offsets.lag.items() if key[0] in groups} == {
        (f"{topic}-reader", topic): 2 + 1,  # p0 read up to 1 of 3, p1 never committed
        (f"{topic}-idle", topic): 4,
    }
    assert offsets.dlq[f"{topic}.dlq"] == 2
    assert all(name.endswith(".dlq") for name in offsets.dlq)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()  # Tansu creates a topic Metadata names
    finally:
        await admin.close()


async def test_watcher_outlives_an_unreachable_and_a_silent_broker() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client hangs up
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent_address = f"127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - which error depends on aiokafka's timing
            await BrokerOffsets(silent_address, {"g": ["t"]}, timeout=1).read()
        assert time.monotonic() - started < 3, "the read timeout was not applied"

        for address in (f"127.0.0.1:{free_port()}", silent_address):
            registry = CollectorRegistry()
            gauges = OffsetGauges(registry)
            watcher = asyncio.create_task(watch_offsets(
                BrokerOffsets(address, {"g": ["t"]}, timeout=0.5), gauges, interval=0.1,
                health=Health("offsets", 0.05, 0.2)))
            await asyncio.sleep(2)
            assert not watcher.done(), address
            assert not samples(registry, "kafka_consumer_group_lag"), address
            watcher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watcher
    finally:
        silent.close()
        await silent.wait_closed()
