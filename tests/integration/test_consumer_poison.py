"""The consumer core against a real broker: retry, then park with the cause; wait out outages."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from services.common.envelope import Envelope, encode
from services.common.topics import dead_letter_topic
from tests.e2e.kafka_tools import read_all
from tests.relay_support import topic_with_dead_letters
from workers.common.consumer import ConsumerPolicy, EventConsumer, RawMessage, Route

pytestmark = pytest.mark.integration

FAST = ConsumerPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    return await topic_with_dead_letters(kafka_bootstrap, "consumer", partitions=1)


def message(topic: str, offset: int, event_type: str = "Happened") -> RawMessage:
    envelope = Envelope.new(event_type, "thing", "thing-1", {"n": offset})
    return RawMessage(topic, 0, offset, b"thing-1", encode(envelope), tuple(envelope.headers))


class Flaky:
    """A handler that raises `error` for its first `failures` calls."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    async def __call__(self, envelope: Envelope) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def consumer(producer: AIOKafkaProducer, handler: Flaky) -> EventConsumer:
    return EventConsumer(
        "test-consumer", {"Happened": Route(handler)}, producer, policy=FAST,
        is_outage=lambda error: isinstance(error, ConnectionRefusedError),
    )


async def test_a_handler_that_keeps_raising_is_retried_then_parked_with_its_cause(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    handler = Flaky(RuntimeError("bug in the handler"), failures=100)
    poison = message(topic, 41)

    assert await consumer(producer, handler).process(poison) == "parked"

    assert handler.calls == FAST.max_attempts
    (parked,) = await read_all(kafka_bootstrap, dead_letter_topic(topic))
    headers = {key: value.decode() for key, value in parked.headers}
    assert headers["dlq-error-class"] == "RuntimeError"
    assert headers["dlq-error-message"] == "bug in the handler"
    assert headers["dlq-attempts"] == "3" and headers["dlq-original-offset"] == "41"
    assert headers["dlq-consumer"] == "test-consumer" and headers["event-type"] == "Happened"
    assert parked.key == poison.key and parked.value == poison.value


async def test_a_passing_failure_is_retried_and_nothing_is_parked(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    handler = Flaky(RuntimeError("deadlock detected"), failures=2)

    assert await consumer(producer, handler).process(message(topic, 1)) == "handled"
    assert handler.calls == 3
    assert await read_all(kafka_bootstrap, dead_letter_topic(topic)) == []


async def test_an_outage_is_waited_out_without_using_up_attempts(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    handler = Flaky(ConnectionRefusedError("database down"), failures=5)

    assert await consumer(producer, handler).process(message(topic, 1)) == "handled"
    assert handler.calls == 6
    assert await read_all(kafka_bootstrap, dead_letter_topic(topic)) == []


async def test_events_of_others_are_ignored_and_unknown_ones_parked(
    kafka_bootstrap: str, topic: str, producer: AIOKafkaProducer
) -> None:
    handler = Flaky(RuntimeError("never called"), failures=0)
    polite = EventConsumer("test-consumer", {"Happened": Route(handler)}, producer,
                           ignored={"SomeoneElses"}, policy=FAST)

    assert await polite.process(message(topic, 1, "SomeoneElses")) == "ignored"
    assert await polite.process(message(topic, 2, "Unheard")) == "parked"
    assert handler.calls == 0
    (parked,) = await read_all(kafka_bootstrap, dead_letter_topic(topic))
    assert dict(parked.headers)["dlq-error-class"] == b"UnknownEvent"
