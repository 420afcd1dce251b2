"""Settings of the outbox relay (`booking-relay`), read from the environment."""

import os
import socket
from typing import Annotated

from pydantic import Field, model_validator

from services.common.kafka import KafkaSettings
from services.common.logging import LogSettings
from services.common.settings_types import DatabaseSettings, GroupPrefix, MetricsPort, Seconds


def default_relay_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(KafkaSettings, LogSettings, DatabaseSettings):
    relay_name: Annotated[str, Field(default_factory=default_relay_name, min_length=1)]
    relay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1000
    # Claim/publish loops per process: one claims while another awaits the broker.
    relay_concurrency: Annotated[int, Field(ge=1, le=16)] = 3
    # A killed relay's rows wait this long before another relay takes them over; it
    # must outlast a publish (KAFKA_REQUEST_TIMEOUT_MS) or rows are sent twice.
    relay_lease_seconds: Seconds = 30.0
    # NOTIFY wakes the relay at commit; polling only covers a lost listener.
    relay_poll_interval_seconds: Seconds = 1.0
    relay_backoff_initial_seconds: Seconds = 0.2
    relay_backoff_max_seconds: Seconds = 10.0
    relay_retention_seconds: Seconds = 7 * 24 * 3600.0
    relay_purge_interval_seconds: Seconds = 300.0
    relay_stats_interval_seconds: Seconds = 5.0
    relay_metrics_port: MetricsPort = 9101
    relay_metrics_host: str = "127.0.0.1"
    # Consumer lag and DLQ sizes (kafka_consumer_group_lag, dlq_messages) are read
    # from the broker this often, each read given up after the timeout.
    relay_offsets_interval_seconds: Seconds = 5.0
    relay_offsets_timeout_seconds: Seconds = 5.0
    # The consumer workers' CONSUMER_GROUP_PREFIX: it names the groups whose lag we report.
    consumer_group_prefix: GroupPrefix = "booking"

    @model_validator(mode="after")
    def lease_outlasts_publish(self) -> "Settings":
        if self.relay_lease_seconds * 1000 <= self.kafka_request_timeout_ms:
            raise ValueError(
                "RELAY_LEASE_SECONDS must exceed KAFKA_REQUEST_TIMEOUT_MS, or a slow publish "
                "loses its lease and rows are published twice"
            )
        return self
