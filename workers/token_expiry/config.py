"""Settings of the token-expiry sweeper (`booking-worker token-expiry`)."""

from services.booking.config import QueueNamespace, RedisUrl
from services.common.logging import LogSettings
from services.common.settings_types import DatabaseSettings, MetricsPort


class Settings(DatabaseSettings, LogSettings):
    redis_url: RedisUrl
    # Must match the API's QUEUE_NAMESPACE: it names the waiting room's keys.
    queue_namespace: QueueNamespace = "main"
    token_expiry_metrics_port: MetricsPort = 9114
    worker_metrics_host: str = "127.0.0.1"
