"""Latencies and status codes as the load generator records them, and their summaries."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import cores_used, cpu_seconds
from bench.httpclient import Client, HttpError

NO_ANSWER = "no answer"  # connection refused, reset or timed out: a request not answered


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Summary:
    count: int
    per_second: float
    p50: float
    p95: float
    p99: float
    max: float
    statuses: dict[str, int]

    @classmethod
    def of(cls, latencies: Iterable[float], statuses: Counter[str], seconds: float) -> Summary:
        ordered = sorted(latencies)
        return cls(
            count=len(ordered), per_second=len(ordered) / seconds if seconds > 0 else math.nan,
            p50=percentile(ordered, 0.50), p95=percentile(ordered, 0.95),
            p99=percentile(ordered, 0.99), max=ordered[-1] if ordered else math.nan,
            statuses=dict(sorted(statuses.items())),
        )

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    @property
    def unanswered(self) -> int:
        return self.statuses.get(NO_ANSWER, 0)


@dataclass
class Recorder:
    """Times every request by kind; only requests that finish while `measuring` count."""

    measuring: bool = False
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    counters: Counter[str] = field(default_factory=Counter)
    window: list[float] = field(default_factory=lambda: [0.0, 0.0])
    cpu: list[float] = field(default_factory=lambda: [0.0, 0.0])  # this process, in the window
    watch: dict[str, int] = field(default_factory=dict)  # the system's process trees by name
    system_cpu: list[dict[str, float]] = field(default_factory=list)

    def start(self) -> None:
        self.system_cpu = [cpu_seconds(self.watch)]
        self.measuring = True
        self.window = [time.monotonic(), 0.0]
        self.cpu = [time.process_time(), 0.0]

    def stop(self) -> None:
        self.measuring = False
        self.window[1] = time.monotonic()
        self.cpu[1] = time.process_time()
        self.system_cpu.append(cpu_seconds(self.watch))

    @property
    def seconds(self) -> float:
        end = self.window[1] or time.monotonic()
        return end - self.window[0]

    def count(self, name: str, n: int = 1) -> None:
        if self.measuring:
            self.counters[name] += n

    def observe(self, kind: str, milliseconds: float, status: str) -> None:
        if self.measuring:
            self.latencies[kind].append(milliseconds)
            self.statuses[kind][status] += 1

    async def call(
        self, kind: str, client: Client, method: str, path: str,
        headers: dict[str, str] | None = None, json: Any = None,
    ) -> tuple[int, bytes]:
        """One timed request; status 0 when no answer came (also recorded)."""
        started = time.perf_counter()
        try:
            status, body = await client.request(method, path, headers, json)
        except (HttpError, OSError):
            status, body = 0, b""
        self.observe(kind, (time.perf_counter() - started) * 1000,
                     str(status) if status else NO_ANSWER)
        return status, body

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "latencies": {kind: [round(v, 3) for v in values] for kind, values in self.latencies.items()},
            "statuses": {kind: dict(counter) for kind, counter in self.statuses.items()},
            "counters": dict(self.counters),
            "generator_cpu_share": (self.cpu[1] - self.cpu[0]) / self.seconds if self.seconds else 0.0,
            "cores_used": cores_used(self.system_cpu[0], self.system_cpu[1], self.seconds)
            if len(self.system_cpu) == 2 else {},
        }


def summaries(result: dict[str, Any]) -> dict[str, Summary]:
    """Per request kind, plus "all", from a generator's JSON result."""
    seconds = float(result["seconds"])
    out: dict[str, Summary] = {}
    every: list[float] = []
    all_statuses: Counter[str] = Counter()
    for kind, values in result["latencies"].items():
        statuses = Counter(result["statuses"].get(kind, {}))
        out[kind] = Summary.of(values, statuses, seconds)
        every += values
        all_statuses += statuses
    out["all"] = Summary.of(every, all_statuses, seconds)
    return out
