"""`python -m bench.chaos [--tickets N] [--seconds S] [--replicas R]` (`make chaos`).

Starts the whole system as separate processes (R API processes, R relays, R workers
of each kind, one queue worker, its own embedded PostgreSQL, Redis and broker,
provider simulators), books N tickets over S seconds while it injects the faults
listed in bench/chaos/faults.py (the window's clock stops while a fault is being
injected, so the window stretches on a slow machine), lets the system recover,
replays the DLQ and prints the ledger. Exit status 0 when nothing was lost,
duplicated or left stuck and every fault landed on at least 20 bookings in flight;
1 otherwise; 2 when the system did not start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench.chaos.scenario import Plan, Run
from bench.chaos.system import System, run_private


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[1])
    plan = Plan()
    parser.add_argument("--tickets", type=int, default=plan.tickets,
                        help=f"tickets to book (default {plan.tickets}: a crowd at every fault)")
    parser.add_argument("--seconds", type=float, default=plan.seconds,
                        help=f"booking window (default {plan.seconds:.0f})")
    parser.add_argument("--replicas", type=int, default=2,
                        help="processes per part: API, relay, saga, notifier, token expiry (default 2)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep every process's log here (default: a temp dir, kept on failure)")
    args = parser.parse_args()
    if args.tickets < 10 or args.seconds < 10 or args.replicas < 1:
        parser.error("at least 10 tickets, 10 seconds and 1 replica")
    return args


def main() -> None:
    args = parse_args()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="booking-chaos-"))
    system = System(args.replicas, log_dir)
    plan = Plan(tickets=args.tickets, seconds=args.seconds)
    started = time.monotonic()
    console.print(f"starting the system: {args.replicas} of each part (logs: {log_dir})")
    try:
        try:
            system.start()
        except Exception as error:
            console.print(f"[bold red]the system did not start:[/] {error}")
            raise SystemExit(2) from None
        console.print(f"ready in {time.monotonic() - started:.0f}s; booking {plan.tickets} tickets "
                      f"over {plan.seconds:.0f}s")
        ledger = run_private(Run(system, plan, console).execute())
    finally:
        system.stop()
    ledger.print(console, f"ledger: {plan.tickets} tickets, {args.replicas} of each part, "
                          f"{time.monotonic() - started:.0f}s")
    if ledger.clean:
        console.print("[bold green]nothing lost, nothing duplicated, nothing stuck[/]")
        if args.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)
        return
    console.print(f"[bold red]lost {ledger.total('lost')}, duplicated {ledger.total('duplicated')}, "
                  f"stuck {ledger.total('stuck')}, faults on too few bookings {len(ledger.missed)}[/] "
                  f"(logs: {log_dir})")
    raise SystemExit(1)


if __name__ == "__main__":
    main()
