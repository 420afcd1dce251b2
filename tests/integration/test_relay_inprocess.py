"""The relay running in this process: wake-up at commit, listener loss, poison rows."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from tests.relay_support import Collector, insert_events, relay_settings, unique_topic
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.service import running_relay
from workers.outbox_relay.wakeup import APPLICATION_NAME

pytestmark = pytest.mark.integration

LISTENER_PID = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"


async def eventually(check, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def commit_to_consume_seconds(connection, collector: Collector, aggregate: str) -> float:
    started = time.monotonic()
    ids = await insert_events(connection, collector.topic, [(aggregate, 1)])
    await collector.wait_for(ids, within=10)
    return time.monotonic() - started


async def test_a_commit_wakes_the_relay_even_after_its_listener_was_killed(
    outbox_db: str, connection: asyncpg.Connection, kafka_bootstrap: str
) -> None:
    # Polling every 30 s: only NOTIFY can deliver within a second.
    settings = relay_settings(outbox_db, kafka_bootstrap, relay_poll_interval_seconds=30)
    collector = Collector(kafka_bootstrap, unique_topic("wakeup"))
    async with collector.running(), running_relay(settings):
        await eventually(lambda: connection.fetchval(LISTENER_PID, APPLICATION_NAME))
        first = await commit_to_consume_seconds(connection, collector, "before")

        old_pid = await connection.fetchval(LISTENER_PID, APPLICATION_NAME)
        await connection.execute("SELECT pg_terminate_backend($1)", old_pid)

        async def listening_again() -> bool:
            pid = await connection.fetchval(LISTENER_PID, APPLICATION_NAME)
            return pid is not None and pid != old_pid

        await eventually(listening_again)
        second = await commit_to_consume_seconds(connection, collector, "after")

    assert first < 2, first
    assert second < 2, second


async def test_a_row_too_large_goes_dead_and_blocks_only_its_own_aggregate(
    outbox_db: str, connection: asyncpg.Connection, kafka_bootstrap: str
) -> None:
    settings = relay_settings(outbox_db, kafka_bootstrap)
    registry = CollectorRegistry()
    collector = Collector(kafka_bootstrap, unique_topic("poison"))
    topic = collector.topic
    async with collector.running(), running_relay(settings, RelayMetrics(registry)) as relay:
        before = await insert_events(connection, topic, [("poisoned", 1)])
        (big,) = await insert_events(connection, topic, [("poisoned", 2)], pad="x" * 1_100_000)
        (behind,) = await insert_events(connection, topic, [("poisoned", 3)])
        others = await insert_events(connection, topic, [(f"other-{n}", 1) for n in range(50)])

        await collector.wait_for(before + others, within=15)
        await eventually(lambda: connection.fetchval(
            "SELECT dead_at IS NOT NULL FROM outbox WHERE event_id = $1::uuid", big))
        await relay.refresh_stats()

    error = await connection.fetchval("SELECT last_error FROM outbox WHERE event_id = $1::uuid", big)
    assert error.startswith("MessageSizeTooLargeError: ")
    assert big not in collector.ids and behind not in collector.ids
    assert registry.get_sample_value("outbox_dead_lettered_total") == 1
    assert registry.get_sample_value("outbox_dead_rows") == 1
    assert registry.get_sample_value("outbox_backlog") == 1
    assert registry.get_sample_value("outbox_published_total") == 51
