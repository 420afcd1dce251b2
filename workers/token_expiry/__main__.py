"""`booking-worker token-expiry`: remove expired queue tokens from Redis.

The API removes a paid token right after its commit; this consumer is the
guarantee when that step failed (Redis away, process killed). Removing a token is
idempotent, so redelivery and replay are harmless. Settings: REDIS_URL,
QUEUE_NAMESPACE, KAFKA_BOOTSTRAP_SERVERS, CONSUMER_* and TOKEN_EXPIRY_METRICS_PORT.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.domain.events import QueueTokenExpired
from services.booking.domain.waiting_room import Lifetimes
from services.common import topics
from services.common.envelope import Envelope
from services.common.redis_client import connect_redis
from workers.common.consumer import EventConsumer, Route
from workers.common.consumer_main import consumer_policy, run_consumer_part
from workers.common.event_data import parse_event
from workers.common.kafka_worker import dead_letter_producer
from workers.token_expiry.config import Settings

PART = "token-expiry"
TOPICS = [topics.QUEUE_TOKENS]


def is_outage(error: BaseException) -> bool:
    return isinstance(error, RedisConnectionError | RedisTimeout | OSError)


@asynccontextmanager
async def token_expiry_consumer(settings: Settings) -> AsyncIterator[EventConsumer]:
    redis = connect_redis(str(settings.redis_url), timeout=5)
    # Only `expire` is used, which does not depend on token lifetimes.
    room = WaitingRooms(redis, Lifetimes(1, 1), namespace=settings.queue_namespace)

    async def on_token_expired(envelope: Envelope) -> None:
        await room.expire(parse_event(QueueTokenExpired, envelope.data).token)

    try:
        async with dead_letter_producer(settings, settings.group(PART)) as producer:
            yield EventConsumer(
                settings.group(PART), {"QueueTokenExpired": Route(on_token_expired)}, producer,
                is_outage=is_outage, policy=consumer_policy(settings),
            )
    finally:
        await redis.aclose()


def main() -> None:
    run_consumer_part(__doc__, Settings, PART, TOPICS, token_expiry_consumer,
                      metrics_port=lambda settings: settings.token_expiry_metrics_port)


if __name__ == "__main__":
    main()
