"""`booking-worker saga`: the ticket saga, CONSUMER_CONCURRENCY payments at once per process.

Registers each paid ticket with the venue, then confirms it, or undoes the payment
(ticket VOID, refund, seat free) when the venue refuses or stays unreachable.
Settings: DATABASE_URL, VENUE_API_URL, VENUE_*, KAFKA_*, CONSUMER_*, SAGA_METRICS_PORT.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.booking.adapters.venue_client import VenueClient
from services.booking.domain.errors import BalanceLimitExceeded
from services.booking.domain.events import PaymentCompleted
from services.booking.service_layer.saga import PaymentUnknown, TicketSaga
from services.common import topics
from services.common.envelope import Envelope
from services.common.http_resilience import ResilientCaller, provider_http
from workers.common.breaker_publisher import publishing_breaker_states
from workers.common.consumer import EventConsumer, Route
from workers.common.consumer_main import consumer_policy, run_consumer_part
from workers.common.consumer_metrics import SAGA_OUTCOMES
from workers.common.database import create_worker_engine, is_database_outage
from workers.common.event_data import parse_event
from workers.common.kafka_worker import dead_letter_producer
from workers.saga.config import Settings

PART = "ticket-saga"
TOPICS = [topics.PAYMENTS]
log = logging.getLogger("workers.saga")


@asynccontextmanager
async def saga_consumer(settings: Settings) -> AsyncIterator[EventConsumer]:
    group = settings.group(PART)
    engine = create_worker_engine(
        settings.database_dsn, pool_size=settings.saga_db_pool_size, application_name=group
    )
    try:
        async with provider_http() as http, dead_letter_producer(settings, group) as producer:
            caller = ResilientCaller("venue", http, settings.venue_policy)
            venue = VenueClient(caller, base_url=str(settings.venue_api_url))
            saga = TicketSaga(engine, venue, settings.venue_breaker_reset_seconds)

            async def on_payment_completed(envelope: Envelope) -> None:
                payment = parse_event(PaymentCompleted, envelope.data)
                outcome = await saga.on_payment_completed(envelope.id, payment, envelope.trace_id)
                SAGA_OUTCOMES.labels(outcome).inc()
                log.info("payment %s: %s", payment.payment_id, outcome,
                         extra={"payment_id": str(payment.payment_id), "outcome": outcome})

            # The venue breaker's state, for the API's /metrics.
            async with publishing_breaker_states(engine, [caller.breaker]):
                yield EventConsumer(
                    group, {"PaymentCompleted": Route(on_payment_completed)}, producer,
                    # The saga's own output shares the payment's partition.
                    ignored={"PaymentRefunded"},
                    # A refund that would break the wallet limit needs a person, not a retry.
                    permanent=(PaymentUnknown, BalanceLimitExceeded),
                    is_outage=is_database_outage, policy=consumer_policy(settings),
                )
    finally:
        await engine.dispose()


def main() -> None:
    run_consumer_part(__doc__, Settings, PART, TOPICS, saga_consumer,
                      metrics_port=lambda settings: settings.saga_metrics_port)


if __name__ == "__main__":
    main()
