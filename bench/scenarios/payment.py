"""Payment path: 200 users, each repeating queue token → admission → hold → pay."""

from __future__ import annotations

import argparse

from bench import checks
from bench.pgbench import run_pgbench
from bench.report import Outcome, latency, statuses
from bench.scenarios.common import (
    OPEN_ROOMS,
    cpu_rows,
    generator_load,
    log_dir,
    prefix,
    request_summaries,
    run_flow,
    stack_options,
)
from bench.stack import running_stack

PRICE = 1_000
CHARGE = 10_000_000  # the most one charge may add: 10,000 seats at PRICE
# The waiting room is not what this scenario measures: admission is made instant.
SETTINGS = OPEN_ROOMS


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("payment path")
    users = options.users
    seconds = options.warmup + options.duration
    # Enough seats that no user runs out at four times the target rate.
    seats = max(20_000, ((6_000 * int(seconds)) // 10_000 + 1) * 10_000)
    with running_stack(SETTINGS, log_dir=log_dir(options, "payment"),
                       **stack_options(options)) as stack:
        concert = checks.create_concert(stack, seats, PRICE)
        schedules = concert.schedules
        who = prefix("pay")
        result = run_flow(stack, "payment", {
            "prefix": who, "users": users, "charge": CHARGE, "schedules": schedules,
            "concert_id": concert.id,
            "seats_per_schedule": checks.MAX_SEATS_PER_SCHEDULE, "warmup": options.warmup,
            "duration": options.duration,
        })
        sales = checks.sales(stack, schedules)
        wrong_wallets = checks.inconsistent_wallets(stack, who, CHARGE)
        reference = run_pgbench(stack.server_url, clients=users, seconds=options.pgbench_seconds,
                                scale=options.pgbench_scale) if options.pgbench else None

    by_kind = request_summaries(result)
    every = by_kind["all"]
    paid_per_second = result["counters"].get("payments", 0) / result["seconds"]
    outcome.add(f"payments/s ({users} users, token → hold → pay)", f"{paid_per_second:,.0f}",
                "≥ 1,500", paid_per_second >= 1500)
    for kind in ("hold", "pay", "queue token", "queue poll"):
        if kind in by_kind:
            outcome.add(f"{kind} p50 / p95 / p99", latency(by_kind[kind]), "p95 ≤ 50 ms"
                        if kind in ("hold", "pay") else "", by_kind[kind].p95 <= 50
                        if kind in ("hold", "pay") else None)
    outcome.add("whole flow p50 / p95 / p99", latency(by_kind["flow: token → paid"]))
    outcome.add("requests/s, all kinds", f"{every.per_second:,.0f}")
    errors = sum(n for status, n in every.statuses.items() if not status.startswith("2"))
    outcome.add("answers by status", statuses(every), "0 errors", errors == 0)
    paid = result["paid_total"]
    outcome.add("seats sold = payments = live tickets = 201s",
                f"{sales.sold:,} = {sales.payments:,} = {sales.live_tickets:,} = {paid:,}",
                "all equal", sales.sold == sales.payments == sales.live_tickets == paid)
    outcome.add("seats sold twice / wallets inconsistent",
                f"{sales.seats_sold_twice} / {wrong_wallets}", "0 / 0",
                sales.seats_sold_twice == 0 and wrong_wallets == 0)
    if reference is not None:
        ratio = paid_per_second / reference.tps
        outcome.add(f"pgbench ({reference.label})", f"{reference.tps:,.0f} TPS")
        outcome.add("payments/s ÷ pgbench TPS", f"{ratio:.2f}")
        outcome.data["pgbench"] = {"tps": reference.tps, "clients": reference.clients,
                                   "scale": reference.scale, "ratio": ratio}
    cpu_rows(outcome, result, every.count)
    generator_load(outcome, result)
    outcome.data |= {"payments_per_second": paid_per_second, "failures": result["failures"],
                     "summaries": {k: vars(v) for k, v in by_kind.items()}}
    if result["failures"]:
        outcome.notes.append(f"failed steps: {result['failures']}")
    return outcome
