"""Prometheus metrics of outbound provider calls (Kakao, SMS, venue).

Defined once here because the default registry refuses a second metric of the
same name; every caller and breaker labels them with its provider.
"""

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_CIRCUIT_BREAKER_STATE = Gauge(
    "provider_circuit_breaker_state",
    "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
)

PROVIDER_CALLS = Counter(
    "provider_calls",
    "Logical provider calls by final outcome (accepted, rejected, transient_failure, breaker_open).",
    ["provider", "outcome"],
)

PROVIDER_ATTEMPTS = Counter(
    "provider_attempts",
    "HTTP attempts at a provider by result "
    "(accepted, rejected, server_error, throttled, timeout, connection_error).",
    ["provider", "result"],
)

PROVIDER_ATTEMPT_DURATION = Histogram(
    "provider_attempt_duration_seconds",
    "Duration of one HTTP attempt at a provider, rate-limit wait excluded.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)


class ProviderChildren:
    """One provider's children of a metric labelled (provider, outcome), each made once.

    `labels()` looks its child up anew on every call, a few microseconds each, and a
    provider call counts two or three outcomes.
    """

    def __init__(self, metric: Counter, provider: str) -> None:
        self._metric = metric
        self._provider = provider
        self._children: dict[str, Any] = {}

    def __getitem__(self, outcome: str) -> Any:
        child = self._children.get(outcome)
        if child is None:
            child = self._children[outcome] = self._metric.labels(self._provider, outcome)
        return child
