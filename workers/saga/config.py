"""Settings of the ticket saga worker (`booking-worker saga`)."""

from typing import Annotated

from pydantic import AnyHttpUrl, Field

from services.common.consumer_settings import ConsumerSettings
from services.common.http_resilience import ResiliencePolicy
from services.common.provider_settings import provider_policy
from services.common.settings_types import DatabaseSettings, MetricsPort, Positive, Seconds


class Settings(ConsumerSettings, DatabaseSettings):
    venue_api_url: AnyHttpUrl
    # HTTP attempts per registration before the saga gives up and refunds (API.md §2).
    venue_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    venue_timeout_seconds: Seconds = 3.0
    venue_retry_base_seconds: Seconds = 0.2
    venue_retry_max_seconds: Seconds = 5.0
    venue_rate_per_second: Annotated[float, Field(gt=0)] = 200.0
    # Above VENUE_MAX_ATTEMPTS, so one ticket the venue keeps failing cannot open the
    # breaker alone and get the next, healthy registrations refunded.
    venue_breaker_fail_max: Positive = 10
    # Also how long the saga waits for an open breaker before it refunds: during a
    # whole venue outage each payment is refunded after at most this pause.
    venue_breaker_reset_seconds: Seconds = 10.0
    saga_db_pool_size: Annotated[int, Field(ge=1, le=100)] = 8
    saga_metrics_port: MetricsPort = 9112

    @property
    def venue_policy(self) -> ResiliencePolicy:
        return provider_policy(
            timeout=self.venue_timeout_seconds, max_attempts=self.venue_max_attempts,
            retry_base=self.venue_retry_base_seconds, retry_max=self.venue_retry_max_seconds,
            rate_per_second=self.venue_rate_per_second,
            breaker_fail_max=self.venue_breaker_fail_max,
            breaker_reset=self.venue_breaker_reset_seconds,
        )
