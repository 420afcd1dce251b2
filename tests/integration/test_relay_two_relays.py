"""Two relays on one outbox: each event published once, every aggregate in order."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from tests.relay_support import Collector, assert_in_order, insert_events, relay_settings, unique_topic
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.service import running_relay
from workers.outbox_relay.wakeup import APPLICATION_NAME

pytestmark = pytest.mark.integration

AGGREGATES = 300
EVENTS_PER_AGGREGATE = 10


async def both_listening(connection: asyncpg.Connection) -> None:
    """Wait until both relays listen, so that both hear the first commit."""
    for _ in range(200):
        listeners = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()", APPLICATION_NAME)
        if listeners == 2:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the relays never started listening")


async def test_two_relays_publish_each_event_once_and_in_order(
    outbox_db: str, connection: asyncpg.Connection, kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workers")
    collector = Collector(kafka_bootstrap, unique_topic("two-relays"))
    registries = [CollectorRegistry(), CollectorRegistry()]
    # 2 loops x 32 rows: neither relay alone can hold every aggregate's next row,
    # so both take part, and the claim rule is all that keeps them from overtaking.
    settings = [relay_settings(outbox_db, kafka_bootstrap, relay_batch_size=32,
                               relay_concurrency=2, relay_name=f"relay-{n}") for n in range(2)]
    async with (
        collector.running(),
        running_relay(settings[0], RelayMetrics(registries[0])),
        running_relay(settings[1], RelayMetrics(registries[1])),
    ):
        await both_listening(connection)
        ids: list[str] = []
        # Bursts of five events per aggregate, each aggregate's rows side by side: a
        # claim of the next rows in id order would split an aggregate between two
        # relays; only the claim rule keeps them in order.
        for first in range(1, EVENTS_PER_AGGREGATE + 1, 5):
            burst = [(f"agg-{n}", seq) for n in range(AGGREGATES) for seq in range(first, first + 5)]
            ids += await insert_events(connection, collector.topic, burst)
            await asyncio.sleep(0.2)
        await collector.wait_for(ids, within=30)
        # A marker after each aggregate's events, in its partition: once every marker is
        # in, every copy of an event the relays sent before it is in too, and counted.
        markers = await insert_events(connection, collector.topic, [
            (f"agg-{n}", EVENTS_PER_AGGREGATE + 1) for n in range(AGGREGATES)])
        await collector.wait_for(markers, within=30)

    published = [r.get_sample_value("outbox_published_total") for r in registries]
    assert assert_in_order(collector.by_aggregate()) == 0
    assert len(ids) == AGGREGATES * EVENTS_PER_AGGREGATE
    copies = Counter(item.event_id for item in collector.received)
    assert copies == Counter(ids + markers), "an event was lost or published twice"
    assert sum(published) == len(ids) + len(markers)
    # Both took part: the order held while they really competed for rows.
    assert min(published) > len(ids) / 10, (published, caplog.text[-3000:])
