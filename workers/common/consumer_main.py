"""What every consumer worker's entry point does the same way."""

from services.common.consumer_settings import ConsumerSettings
from workers.common.consumer import ConsumerPolicy


def consumer_policy(settings: ConsumerSettings) -> ConsumerPolicy:
    """The retry policy set by CONSUMER_MAX_ATTEMPTS and CONSUMER_RETRY_*."""
    return ConsumerPolicy(
        settings.consumer_max_attempts, settings.consumer_retry_base_seconds,
        settings.consumer_retry_max_seconds,
    )
