"""`booking-worker notifier`: deliver each requested notification once, Kakao then SMS.

Settings: DATABASE_URL, KAKAO_API_URL, KAKAO_API_KEY, KAKAO_SENDER_KEY, SMS_API_URL,
SMS_API_KEY, KAKAO_* / SMS_* resilience, KAFKA_*, CONSUMER_*, NOTIFIER_METRICS_PORT.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.booking.domain.events import NotificationRequested
from services.common import topics
from services.common.envelope import Envelope
from services.common.http_resilience import ResilientCaller, provider_http
from services.notifier.adapters.kakao import KakaoAlimTalkClient
from services.notifier.adapters.sms import SmsClient
from services.notifier.config import Settings
from services.notifier.service import ChannelsUnavailable, DeliveryFailed, NotificationUnknown, Notifier
from workers.common.breaker_publisher import publishing_breaker_states
from workers.common.consumer import EventConsumer, Route
from workers.common.consumer_main import consumer_policy, run_consumer_part
from workers.common.consumer_metrics import NOTIFICATIONS
from workers.common.database import create_worker_engine, is_database_outage
from workers.common.event_data import parse_event
from workers.common.kafka_worker import dead_letter_producer

PART = "notifier"
TOPICS = [topics.NOTIFICATIONS]
log = logging.getLogger("workers.notifier")


@asynccontextmanager
async def notifier_consumer(settings: Settings) -> AsyncIterator[EventConsumer]:
    group = settings.group(PART)
    engine = create_worker_engine(
        settings.database_dsn, pool_size=settings.notifier_db_pool_size, application_name=group
    )
    try:
        async with provider_http() as http, dead_letter_producer(settings, group) as producer:
            callers = (ResilientCaller("kakao", http, settings.kakao_policy),
                       ResilientCaller("sms", http, settings.sms_policy))
            kakao = KakaoAlimTalkClient(
                callers[0], base_url=str(settings.kakao_api_url),
                api_key=settings.kakao_api_key.get_secret_value(), sender_key=settings.kakao_sender_key,
            )
            sms = SmsClient(callers[1], base_url=str(settings.sms_api_url),
                            api_key=settings.sms_api_key.get_secret_value())
            notifier = Notifier(engine, kakao, sms)

            async def on_notification_requested(envelope: Envelope) -> None:
                request = parse_event(NotificationRequested, envelope.data)
                try:
                    result = await notifier.deliver(request, envelope.trace_id)
                except DeliveryFailed:
                    NOTIFICATIONS.labels("failed", "").inc()
                    raise
                except ChannelsUnavailable:  # both breakers open: retried, then parked
                    NOTIFICATIONS.labels("unavailable", "").inc()
                    raise
                outcome, _, channel = result.partition(":")
                NOTIFICATIONS.labels(outcome, channel).inc()
                log.info("notification %s %s for user %s: %s", request.notification_id,
                         request.template, request.user_id, result,
                         extra={"notification_id": str(request.notification_id), "outcome": result})

            # The kakao and sms breakers' states, for the API's /metrics.
            try:
                async with publishing_breaker_states(engine, [caller.breaker for caller in callers]):
                    yield EventConsumer(
                        group, {"NotificationRequested": Route(on_notification_requested)}, producer,
                        # Both providers were already retried by their callers: park at once.
                        permanent=(DeliveryFailed, NotificationUnknown),
                        is_outage=is_database_outage, policy=consumer_policy(settings),
                    )
            finally:
                await notifier.close()
    finally:
        await engine.dispose()


def main() -> None:
    run_consumer_part(__doc__, Settings, PART, TOPICS, notifier_consumer,
                      metrics_port=lambda settings: settings.notifier_metrics_port)


if __name__ == "__main__":
    main()
