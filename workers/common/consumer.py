"""Poison-proof event handling shared by every consumer, whatever feeds it the messages.

A message goes through: decode the envelope (the raw bytes: the Kafka client hands them
over undecoded, so a value that is not an envelope is parked, not a crash), route by event
type and version, run the handler. What cannot succeed is parked in `<topic>.dlq`
with its cause, and only then does `process` return, so the offset is committed
after the message is either handled or parked, never skipped:

- undecodable value, unknown event type, unsupported version, malformed data or a
  `permanent` error from the handler: parked at once;
- any other handler error: retried with capped exponential backoff and full
  jitter, then parked after `max_attempts`;
- an outage (database, Redis or network unreachable): retried until it ends, since
  parking every message during an outage would only move the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.envelope import HEADER_TRACE_ID, Envelope, InvalidEnvelope, decode
from services.common.tracing import traced
from workers.common import dead_letters
from workers.common.consumer_metrics import CONSUMER_MESSAGES
from workers.common.event_data import MalformedEvent

log = logging.getLogger("workers.consumer")

Handler = Callable[[Envelope], Awaitable[Any]]
IsOutage = Callable[[BaseException], bool]


class UnknownEvent(Exception):
    """No handler knows this event type on this topic."""


class UnsupportedVersion(Exception):
    """The event type is known, this version of it is not."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def trace_id(self) -> str | None:
        for name, value in self.headers:
            if name == HEADER_TRACE_ID:
                return value.decode("utf-8", errors="replace") or None
        return None


@dataclass(frozen=True)
class Route:
    handler: Handler
    versions: frozenset[int] = frozenset({1})


@dataclass(frozen=True)
class ConsumerPolicy:
    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not a secret


def never_an_outage(error: BaseException) -> bool:
    return False


@dataclass
class EventConsumer:
    """Handle one consumer group's messages: route, retry, park; never raise, never skip."""

    name: str
    routes: Mapping[str, Route]
    producer: AIOKafkaProducer
    # Types that travel on the topic but are someone else's business.
    ignored: Collection[str] = ()
    permanent: tuple[type[Exception], ...] = ()
    is_outage: IsOutage = never_an_outage
    policy: ConsumerPolicy = field(default_factory=ConsumerPolicy)

    async def process(self, message: RawMessage) -> str:
        """Handle or park `message`; return the outcome (handled, ignored, parked)."""
        # The header, not the value: even a message that fails to decode keeps its trace.
        with traced(message.trace_id):
            return await self._process(message)

    async def _process(self, message: RawMessage) -> str:
        try:
            envelope = decode(message.value)
            route = self._route(envelope)
        except (InvalidEnvelope, UnknownEvent, UnsupportedVersion) as poison:
            return await self._park(message, poison, attempts=1)
        if route is None:
            return self._count("ignored")
        failure = await self._run(route.handler, envelope, message)
        if failure is None:
            return self._count("handled")
        return await self._park(message, *failure)

    def _route(self, envelope: Envelope) -> Route | None:
        route = self.routes.get(envelope.type)
        if route is None:
            if envelope.type in self.ignored:
                return None
            raise UnknownEvent(f"{self.name} does not know event type {envelope.type!r}")
        if envelope.version not in route.versions:
            raise UnsupportedVersion(
                f"{envelope.type} version {envelope.version} is not supported "
                f"(supported: {sorted(route.versions)})"
            )
        return route

    async def _run(
        self, handler: Handler, envelope: Envelope, message: RawMessage
    ) -> tuple[Exception, int] | None:
        attempt, outage_pauses = 0, 0
        permanent: tuple[type[Exception], ...] = (MalformedEvent, *self.permanent)
        while True:
            try:
                await handler(envelope)
                return None
            except Exception as error:
                if isinstance(error, permanent):
                    return error, attempt + 1
                if self.is_outage(error):
                    outage_pauses += 1
                    await self._pause_for_outage(error, outage_pauses, message)
                    continue
                attempt += 1
                if attempt >= self.policy.max_attempts:
                    return error, attempt
                delay = self.policy.backoff(attempt)
                log.warning("%s: %s at %s failed (attempt %d: %r); retrying in %.2fs", self.name,
                            envelope.type, _where(message), attempt, error, delay)
                await asyncio.sleep(delay)

    async def _pause_for_outage(self, error: Exception, pauses: int, message: RawMessage) -> None:
        # Logged on the first pause and then rarely: an outage is one event, not thousands.
        if pauses == 1 or pauses % 20 == 0:
            log.warning("%s: dependency unavailable at %s (%r); waiting", self.name,
                        _where(message), error)
        await asyncio.sleep(min(self.policy.max_delay, self.policy.base_delay * 2 ** min(pauses, 6)))

    async def _park(self, message: RawMessage, error: BaseException, attempts: int) -> str:
        pauses = 0
        while True:
            try:
                await dead_letters.park(
                    self.producer, topic=message.topic, partition=message.partition,
                    offset=message.offset, key=message.key, value=message.value,
                    headers=message.headers, error=error, attempts=attempts, consumer=self.name,
                )
                break
            except Exception as park_error:  # the broker is away: the offset must wait
                pauses += 1
                await self._pause_for_outage(park_error, pauses, message)
        log.error("%s: parked %s in %s.dlq after %d attempt(s): %s: %s", self.name,
                  _where(message), message.topic, attempts, type(error).__name__, error)
        return self._count("parked")

    def _count(self, outcome: str) -> str:
        CONSUMER_MESSAGES.labels(self.name, outcome).inc()
        return outcome


def _where(message: RawMessage) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"
