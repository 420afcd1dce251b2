"""A faust consumer worker run inside the test's event loop, fed by an `EventConsumer`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from workers.common.consumer import EventConsumer, Handler, IsOutage, Route, never_an_outage
from workers.common.consumer_settings import ConsumerSettings
from workers.common.envelope import Envelope, encode
from workers.common.faust_worker import attach_consumer, create_app


async def send(producer: AIOKafkaProducer, topic: str, messages: list[tuple[str, int]]) -> None:
    """One "Happened" event per (key, n), sent one after another so each key's order is the log's."""
    for key, n in messages:
        envelope = Envelope.new("Happened", "thing", key, {"n": n})
        await (await producer.send(topic, encode(envelope), key=envelope.key, headers=envelope.headers))


@asynccontextmanager
async def running_worker(
    kafka: str, topic: str, partitions: int, producer: AIOKafkaProducer, data_dir: Path,
    routes: dict[str, Handler], is_outage: IsOutage = never_an_outage, **settings: Any,
) -> AsyncIterator[tuple[faust.App, ConsumerSettings]]:
    """Start a worker consuming `topic` in a group of its own; stop it on the way out."""
    config = ConsumerSettings(
        kafka_bootstrap_servers=kafka, kafka_enable_idempotence=False, kafka_partitions=partitions,
        consumer_group_prefix=topic.replace(".", "-"), consumer_data_dir=str(data_dir), **settings,
    )

    @asynccontextmanager
    async def consumer() -> AsyncIterator[EventConsumer]:
        yield EventConsumer("test-worker", {kind: Route(handler) for kind, handler in routes.items()},
                            producer, is_outage=is_outage)

    app = create_app(config, "worker")
    attach_consumer(app, [topic], consumer, concurrency=config.consumer_concurrency)
    await app.start()
    try:
        yield app, config
    finally:
        await app.stop()
