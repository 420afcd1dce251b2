"""Settings of the booking service, named exactly as API.md §4 names them."""

import os
from typing import Annotated

from pydantic import AnyUrl, Field, UrlConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PostgresUrl = Annotated[
    AnyUrl, UrlConstraints(allowed_schemes=["postgresql+asyncpg"], host_required=False)
]
RedisUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]

Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: PostgresUrl
    redis_url: RedisUrl
    kafka_bootstrap_servers: Annotated[str, Field(min_length=3)]
    auth_jwt_secret: Annotated[str, Field(min_length=16)]

    booking_host: str = "127.0.0.1"
    booking_port: Annotated[int, Field(ge=1, le=65535)] = 8000

    queue_admit_per_second: Positive = 50
    queue_max_active: Positive = 500
    queue_active_ttl_seconds: Positive = 600
    # Separates independent waiting rooms sharing one Redis (e.g. per deployment or test).
    queue_namespace: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")] = "main"
    # A WAITING token that is not polled for this long loses its place in line.
    queue_wait_grace_seconds: Positive = 60
    hold_ttl_seconds: Positive = 300
    max_holds_per_user: Positive = 4
    venue_max_attempts: Positive = 5

    # Redis locks only reduce contention; the database alone guarantees no oversell.
    redis_locks_enabled: bool = True
    db_pool_size: Positive = 20
    db_pool_overflow: Annotated[int, Field(ge=0)] = 10
    # uvicorn worker processes of booking-api (uvicorn's own variable), one per core by
    # default: on 2 cores, 2 workers paid 20-25 % more payments/s than 1 with the whole
    # `make run` stack beside them (bench/). Above 1, metrics are kept in files under
    # PROMETHEUS_MULTIPROC_DIR and summed over the workers.
    web_concurrency: Annotated[int, Field(ge=1, default_factory=lambda: os.cpu_count() or 1)]
    prometheus_multiproc_dir: str | None = None
    # The system view on /metrics (entrypoints/api/system_metrics.py): the consumer groups
    # whose lag it reports, named as the workers name them (their CONSUMER_GROUP_PREFIX),
    # and how long each source may take before its series are left out of a scrape.
    consumer_group_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "booking"
    metrics_db_timeout_seconds: Seconds = 1.0
    metrics_broker_timeout_seconds: Seconds = 2.0
    # Each API process reads the broker's offsets at most this often, however often scraped.
    metrics_broker_cache_seconds: Seconds = 5.0

    @field_validator("auth_jwt_secret")
    @classmethod
    def refuse_placeholder_secret(cls, value: str) -> str:
        if value.lower() in {"changeme", "change-me-please", "secret" * 3}:
            raise ValueError("is a placeholder; set a real secret")
        return value

    @property
    def database_dsn(self) -> str:
        return str(self.database_url)
