"""Fixtures shared by the outbox relay, DLQ and consumer tests (helpers: tests/relay_support.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from tests.relay_support import asyncpg_dsn, private_database
from tests.support import KAKAO_KEY, SMS_KEY
from workers.devstack.embedded import RunningServer, start_broker, start_postgres
from workers.devstack.simulators import SimulatorServer


@pytest.fixture
def outbox_db(postgres_server_url: str) -> Iterator[str]:
    """A freshly migrated database of this test's own (a relay claims its whole outbox)."""
    with private_database(postgres_server_url) as url:
        yield url


@pytest.fixture
async def connection(outbox_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to `outbox_db`, to commit events and look at the outbox."""
    connection = await asyncpg.connect(asyncpg_dsn(outbox_db))
    yield connection
    await connection.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def broker(server_log_dir: Path) -> Iterator[RunningServer]:
    """A broker of this test's own: its system topics hold only what the test puts there."""
    with start_broker(log_dir=server_log_dir) as server:
        yield server


@pytest.fixture
async def own_producer(broker: RunningServer) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def own_postgres(server_log_dir: Path) -> Iterator[RunningServer]:
    """A PostgreSQL of this test's own, to restart."""
    base = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    base.chmod(0o755)  # PostgreSQL runs as another user when we are root
    try:
        with start_postgres(base / "data", durable=False, log_dir=server_log_dir) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def restartable_db(own_postgres: RunningServer) -> Iterator[str]:
    with private_database(own_postgres.url) as url:
        yield url


@pytest.fixture(scope="module")
def kakao_server() -> Iterator[SimulatorServer]:
    with SimulatorServer("kakao", api_key=KAKAO_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def sms_server() -> Iterator[SimulatorServer]:
    with SimulatorServer("sms", api_key=SMS_KEY) as server:
        yield server
