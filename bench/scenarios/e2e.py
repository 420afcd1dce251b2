"""End to end: payments at a steady rate; payment commit → venue registration call."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bench import checks
from bench.httpclient import Client, json_of
from bench.report import Outcome, latency, statuses
from bench.scenarios.common import cpu_rows, log_dir, prefix, request_summaries, run_flow, stack_options
from bench.stack import RunningStack, running_stack
from bench.stats import Summary

PRICE = 1_000
CHARGE = 10_000_000
SETTINGS = {"QUEUE_ADMIT_PER_SECOND": "1000000", "QUEUE_MAX_ACTIVE": "1000000"}
NEEDED_PARTS = {"relay", "saga"}
SIMULATOR_RECORDS = 10_000  # the simulator remembers this many calls


async def _venue(url: str, method: str, path: str, json: Any = None) -> Any:
    address = urlsplit(url)
    client = Client(address.hostname or "127.0.0.1", address.port or 80, timeout=60)
    try:
        status, body = await client.request(method, path, json=json)
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"venue simulator answered {status}")
    return json_of(body)


async def _venue_calls(url: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = (await _venue(url, "GET", "/_sim/calls"))["items"]
    return calls


def registered_at(stack: RunningStack, tickets: set[str], wait: float) -> dict[str, float]:
    """Wall time of the first venue call for each paid ticket, waiting for stragglers."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + wait
    while True:
        for call in asyncio.run(_venue_calls(stack.env["VENUE_API_URL"])):
            ticket = (call.get("body") or {}).get("ticket_id")
            if ticket in tickets and ticket not in seen:
                seen[ticket] = datetime.fromisoformat(call["received_at"]).timestamp()
        if len(seen) >= len(tickets) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("end to end")
    rate = options.e2e_rate
    seconds = min(options.duration, SIMULATOR_RECORDS * 0.9 / rate)
    with running_stack(SETTINGS, log_dir=log_dir(options, "e2e"), **stack_options(options)) as stack:
        missing = NEEDED_PARTS - set(stack.part_names)
        if missing or "VENUE_API_URL" not in stack.env:
            outcome.add("skipped", f"make run does not start {', '.join(sorted(missing)) or 'a venue'}"
                        " yet; this scenario runs once it does")
            return outcome
        if options.venue_delay:
            asyncio.run(_venue(stack.env["VENUE_API_URL"], "PUT", "/_sim/behaviour",
                               {"delay_seconds": options.venue_delay}))
            outcome.notes.append(f"the venue simulator answered each call after {options.venue_delay} s")
        schedules = checks.create_concert(stack, max(10_000, int(rate * (seconds + 10) * 1.2)), PRICE)
        result = run_flow(stack, "payment", {
            "prefix": prefix("e2e"), "users": options.users, "charge": CHARGE,
            "schedules": schedules, "seats_per_schedule": checks.MAX_SEATS_PER_SCHEDULE,
            "warmup": 2, "duration": seconds, "rate": rate, "keep_tickets": True,
            "claims": {"name": "Bench User", "phone_number": "01000000000"},
        })
        paid = {ticket: at for ticket, at in result["paid"]}
        calls = registered_at(stack, set(paid), wait=120)
    delays = [(calls[ticket] - at) * 1000 for ticket, at in paid.items() if ticket in calls]
    summary = Summary.of(delays, Counter(), seconds)
    paid_per_second = result["counters"].get("payments", 0) / result["seconds"]
    outcome.add("payments/s (steady rate asked)", f"{paid_per_second:,.0f} ({rate:,.0f} asked)",
                f"{rate:,.0f}", paid_per_second >= 0.95 * rate)
    outcome.add("commit → venue call p50 / p95 / p99", latency(summary), "p99 ≤ 500 ms",
                summary.p99 <= 500)
    outcome.add("paid tickets registered with the venue", f"{len(delays):,} of {len(paid):,}",
                "all", len(delays) == len(paid))
    by_kind = request_summaries(result)
    outcome.add("pay p50 / p95 / p99", latency(by_kind["pay"]))
    outcome.add("answers by status", statuses(by_kind["all"]))
    cpu_rows(outcome, result, by_kind["all"].count)
    outcome.notes.append("commit time = when the payment's 201 reached the client (just after"
                         " COMMIT); provider time = when the venue simulator received the call")
    outcome.data |= {"commit_to_venue_ms": vars(summary),
                     "summaries": {k: vars(v) for k, v in by_kind.items()}}
    return outcome
