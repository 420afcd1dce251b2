"""A consumer worker rides out a PostgreSQL restart: every message handled once, none parked."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from services.common.envelope import Envelope
from tests.consumer_support import running_worker, send
from tests.e2e.kafka_tools import read_all
from tests.relay_support import topic_with_dead_letters
from workers.common.database import create_worker_engine, is_database_outage
from workers.devstack.embedded import RunningServer

pytestmark = pytest.mark.integration

BATCH = 30


async def test_messages_after_a_restart_are_handled_once_on_fresh_connections(
    own_postgres: RunningServer, restartable_db: str, kafka_bootstrap: str,
    producer: AIOKafkaProducer,
) -> None:
    topic = await topic_with_dead_letters(kafka_bootstrap, "pg-restart", partitions=2)
    # Pooled connections, as a worker keeps them; none survives the restart.
    engine = create_worker_engine(restartable_db, pool_size=4, application_name="restart-test")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE handled (n int PRIMARY KEY, times int NOT NULL)"))

    async def handle(envelope: Envelope) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO handled VALUES (:n, 1) ON CONFLICT (n) DO UPDATE SET times = handled.times + 1"
            ), {"n": envelope.data["n"]})

    async def handled() -> int:
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM handled"))).scalar_one())
        except Exception as error:
            if is_database_outage(error):
                return -1
            raise

    async def until_handled(count: int) -> None:
        deadline = time.monotonic() + 60
        while await handled() < count:
            assert time.monotonic() < deadline, f"{await handled()} of {count} handled"
            await asyncio.sleep(0.1)

    try:
        async with running_worker(kafka_bootstrap, topic, 2, producer, {"Happened": handle},
                                  is_outage=is_database_outage):
            await send(producer, topic, [(f"k-{n % 7}", n) for n in range(BATCH)])
            await until_handled(BATCH)
            await asyncio.to_thread(own_postgres.stop)
            await asyncio.to_thread(own_postgres.start)
            await send(producer, topic, [(f"k-{n % 7}", n) for n in range(BATCH, 2 * BATCH)])
            await until_handled(2 * BATCH)

        async with engine.connect() as conn:
            times = (await conn.execute(text("SELECT sum(times) FROM handled"))).scalar_one()
    finally:
        await engine.dispose()
    assert times == 2 * BATCH  # no message was handled twice, none was lost
    assert await read_all(kafka_bootstrap, topic + ".dlq") == []  # the restart parked nothing
