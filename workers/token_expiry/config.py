"""Settings of the token-expiry consumer (`booking-worker token-expiry`)."""

from services.booking.config import QueueNamespace, RedisUrl
from services.common.consumer_settings import ConsumerSettings
from services.common.settings_types import MetricsPort


class Settings(ConsumerSettings):
    redis_url: RedisUrl
    # Must match the API's QUEUE_NAMESPACE: it names the waiting room's keys.
    queue_namespace: QueueNamespace = "main"
    token_expiry_metrics_port: MetricsPort = 9114
