"""Ticket rush: 10,000 users arrive within seconds for 50 seats."""

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
from bench.stats import Summary, summaries

PRICE = 10_000


def settings(options: argparse.Namespace) -> dict[str, str]:
    # The waiting room shapes the crowd: admission at a capped rate, and room for every
    # user at once, since a user who finds the seats gone keeps an active token until TTL.
    return {"QUEUE_ADMIT_PER_SECOND": str(options.rush_admit),
            "QUEUE_MAX_ACTIVE": str(options.rush_users)}


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("ticket rush")
    with running_stack(settings(options), log_dir=log_dir(options, "rush"),
                       **stack_options(options)) as stack:
        concert = checks.create_concert(stack, options.rush_seats, PRICE)
        schedules = concert.schedules
        who = prefix("rush")
        checks.seed_users(stack, who, options.rush_users, PRICE)
        result = run_flow(stack, "rush", {
            "prefix": who, "users": options.rush_users, "charge": 0,
            "schedule_id": schedules[0], "concert_id": concert.id,
            "arrival_seconds": options.rush_arrival, "attempts": 3,
        })
        sales = checks.sales(stack, schedules)
        wrong_wallets = checks.inconsistent_wallets(stack, who, PRICE)
    return report(outcome, options, result, sales, wrong_wallets)


def report(outcome: Outcome, options: argparse.Namespace, result: dict[str, Any], sales: checks.Sales,
           wrong_wallets: int) -> Outcome:
    by_kind = request_summaries(result)
    every = by_kind["all"]
    seats = options.rush_seats
    outcome.add(f"users / seats (admission {options.rush_admit}/s, arrival over "
                f"{options.rush_arrival:.0f} s)", f"{options.rush_users:,} / {seats}")
    outcome.add("seats sold / payments / live tickets",
                f"{sales.sold} / {sales.payments} / {sales.live_tickets}",
                f"exactly {seats}", sales.sold == sales.payments == sales.live_tickets == seats)
    outcome.add("users who paid / sold twice / wallets inconsistent",
                f"{result['outcomes'].get('paid', 0)} / {sales.seats_sold_twice} / {wrong_wallets}",
                f"{seats} / 0 / 0", result["outcomes"].get("paid", 0) == seats
                and sales.seats_sold_twice == 0 and wrong_wallets == 0)
    outcome.add("requests answered / not answered", f"{every.count - every.unanswered:,} / "
                f"{every.unanswered:,}", "all answered", every.unanswered == 0)
    outcome.add("answers by status", statuses(every), "no 5xx", every.server_errors == 0)
    outcome.add("all requests p50 / p95 / p99", latency(every))
    queue = _queue_requests(result)
    outcome.add("queue requests (token + polls) p50 / p95 / p99", latency(queue), "p99 ≤ 1 s",
                queue.p99 <= 1000)
    outcome.add("requests/s over the rush", f"{every.per_second:,.0f} ({result['seconds']:.1f} s)")
    for kind in ("queue token", "queue poll", "seat map", "hold", "pay"):
        if kind in by_kind:
            outcome.add(f"  {kind} p50 / p95 / p99", latency(by_kind[kind]))
    outcome.add("how users ended", ", ".join(f"{k}: {v:,}" for k, v in sorted(
        result["outcomes"].items(), key=lambda kv: -kv[1])))
    cpu_rows(outcome, result, every.count)
    generator_load(outcome, result)
    outcome.data |= {"outcomes": result["outcomes"], "sales": vars(sales),
                     "summaries": {k: vars(v) for k, v in by_kind.items()}}
    return outcome


def _queue_requests(result: dict[str, Any]) -> Summary:
    """Token issues and position polls together: the waiting room's own answers."""
    kinds = ("queue token", "queue poll")
    latencies = {kind: values for kind, values in result["latencies"].items() if kind in kinds}
    statuses = {kind: found for kind, found in result["statuses"].items() if kind in kinds}
    return summaries({**result, "latencies": latencies, "statuses": statuses})["all"]
