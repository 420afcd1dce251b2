"""Helpers for the outbox relay, DLQ and consumer tests: private databases, events, topics,
batches produced and offsets committed, a collector.

Their shared fixtures are in tests/integration/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from alembic import command
from sqlalchemy.engine import make_url

from services.booking.adapters.migrate import alembic_config
from services.common.envelope import Envelope, decode
from services.common.kafka import KafkaSettings, ensure_topics
from services.common.settings_types import asyncpg_dsn
from services.common.topics import dead_letter_topic
from workers.outbox_relay.config import Settings

INSERT = """
INSERT INTO outbox (event_id, event_type, topic, aggregate_type, aggregate_id, payload)
SELECT gen_random_uuid(), $1, $2, 'test', a, jsonb_build_object('seq', s, 'pad', $5::text)
FROM unnest($3::text[], $4::int[]) AS e (a, s)
RETURNING event_id::text
"""


def _run(coroutine: Any) -> Any:
    # A private loop: asyncio.run() would unset the thread's loop under pytest-asyncio.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def private_database(server_url: str, revision: str = "head") -> Iterator[str]:
    """A freshly migrated database of its own (a relay claims every row of its outbox), at
    the newest schema or at `revision`; called where no event loop runs, as Alembic runs its own."""
    name = f"relay_test_{secrets.token_hex(5)}"
    _run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), revision)
        yield url
    finally:
        _run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_url_of(database_url: str) -> str:
    return make_url(database_url).set(database="postgres").render_as_string(hide_password=False)


def relay_settings(database_url: str, kafka: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url, "kafka_bootstrap_servers": kafka,
        "kafka_enable_idempotence": False, "relay_metrics_port": 0,
        "relay_name": "test-" + secrets.token_hex(3),
    }
    values.update(overrides)
    return Settings(**values)


def relay_env(database_url: str, kafka: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_ENABLE_IDEMPOTENCE": "false", "RELAY_METRICS_PORT": "0",
    }
    env.update(overrides)
    return env


def unique_topic(kind: str) -> str:
    return f"test.{kind}.{uuid.uuid4().hex[:10]}"


async def topic_with_dead_letters(kafka: str, kind: str, partitions: int) -> str:
    """Create a fresh topic and its dead letter topic, `partitions` each; return its name."""
    name = unique_topic(kind)
    settings = KafkaSettings(kafka_bootstrap_servers=kafka, kafka_partitions=partitions)
    await ensure_topics(settings, [name, dead_letter_topic(name)])
    return name


async def insert_events(
    connection: asyncpg.Connection,
    topic: str,
    events: Iterable[tuple[str, int]],
    *,
    event_type: str = "TestHappened",
    pad: str = "",
) -> list[str]:
    """Commit one outbox row per (aggregate id, seq) in one transaction; return event ids."""
    aggregates, seqs = zip(*events, strict=True)
    records = await connection.fetch(INSERT, event_type, topic, list(aggregates), list(seqs), pad)
    return [record[0] for record in records]


async def produce(producer: AIOKafkaProducer, topic: str, per_partition: dict[int, int]) -> None:
    """Send `count` messages to each partition as one record batch, as the relay does.

    (Tansu's ListOffsets counts a batch as one offset: single sends would hide that.)
    """
    for partition, count in per_partition.items():
        batch = producer.create_batch()
        for n in range(count):
            assert batch.append(key=b"k", value=b"%d" % n, timestamp=None) is not None
        await (await producer.send_batch(batch, topic, partition=partition))


async def consume(kafka: str, group: str, topic: str, partitions: range, count: int,
                  commit: dict[int, int]) -> list[Any]:
    """Read `count` messages of `topic` in `group`, then commit the offsets `commit` names."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records: list[Any] = []
        deadline = time.monotonic() + 15
        while len(records) < count:
            assert time.monotonic() < deadline, f"read {len(records)} of {count}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
        if commit:
            await consumer.commit({TopicPartition(topic, p): o for p, o in commit.items()})
        return records
    finally:
        await consumer.stop()


@dataclass
class Received:
    event_id: str
    aggregate_id: str
    seq: int
    partition: int
    envelope: Envelope


class Collector:
    """Consume a topic from its beginning, in the background, decoding every envelope."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.received: list[Received] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def ids(self) -> set[str]:
        return {item.event_id for item in self.received}

    async def wait_for(self, expected: Iterable[str], within: float) -> None:
        missing = set(expected)
        deadline = time.monotonic() + within
        while missing - self.ids:
            if self._task is not None and self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing - self.ids)} of {len(missing)} events never arrived")
            await asyncio.sleep(0.05)

    def by_aggregate(self) -> dict[str, list[int]]:
        """Each aggregate's seq numbers in the order they were consumed (partition order)."""
        orders: dict[str, list[int]] = {}
        for item in self.received:
            orders.setdefault(item.aggregate_id, []).append(item.seq)
        return orders

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.kafka, auto_offset_reset="earliest",
            group_id=None, metadata_max_age_ms=1000,
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self.received.append(_received(record))
        finally:
            await consumer.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Collector]:
        self._task = asyncio.create_task(self._consume())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _received(record: Any) -> Received:
    envelope = decode(record.value)
    assert record.key == envelope.aggregate_id.encode()
    headers = dict(record.headers)
    assert headers["event-id"].decode() == str(envelope.id)
    return Received(str(envelope.id), envelope.aggregate_id, envelope.data["seq"],
                    record.partition, envelope)


def assert_in_order(orders: dict[str, list[int]]) -> int:
    """Assert each aggregate's events were first delivered in order; return the repeats.

    At least once allows a repeat, and a repeat may even come late (a timed-out send
    delivered after its row was published again); consumers skip it by event id, so
    what they act on is the order of first deliveries.
    """
    repeats = 0
    for aggregate, seqs in orders.items():
        first = list(dict.fromkeys(seqs))
        assert first == sorted(first), f"aggregate {aggregate} out of order: {seqs}"
        repeats += len(seqs) - len(first)
    return repeats


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def prepared_plan(session: asyncpg.Connection, fragment: str, arguments: str) -> str:
    """The plan, as JSON text, that `session` would run now for the statement it prepared
    whose text holds `fragment`, with `arguments` (SQL literals): the generic plan it kept,
    or one made for the tables as they are."""
    names = await session.fetch(
        "SELECT name FROM pg_prepared_statements WHERE strpos(statement, $1) > 0", fragment)
    assert len(names) == 1, names
    call = f"{names[0]['name']}({arguments})" if arguments else names[0]["name"]
    return str(await session.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {call}"))
