"""What every scenario shares: options, the generator spec, generator CPU."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

from bench.loadgen import generate
from bench.report import Outcome
from bench.stack import RunningStack
from bench.stats import Summary, summaries

# Rooms that let everyone in at once, within the bounds a room accepts (API.md §2:
# admit_per_second ≤ 10,000, max_active ≤ 100,000): for the scenarios whose subject is
# not the waiting room.
OPEN_ROOMS = {"QUEUE_ADMIT_PER_SECOND": "10000", "QUEUE_MAX_ACTIVE": "100000"}


def log_dir(options: argparse.Namespace, scenario: str) -> Path:
    path: Path = options.log_dir / scenario
    return path


def stack_options(options: argparse.Namespace) -> dict[str, Any]:
    """How the stack is started: API workers, and which parts (default: all of make run)."""
    return {"api_workers": options.api_workers, "only_parts": options.parts}


def prefix(name: str) -> str:
    """A user-id prefix unique to this run, so checks read only this run's rows."""
    return f"{name}{secrets.token_hex(3)}"


def flow_spec(stack: RunningStack, flow: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"flow": flow, "base_url": stack.base_url, "secret": stack.env["AUTH_JWT_SECRET"],
            "params": params, "watch": stack.roots()}


def run_flow(stack: RunningStack, flow: str, params: dict[str, Any]) -> dict[str, Any]:
    return generate(flow_spec(stack, flow, params), stack.log_path.with_name("generator.log"))


def request_summaries(result: dict[str, Any]) -> dict[str, Summary]:
    """Per request kind and "all" requests; flow timings are kept apart from "all"."""
    requests = {k: v for k, v in result["latencies"].items() if not k.startswith("flow")}
    flows = {k: v for k, v in result["latencies"].items() if k.startswith("flow")}
    out = summaries({**result, "latencies": requests})
    out |= {k: v for k, v in summaries({**result, "latencies": flows}).items() if k != "all"}
    return out


def generator_load(outcome: Outcome, result: dict[str, Any], label: str = "") -> None:
    """Report the generator's CPU while measuring: near one full core, it would be the limit."""
    share = float(result["generator_cpu_share"])
    outcome.add(f"load generator CPU{label}", f"{share:.0%} of one core", "< 80 %", share < 0.8)


def cpu_rows(outcome: Outcome, result: dict[str, Any], requests: int, label: str = "") -> None:
    """Cores each part kept busy, and API CPU per request: the figures noise moves least."""
    cores = result.get("cores_used") or {}
    if not cores:
        return
    busy = ", ".join(f"{name} {value:.2f}" for name, value in sorted(cores.items(), key=lambda kv: -kv[1])
                     if value >= 0.01)
    outcome.add(f"cores busy{label}", busy)
    if requests and "api" in cores:
        per_request = cores["api"] * result["seconds"] / requests * 1000
        outcome.add(f"API CPU per request{label}", f"{per_request:.2f} ms")
        outcome.data.setdefault("api_cpu_ms_per_request", {})[label or "all"] = per_request
