"""Outbox relay: delegated to bench/relay.py, the relay's own benchmark, read back here."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys

from bench.report import ROOT, Outcome

ROW = re.compile(r"^\|\s*(?P<measure>[^|]+?)\s*\|\s*(?P<result>[^|]+?)\s*\|\s*(?P<target>[^|]*?)\s*\|$")
FIGURE = re.compile(r"([0-9][0-9,.]*)")


def _met(result: str, target: str) -> bool | None:
    """Judge "≥ N" / ">= N" and "p99 ≤ N" / "<= N" targets against the last figure."""
    found = [float(value.replace(",", "")) for value in FIGURE.findall(result)]
    wanted = [float(value.replace(",", "")) for value in FIGURE.findall(target)]
    if not found or not wanted:
        return None
    if "≥" in target or ">=" in target:
        return found[-1] >= wanted[-1]
    if "≤" in target or "<=" in target:
        return found[-1] <= wanted[-1]
    return None


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("outbox relay")
    if importlib.util.find_spec("bench.relay") is None:
        outcome.add("skipped", "bench/relay.py is not there yet")
        return outcome
    argv = [sys.executable, "-m", "bench.relay", "--seconds", str(options.duration)]
    log = options.log_dir / "relay.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stderr:
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
                              check=False)
    rows = [m for line in done.stdout.splitlines() if (m := ROW.match(line.strip()))]
    for match in rows:
        measure, result, target = match["measure"], match["result"], match["target"]
        if measure == "scenario" or set(measure) <= {"-"}:
            continue
        outcome.add(measure, result, target if target != "-" else "", _met(result, target))
    if done.returncode != 0 or not outcome.rows:
        outcome.add("bench.relay failed", f"exit {done.returncode}; see {log}", ok=False)
    outcome.notes += [line for line in done.stdout.splitlines() if line.startswith("outbox relay")]
    outcome.data["output"] = done.stdout
    return outcome
