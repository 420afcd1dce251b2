"""Kafka client setup shared by the relay, the DLQ CLI and the consumers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import topics

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class KafkaSettings(BaseSettings):
    """Broker settings; a deployable's Settings inherits them."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: Annotated[str, Field(min_length=3)]
    # On for Apache Kafka; the embedded Tansu broker lacks InitProducerId, so the
    # local stack turns it off (acks=all still holds).
    kafka_enable_idempotence: bool = True
    # aiokafka refuses a record larger than this before sending; the relay marks
    # such a row dead instead of retrying it forever.
    kafka_max_request_size: Annotated[int, Field(ge=1024)] = 1_048_576
    kafka_request_timeout_ms: Annotated[int, Field(ge=1000)] = 15_000
    kafka_linger_ms: Annotated[int, Field(ge=0, le=1000)] = 0
    kafka_replication_factor: Annotated[int, Field(ge=1)] = 1
    kafka_partitions: Annotated[int, Field(ge=1)] = topics.PARTITIONS


class TopicCreationFailed(RuntimeError):
    """The broker refused to create a topic for a reason other than that it exists."""

    def __init__(self, topic: str, code: int, message: str | None) -> None:
        super().__init__(f"cannot create topic {topic}: {message} (error code {code})")
        self.topic = topic
        self.code = code


class IdempotenceRefused(RuntimeError):
    """The broker will not give an idempotent producer its id: a setting to change, not an outage."""

    def __init__(self, bootstrap_servers: str, error: KafkaError) -> None:
        super().__init__(
            f"the broker at {bootstrap_servers} refuses idempotent producers (InitProducerId"
            f" answered {type(error).__name__}); set KAFKA_ENABLE_IDEMPOTENCE=false for a broker"
            " without them, such as the embedded Tansu, or enable them on the broker")


async def start_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """Start make_producer's producer; raise IdempotenceRefused when the broker will not have it."""
    producer = make_producer(settings, **overrides)
    try:
        await producer.start()
    except KafkaError as error:
        await producer.stop()
        # Once bootstrapped (failures until then are connection errors, retriable), an
        # idempotent producer's start asks the broker for a producer id and nothing else:
        # a definite refusal there is the broker lacking the feature (Tansu: UnknownError).
        if settings.kafka_enable_idempotence and not error.retriable:
            raise IdempotenceRefused(settings.kafka_bootstrap_servers, error) from error
        raise
    except BaseException:
        await producer.stop()
        raise
    return producer


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that is acknowledged by all in-sync replicas; call inside a running loop."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "max_request_size": settings.kafka_max_request_size,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": 256 * 1024,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def system_topics() -> list[str]:
    """Every event topic and its dead-letter topic."""
    return [*topics.ALL, *(topics.dead_letter_topic(name) for name in topics.ALL)]


async def ensure_topics(settings: KafkaSettings, names: Iterable[str]) -> list[str]:
    """Create the topics that do not exist yet; return the ones created. Idempotent."""
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        if not missing:
            return []
        new = [
            NewTopic(name, settings.kafka_partitions, settings.kafka_replication_factor)
            for name in missing
        ]
        response = await admin.create_topics(new)
    # A concurrent creator (another relay) winning the race is success too.
    for name, code, message in _topic_errors(response):
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise TopicCreationFailed(name, code, message)
    log.info("created topics %s", ", ".join(missing))
    return missing


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    return [(error[0], error[1], error[2] if len(error) > 2 else None)
            for error in response.topic_errors]
