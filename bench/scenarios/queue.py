"""Waiting queue: token issues by distinct users, then position polls of those tokens."""

from __future__ import annotations

import argparse
from typing import Any

from bench import checks
from bench.report import Outcome, latency, statuses
from bench.scenarios.common import (
    cpu_rows,
    generator_load,
    log_dir,
    prefix,
    request_summaries,
    run_flow,
    stack_options,
)
from bench.stack import running_stack

# Nobody is admitted: every token stays WAITING, every poll reports a position (the
# concert's room takes these as its defaults). The grace
# is long so that no token is dropped as abandoned between the phases.
SETTINGS = {"QUEUE_ADMIT_PER_SECOND": "1", "QUEUE_MAX_ACTIVE": "1",
            "QUEUE_WAIT_GRACE_SECONDS": "3600"}
TARGETS = {"issue": ("queue token", 5_000), "poll": ("queue poll", 8_000)}


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("waiting queue")
    # Users who registered before (rows exist) but whom the API has not seen yet.
    users = int(6_000 * (options.warmup + options.duration))
    with running_stack(SETTINGS, log_dir=log_dir(options, "queue"),
                       **stack_options(options)) as stack:
        who = prefix("q")
        checks.seed_users(stack, who, users)
        concert = checks.create_concert(stack, 1, 1_000)  # its room: the SETTINGS above
        result = run_flow(stack, "queue", {
            "prefix": who, "users": users, "concurrency": options.users, "concert_id": concert.id,
            "warmup": options.warmup, "duration": options.duration,
        })
    for phase, (kind, target) in TARGETS.items():
        _phase_rows(outcome, options, result[phase], kind,
                    "token issues/s" if phase == "issue" else "position polls/s", phase, target)
    # What a request costs before it does anything: the ceiling of every row above.
    _phase_rows(outcome, options, result["floor"], "liveness", "floor: GET /health/live/s", "floor")
    return outcome


def _phase_rows(outcome: Outcome, options: argparse.Namespace, result: dict[str, Any], kind: str,
                label: str, phase: str, target: int | None = None) -> None:
    summary = request_summaries(result)[kind]
    outcome.add(f"{label} ({options.users} connections)", f"{summary.per_second:,.0f}",
                f"≥ {target:,}" if target else "", summary.per_second >= target if target else None)
    outcome.add("  p50 / p95 / p99", latency(summary))
    errors = sum(n for status, n in summary.statuses.items() if not status.startswith("2"))
    outcome.add("  answers by status", statuses(summary), "no errors", errors == 0)
    cpu_rows(outcome, result, summary.count, f" ({phase})")
    generator_load(outcome, result, f" ({phase})")
    outcome.data[phase] = vars(summary)
