"""Dependencies go away while payments go on: the relay waits quietly, then catches up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from tests.relay_support import (
    Collector,
    assert_in_order,
    asyncpg_dsn,
    insert_events,
    relay_settings,
    unique_topic,
)
from workers.devstack.embedded import RunningServer, start_broker
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.service import running_relay

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10
AGGREGATES = 20


@pytest.fixture
def broker(server_log_dir) -> Iterator[RunningServer]:
    """A broker of this test's own, to stop and start again."""
    with start_broker(log_dir=server_log_dir) as server:
        yield server


async def pay_for(seconds: float, connection: asyncpg.Connection, topic: str, first: int) -> list[str]:
    """Commit one event per aggregate every 0.5 s, as payments would."""
    ids: list[str] = []
    seq = first
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ids += await insert_events(connection, topic, [(f"agg-{n}", seq) for n in range(AGGREGATES)])
        seq += 1
        await asyncio.sleep(0.5)
    return ids


async def test_backlog_drains_after_the_broker_comes_back(
    outbox_db: str, connection: asyncpg.Connection, broker: RunningServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workers.outbox_relay")
    registry = CollectorRegistry()
    topic = unique_topic("outage")
    settings = relay_settings(
        outbox_db, broker.url, kafka_request_timeout_ms=2000, relay_lease_seconds=5,
        relay_backoff_max_seconds=1,
    )
    async with running_relay(settings, RelayMetrics(registry)):
        async with Collector(broker.url, topic).running() as before:
            early = await pay_for(1, connection, topic, first=1)
            await before.wait_for(early, within=10)

        # The broker keeps messages in memory only: what it acknowledged before
        # stopping was consumed above; what follows must come from the outbox.
        await asyncio.to_thread(broker.stop)
        during = await pay_for(OUTAGE_SECONDS, connection, topic, first=100)
        assert await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL") == len(during)
        await asyncio.to_thread(broker.start)

        async with Collector(broker.url, topic).running() as after:
            await after.wait_for(during, within=30)

    relay_lines = [r.getMessage() for r in caplog.records if r.name == "workers.outbox_relay"]
    outage_lines = [line for line in relay_lines if line.startswith("broker ")]
    assert len(outage_lines) == 2, relay_lines
    assert "unavailable" in outage_lines[0] and "available again" in outage_lines[1]
    assert_in_order(after.by_aggregate())
    assert registry.get_sample_value("outbox_publish_errors_total", {"kind": "transient"}) > 0
    assert registry.get_sample_value("outbox_relay_broker_up") == 1
    assert await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_relay_reconnects_and_listens_again_after_postgres_restarts(
    own_postgres: RunningServer, restartable_db: str, kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workers.outbox_relay")
    collector = Collector(kafka_bootstrap, unique_topic("pg-restart"))
    # Polling every 30 s: within the test only a LISTEN that came back can wake it.
    settings = relay_settings(restartable_db, kafka_bootstrap, relay_poll_interval_seconds=30,
                              relay_backoff_max_seconds=0.5)
    async with collector.running(), running_relay(settings):
        before = await commit(restartable_db, collector.topic, seq=1)
        await collector.wait_for(before, within=10)

        await asyncio.to_thread(own_postgres.stop)
        await logged(caplog, "LISTEN connection unavailable")
        await asyncio.to_thread(own_postgres.start)
        await logged(caplog, "LISTEN connection available again")

        after = await commit(restartable_db, collector.topic, seq=2)
        await collector.wait_for(after, within=10)

    lines = [r.getMessage() for r in caplog.records if r.name == "workers.outbox_relay"]
    listener = [line for line in lines if line.startswith("LISTEN connection")]
    assert len(listener) == 2, lines
    assert "unavailable" in listener[0] and "available again" in listener[1]


async def logged(caplog: pytest.LogCaptureFixture, start: str, within: float = 30) -> None:
    """Wait until the relay logs a line starting with `start`."""
    deadline = time.monotonic() + within
    while not any(r.getMessage().startswith(start) for r in caplog.records
                  if r.name == "workers.outbox_relay"):
        assert time.monotonic() < deadline, f"the relay never logged {start!r}"
        await asyncio.sleep(0.05)


async def commit(database_url: str, topic: str, seq: int) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await insert_events(connection, topic, [(f"agg-{n}", seq) for n in range(10)])
    finally:
        await connection.close()
