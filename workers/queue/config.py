"""Settings of the queue worker: the API's stores and waiting rooms, and where it serves metrics."""

from services.booking.config import StoreSettings
from services.common.logging import LogSettings
from services.common.settings_types import MetricsPort


class Settings(StoreSettings, LogSettings):
    queue_metrics_port: MetricsPort = 9111
    queue_metrics_host: str = "127.0.0.1"
