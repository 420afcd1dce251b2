"""`make bench`: start the system, load it from a separate process, print one table.

    python -m bench [SCENARIO ...] [--json PATH] [--duration S] [--soak S] ...

Scenarios: payment, holdpay, rush, queue, relay, e2e, memory, http (all of them by default), then
calibrate (the load generator's own cost, beside aiohttp and httpx) and instructions
(CPU instructions per request under valgrind: the figure to compare commits by on a
shared machine, where throughput swings by half) and drivers (client CPU of one payment-shaped
transaction through SQLAlchemy and through asyncpg) only when named. Each scenario
starts the stack as `make run` does: embedded PostgreSQL, Redis and broker unless
DATABASE_URL, REDIS_URL or KAFKA_BOOTSTRAP_SERVERS name others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from rich.console import Console

from bench.report import Outcome, machine, render, write_json

Scenario = Callable[[argparse.Namespace], Outcome]


SCENARIOS = ("payment", "holdpay", "rush", "queue", "relay", "e2e", "memory", "http", "calibrate",
             "instructions", "drivers")
DEFAULT = SCENARIOS[:-3]


def scenario(name: str) -> Scenario:
    run: Scenario = importlib.import_module(f"bench.scenarios.{name}").run
    return run


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="*", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first")
    parser.add_argument("--users", type=int, default=200, help="concurrent users (payment, queue)")
    parser.add_argument("--api-workers", type=int, default=None,
                        help="uvicorn workers of booking-api (default: its own default)")
    parser.add_argument("--parts", type=lambda text: text.split(","), default=None,
                        help="start only these parts of make run, e.g. api,queue (default: all)")
    parser.add_argument("--no-pgbench", dest="pgbench", action="store_false")
    parser.add_argument("--pgbench-seconds", type=float, default=10)
    parser.add_argument("--pgbench-scale", type=int, default=20)
    rush = parser.add_argument_group("ticket rush")
    rush.add_argument("--rush-users", type=int, default=10_000)
    rush.add_argument("--rush-seats", type=int, default=50)
    rush.add_argument("--rush-arrival", type=float, default=5.0,
                      help="seconds over which the crowd arrives")
    rush.add_argument("--rush-admit", type=int, default=500,
                      help="QUEUE_ADMIT_PER_SECOND during the rush")
    e2e = parser.add_argument_group("end to end")
    e2e.add_argument("--e2e-rate", type=float, default=40,
                     help="payments per second offered (the e2e latency bar of DESIGN.md is set at 40)")
    e2e.add_argument("--venue-delay", type=float, default=0.0,
                     help="seconds the venue simulator takes to answer (a real venue is not instant)")
    memory = parser.add_argument_group("memory")
    memory.add_argument("--soak", type=float, default=600, help="soak seconds (default 10 min)")
    memory.add_argument("--soak-rate", type=float, default=100, help="payments per second")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where the stack's logs go (default: a temp directory)")
    options = parser.parse_args(argv)
    unknown = [name for name in options.scenario if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    options.scenario = options.scenario or list(DEFAULT)
    options.log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="booking-bench-logs-"))
    return options


def _stop(signum: int, frame: FrameType | None) -> None:
    # Unwinds through every `with running_stack(...)`, which stops what it started.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    console = Console(stderr=True)
    context = {**machine(), "load_before": [round(v, 2) for v in os.getloadavg()],
               "command": " ".join(["python -m bench", *(argv or sys.argv[1:])])}
    outcomes: list[Outcome] = []
    for name in options.scenario:
        started = time.monotonic()
        console.print(f"[bold]bench[/] {name} …  (logs: {options.log_dir / name})")
        try:
            outcomes.append(scenario(name)(options))
        except KeyboardInterrupt:
            console.print("interrupted; the stack is stopped")
            return 130
        except Exception as error:  # one broken scenario must not hide the others' figures
            failed = Outcome(name)
            failed.add("scenario failed", f"{type(error).__name__}: {error}"[:300], ok=False)
            outcomes.append(failed)
        console.print(f"[bold]bench[/] {name} done in {time.monotonic() - started:.0f} s")
    context["load_after"] = [round(v, 2) for v in os.getloadavg()]
    render(outcomes, context, Console())
    if options.json:
        write_json(options.json, outcomes, context)
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
