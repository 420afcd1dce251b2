"""Series fed from memory equal series fed one observation at a time, once flushed."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common import batched_metrics
from services.common.batched_metrics import BatchedCounter, BatchedHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)
# Below, on and above each bound, and past the last one (+Inf).
VALUES = [0.0, 0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.1, 0.5, 1.0, 3.0, 1e9]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples
            if not sample.name.endswith("_created")}


def test_a_flushed_batch_equals_the_same_observations_made_one_by_one() -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    series = {}
    for name, registry in (("direct", direct), ("batched", batched)):
        latency = Histogram("latency_seconds", "latency", ["route"], buckets=BUCKETS, registry=registry)
        requests = Counter("requests", "requests", ["route"], registry=registry)
        series[name] = (latency.labels("/x"), requests.labels("/x"))
    latency, requests = series["direct"]
    batched_latency = BatchedHistogram(series["batched"][0])
    batched_requests = BatchedCounter(series["batched"][1])
    for value in VALUES:
        latency.observe(value)
        requests.inc()
        batched_requests.inc()
        batched_latency.observe(value)  # may flush on its own: a second passed since the last one
    batched_metrics.flush()
    assert _samples(batched) == _samples(direct)
    assert _samples(direct)[("requests_total", (("route", "/x"),))] == len(VALUES)

    batched_metrics.flush()  # nothing new: nothing added twice
    assert _samples(batched) == _samples(direct)


def test_observations_wait_in_memory_until_a_flush() -> None:
    registry = CollectorRegistry()
    counter = Counter("waiting", "waiting", registry=registry)
    batched = BatchedCounter(counter)
    batched_metrics.flush()
    batched.inc()
    batched.inc()
    assert registry.get_sample_value("waiting_total") == 0
    batched_metrics.flush()
    assert registry.get_sample_value("waiting_total") == 2
