"""Settings of the booking service, named exactly as API.md §4 names them."""

import ipaddress
import os
from functools import lru_cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyUrl,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.booking.domain.waiting_room import Lifetimes, RoomPolicy
from services.common.redis_client import CLUSTER_SCHEMES, URL_SCHEMES
from services.common.settings_types import DatabaseSettings, GroupPrefix, MetricsPort, Positive, Seconds


# One server (redis://, rediss://, unix://) or any node of a Redis Cluster
# (redis+cluster://host:port, rediss+cluster://host:port): services/common/redis_client.py.
def names_a_cluster_node(url: AnyUrl) -> AnyUrl:
    if url.scheme in CLUSTER_SCHEMES and not url.host:
        raise ValueError("a Redis Cluster URL names one of its nodes: redis+cluster://host:port")
    return url


RedisUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=list(URL_SCHEMES)),
                     AfterValidator(names_a_cluster_node)]

NonNegative = Annotated[int, Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Separates deployments (or test runs) sharing one Redis; each concert has its own room.
QueueNamespace = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")]

# HS256 with a shorter key is guessable offline from one token (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32


@lru_cache(maxsize=16)  # read on every anonymous request; a few distinct values per process
def networks(addresses: str) -> tuple[Network, ...]:
    """The comma-separated IP addresses and CIDR blocks of `addresses` (empty items ignored)."""
    parsed = []
    for item in filter(None, (part.strip() for part in addresses.split(","))):
        try:
            parsed.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR block") from None
    return tuple(parsed)


class TokenPolicy(BaseSettings):
    """The JWT settings: the API verifies tokens by them, `booking-token` issues tokens by them."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    auth_jwt_secret: str
    # When set, a token must carry a matching `aud` / `iss` (API.md §1, token policy).
    auth_jwt_audience: Word | None = None
    auth_jwt_issuer: Word | None = None
    auth_jwt_max_lifetime_seconds: Positive = 86_400

    @field_validator("auth_jwt_secret")
    @classmethod
    def refuse_weak_secret(cls, value: str) -> str:
        if value.lower() in {"changeme", "change-me-please", "secret" * 3}:
            raise ValueError("is a placeholder; set a real secret")
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise ValueError("is not valid UTF-8") from None
        if size < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes, not {size}"
                             " (e.g. `openssl rand -base64 32`)")
        return value


class StoreSettings(DatabaseSettings):
    """The stores of the API, the queue worker and booking-reconcile, and the waiting rooms in Redis."""

    redis_url: RedisUrl
    db_pool_size: Positive = 20
    db_pool_overflow: Annotated[int, Field(ge=0)] = 10
    queue_namespace: QueueNamespace = "main"
    queue_active_ttl_seconds: Positive = 600
    # A WAITING token that is not polled for this long loses its place in line.
    queue_wait_grace_seconds: Positive = 60


class Settings(StoreSettings, TokenPolicy):
    kafka_bootstrap_servers: Annotated[str, Field(min_length=3)]

    booking_host: str = "127.0.0.1"
    booking_port: Port = 8000
    # /metrics is served here only, never on the public port; 0: not served (as the
    # workers' *_METRICS_PORT=0), for processes nothing scrapes.
    metrics_host: Word = "127.0.0.1"
    metrics_port: MetricsPort = 9100
    # A client must send a request's whole head within this many seconds of connecting
    # or of its previous answer; granian (hyper) then closes the connection. It bounds
    # slow senders and idle kept-alive connections alike (one timer in hyper).
    http_header_read_timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 10

    # Token buckets, bursts up to twice the rate; 0 turns a limit off.
    rate_limit_user_per_second: NonNegative = 20
    rate_limit_anon_per_second: NonNegative = 100
    # Peers (reverse proxies) whose X-Forwarded-For names the client; see `forwarded_networks`.
    forwarded_allow_ips: str = ""

    # Defaults of each concert's waiting room (POST /admin/concerts may set its own).
    queue_admit_per_second: Annotated[int, Field(ge=1, le=10_000)] = 50
    queue_max_active: Annotated[int, Field(ge=1, le=100_000)] = 500
    hold_ttl_seconds: Positive = 300
    max_holds_per_user: Positive = 4
    # Idempotency-Keys one user may hold within 24 hours (each is a stored response);
    # beyond it a new key is refused with 429 IDEMPOTENCY_KEY_LIMIT_REACHED. A person
    # pays and charges a few times a day; a script looping over fresh keys stops here.
    idempotency_keys_per_user: Positive = 1000

    # Redis locks only reduce contention; the database alone guarantees no oversell.
    redis_locks_enabled: bool = True
    # Server worker processes of booking-api (the usual variable), one per core by
    # default: on 2 cores, 2 workers paid 20-25 % more payments/s than 1 with the whole
    # `make run` stack beside them (bench/). Above 1, metrics are kept in files under
    # PROMETHEUS_MULTIPROC_DIR and summed over the workers.
    web_concurrency: Annotated[int, Field(ge=1, default_factory=lambda: os.cpu_count() or 1)]
    prometheus_multiproc_dir: str | None = None
    # The system view on /metrics (entrypoints/api/system_metrics.py): the consumer groups
    # whose lag it reports, named as the workers name them (their CONSUMER_GROUP_PREFIX),
    # and how long each source may take before its series are left out of a scrape.
    consumer_group_prefix: GroupPrefix = "booking"
    metrics_db_timeout_seconds: Seconds = 1.0
    metrics_broker_timeout_seconds: Seconds = 2.0
    # Each API process reads the broker's offsets at most this often, however often scraped.
    metrics_broker_cache_seconds: Seconds = 5.0
    # outbox_relay_publishing turns 0 once events have waited this long with nothing published.
    outbox_stalled_after_seconds: Seconds = 30.0

    @field_validator("forwarded_allow_ips")
    @classmethod
    def check_forwarded_allow_ips(cls, value: str) -> str:
        networks(value)
        return value

    @model_validator(mode="after")
    def keep_metrics_off_the_public_port(self) -> "Settings":
        if self.metrics_port == self.booking_port:
            raise ValueError("METRICS_PORT must differ from BOOKING_PORT:"
                             " metrics are not served on the public port")
        return self

    # A plain property: a cached one would be copied, stale, by model_copy(update=...).
    @property
    def forwarded_networks(self) -> tuple[Network, ...]:
        """The parsed FORWARDED_ALLOW_IPS: peers trusted to name the client address."""
        return networks(self.forwarded_allow_ips)


def room_defaults(settings: Settings) -> RoomPolicy:
    """The policy of a room created without one: QUEUE_* settings, open now, no pre-queue."""
    return RoomPolicy(settings.queue_admit_per_second, settings.queue_max_active)


def queue_lifetimes(settings: StoreSettings) -> Lifetimes:
    return Lifetimes(settings.queue_active_ttl_seconds, settings.queue_wait_grace_seconds)
