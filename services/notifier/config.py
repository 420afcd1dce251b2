"""Settings of the notifier worker (`booking-worker notifier`), named as API.md §4 names them."""

from typing import Annotated

from pydantic import AnyHttpUrl, Field, SecretStr

from services.common.consumer_settings import ConsumerSettings
from services.common.http_resilience import ResiliencePolicy
from services.common.provider_settings import provider_policy
from services.common.settings_types import DatabaseSettings, MetricsPort, Positive, Seconds

Secret = Annotated[SecretStr, Field(min_length=1)]
Attempts = Annotated[int, Field(ge=1, le=20)]
Rate = Annotated[float, Field(gt=0)]


class Settings(ConsumerSettings, DatabaseSettings):
    kakao_api_url: AnyHttpUrl
    kakao_api_key: Secret
    kakao_sender_key: Annotated[str, Field(min_length=1)]
    sms_api_url: AnyHttpUrl
    sms_api_key: Secret

    kakao_timeout_seconds: Seconds = 3.0
    kakao_max_attempts: Attempts = 3
    kakao_retry_base_seconds: Seconds = 0.2
    kakao_retry_max_seconds: Seconds = 2.0
    # Providers publish send limits; a rush must not trip them.
    kakao_rate_per_second: Rate = 100.0
    kakao_breaker_fail_max: Positive = 5
    kakao_breaker_reset_seconds: Seconds = 30.0

    sms_timeout_seconds: Seconds = 3.0
    sms_max_attempts: Attempts = 3
    sms_retry_base_seconds: Seconds = 0.2
    sms_retry_max_seconds: Seconds = 2.0
    sms_rate_per_second: Rate = 50.0
    sms_breaker_fail_max: Positive = 5
    sms_breaker_reset_seconds: Seconds = 30.0

    notifier_db_pool_size: Annotated[int, Field(ge=1, le=100)] = 8
    notifier_metrics_port: MetricsPort = 9113

    @property
    def kakao_policy(self) -> ResiliencePolicy:
        return provider_policy(
            timeout=self.kakao_timeout_seconds, max_attempts=self.kakao_max_attempts,
            retry_base=self.kakao_retry_base_seconds, retry_max=self.kakao_retry_max_seconds,
            rate_per_second=self.kakao_rate_per_second,
            breaker_fail_max=self.kakao_breaker_fail_max,
            breaker_reset=self.kakao_breaker_reset_seconds,
        )

    @property
    def sms_policy(self) -> ResiliencePolicy:
        return provider_policy(
            timeout=self.sms_timeout_seconds, max_attempts=self.sms_max_attempts,
            retry_base=self.sms_retry_base_seconds, retry_max=self.sms_retry_max_seconds,
            rate_per_second=self.sms_rate_per_second,
            breaker_fail_max=self.sms_breaker_fail_max,
            breaker_reset=self.sms_breaker_reset_seconds,
        )
