"""Memory: RSS of every process of the system before, during and after a soak of payments."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict

import psutil

from bench import checks
from bench.loadgen import collect, spawn
from bench.report import Outcome
from bench.scenarios.common import OPEN_ROOMS, flow_spec, log_dir, prefix, stack_options
from bench.stack import RunningStack, running_stack
from services.common.broker_offsets import BrokerOffsets, consumer_groups

MB = 1024 * 1024
STEADY_LIMIT_MB = 150  # DESIGN.md: every process of ours ≤ 150 MB steady
SETTINGS = OPEN_ROOMS
# Servers are reported, not judged: PostgreSQL's RSS counts the shared buffers a
# backend has touched, and they are not ours to trim.
SERVERS = ("postgres", "redis", "broker", "simulator")


def rss_mb(stack: RunningStack) -> dict[str, float]:
    """RSS of every process now, by name; PostgreSQL's many backends as one "largest" row."""
    found: dict[str, float] = {}
    for name, process in stack.processes().items():
        try:
            rss = process.memory_info().rss / MB
        except psutil.Error:
            continue
        if name.startswith("postgres/"):
            name = "postgres/largest backend" if " bench_" in name else "postgres/largest auxiliary"
            found[name] = max(found.get(name, 0.0), rss)
        else:
            found[name] = rss
    return found


def consumer_lag(stack: RunningStack) -> str:
    """Messages each consumer group still has to handle: "behind", told apart from "leaking"."""
    reader = BrokerOffsets(stack.env["KAFKA_BOOTSTRAP_SERVERS"],
                           consumer_groups(stack.env.get("CONSUMER_GROUP_PREFIX", "booking")), 10.0)
    try:
        offsets = asyncio.run(reader.read())
    except Exception as error:  # a figure to report, not a reason to lose the run
        return f"unknown ({type(error).__name__})"
    lag: dict[str, int] = defaultdict(int)
    for (group, _), messages in offsets.lag.items():
        lag[group] += messages
    return ", ".join(f"{group} {messages:,}" for group, messages in sorted(lag.items())) or "-"


def growth(samples: list[float]) -> float:
    """Mean of the last quarter minus mean of the second quarter (the first is warm-up)."""
    if len(samples) < 8:
        return 0.0
    quarter = len(samples) // 4
    return statistics.fmean(samples[-quarter:]) - statistics.fmean(samples[quarter:2 * quarter])


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("memory")
    soak = options.soak
    rate = options.soak_rate
    every = max(2.0, soak / 120)
    with running_stack(SETTINGS, log_dir=log_dir(options, "memory"), **stack_options(options)) as stack:
        concert = checks.create_concert(stack, int(rate * (soak + 30) * 1.2) + 10_000, 1_000)
        schedules = concert.schedules
        before = rss_mb(stack)
        log = stack.log_path.with_name("generator.log")
        generator = spawn(flow_spec(stack, "payment", {
            "prefix": prefix("mem"), "users": 50, "charge": 10_000_000, "schedules": schedules,
            "concert_id": concert.id,
            "seats_per_schedule": checks.MAX_SEATS_PER_SCHEDULE, "warmup": 0, "duration": soak,
            "rate": rate, "claims": {"name": "Soak", "phone_number": "01000000000"},
        }), log)
        during: dict[str, list[float]] = defaultdict(list)
        while generator.running():
            for name, value in rss_mb(stack).items():
                during[name].append(value)
            time.sleep(every)
        result = collect(generator)
        time.sleep(10)  # the consumers catch up; then the system is idle again
        after = rss_mb(stack)
        behind = consumer_lag(stack)
    paid = result["counters"].get("payments", 0)
    outcome.add("soak", f"{soak:,.0f} s at {rate:,.0f} payments/s asked: {paid:,} paid, "
                f"RSS every {every:.0f} s")
    # A consumer still far behind at the "after" reading holds its backlog: growth, not a leak.
    outcome.add("consumer lag at the after reading (messages)", behind)
    for name in sorted(before.keys() | after.keys() | during.keys()):
        samples = during.get(name, [])
        peak = max(samples, default=0.0)
        grew = growth(samples)
        judged = not any(server in name for server in SERVERS)
        ok = (peak <= STEADY_LIMIT_MB and grew <= max(5.0, 0.05 * peak)) if judged else None
        outcome.add(f"RSS {name}", f"{before.get(name, 0):.0f} → peak {peak:.0f} → "
                    f"{after.get(name, 0):.0f} MB; growth {grew:+.1f} MB",
                    "≤ 150 MB, no growth" if judged else "", ok)
        outcome.data[name] = {"before": before.get(name), "during": samples,
                              "after": after.get(name)}
    outcome.notes.append("growth = mean RSS of the soak's last quarter minus its second quarter;"
                         " a short soak (--soak 30) shows the mechanics, not a trend")
    return outcome
