"""Ticket rush: 10,000 users arrive within seconds for 50 seats of one concert, while a few
hundred buy another concert's seats in the same seconds: each concert has its own waiting
room, so the quiet room's buyers are admitted at its pace, not behind the crowd."""

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


QUIET_USERS = 200
QUIET_SEATS = 50


def settings(options: argparse.Namespace) -> dict[str, str]:
    # The waiting room shapes the crowd: admission at a capped rate, and room for every
    # user at once, since a user who finds the seats gone keeps an active token until TTL.
    # Both rooms take these defaults: the quiet room is as fast as the hot one, not faster.
    return {"QUEUE_ADMIT_PER_SECOND": str(options.rush_admit),
            "QUEUE_MAX_ACTIVE": str(options.rush_users)}


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("ticket rush")
    with running_stack(settings(options), log_dir=log_dir(options, "rush"),
                       **stack_options(options)) as stack:
        concert = checks.create_concert(stack, options.rush_seats, PRICE)
        quiet = checks.create_concert(stack, QUIET_SEATS, PRICE)
        schedules = concert.schedules
        who, quiet_who = prefix("rush"), prefix("quiet")
        checks.seed_users(stack, who, options.rush_users, PRICE)
        checks.seed_users(stack, quiet_who, QUIET_USERS, PRICE)
        result = run_flow(stack, "rush", {
            "prefix": who, "users": options.rush_users, "charge": 0,
            "schedule_id": schedules[0], "concert_id": concert.id,
            "arrival_seconds": options.rush_arrival, "attempts": 3,
            "quiet": {"prefix": quiet_who, "users": QUIET_USERS, "concert_id": quiet.id,
                      "schedule_id": quiet.schedules[0]},
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
    _two_rooms(outcome, by_kind, result)
    cpu_rows(outcome, result, every.count)
    generator_load(outcome, result)
    outcome.data |= {"outcomes": result["outcomes"], "sales": vars(sales),
                     "summaries": {k: vars(v) for k, v in by_kind.items()}}
    return outcome


def _two_rooms(outcome: Outcome, by_kind: dict[str, Summary], result: dict[str, Any]) -> None:
    """The hot room's wait beside the quiet room's: one room's crowd must not slow the other."""
    hot, quiet = by_kind.get("flow: hot room admitted"), by_kind.get("flow: quiet room admitted")
    if hot is None or quiet is None:
        return
    places = by_kind["flow: hot room place"], by_kind["flow: quiet room place"]
    outcome.add(f"hot room, {hot.count:,} buyers: token → admitted p50 / p95 / p99", latency(hot))
    # A quiet buyer waits one Retry-After (≥ 1 s) and the shared API's latency, never the crowd.
    outcome.add(f"quiet room, {quiet.count:,} buyers over the same seconds: p50 / p95 / p99",
                latency(quiet), "p99 < the hot room's p50", quiet.p99 < hot.p50)
    outcome.add("place in line on arrival, hot / quiet: p99",
                f"{places[0].p99:,.0f} / {places[1].p99:,.0f}", f"quiet ≤ {QUIET_USERS}",
                places[1].p99 <= QUIET_USERS)
    outcome.add("how the quiet room's buyers ended", ", ".join(f"{k}: {v:,}" for k, v in sorted(
        result["quiet_outcomes"].items(), key=lambda kv: -kv[1])),
        f"{QUIET_SEATS} paid", result["quiet_outcomes"].get("paid", 0) == QUIET_SEATS)


def _queue_requests(result: dict[str, Any]) -> Summary:
    """Token issues and position polls together: the waiting room's own answers."""
    kinds = ("queue token", "queue poll")
    latencies = {kind: values for kind, values in result["latencies"].items() if kind in kinds}
    statuses = {kind: found for kind, found in result["statuses"].items() if kind in kinds}
    return summaries({**result, "latencies": latencies, "statuses": statuses})["all"]
