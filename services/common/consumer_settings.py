"""Settings every Kafka consumer worker shares (saga, notifier, token expiry)."""

from typing import Annotated

from pydantic import Field

from services.common.kafka import KafkaSettings
from services.common.logging import LogSettings
from services.common.settings_types import GroupPrefix, Seconds


class ConsumerSettings(KafkaSettings, LogSettings):
    # Group ids are "<prefix>-<part>"; another prefix gives an independent set of groups.
    consumer_group_prefix: GroupPrefix = "booking"
    consumer_max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    consumer_retry_base_seconds: Seconds = 0.5
    consumer_retry_max_seconds: Seconds = 10.0
    # How soon a killed worker's partitions move to a live one; heartbeats run in the
    # worker's event loop beside the handlers, which never block it.
    consumer_session_timeout_seconds: Seconds = 10.0
    consumer_rebalance_timeout_seconds: Seconds = 10.0
    consumer_commit_interval_seconds: Seconds = 1.0
    # Messages handled at once per worker (one at a time per key, acked in offset order).
    # The saga and the notifier share their statements among the messages in hand
    # (services/common/coalescing.py), so more in hand means fewer round trips each, not
    # more connections: hold + pay at 8 cost the workers 6.3-6.8 ms of CPU a payment,
    # at 64 4.5 ms. The bound is the messages one poll brings (PREFETCH_MESSAGES).
    consumer_concurrency: Annotated[int, Field(ge=1, le=100)] = 64
    worker_metrics_host: str = "127.0.0.1"

    def group(self, part: str) -> str:
        return f"{self.consumer_group_prefix}-{part}"

