"""One table for every scenario of a run, and the same figures as JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import Summary

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    measure: str
    result: str
    target: str = ""
    ok: bool | None = None  # None: reported, not judged


@dataclass
class Outcome:
    scenario: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, result: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(measure, result, target, ok))

    @property
    def passed(self) -> bool:
        return all(row.ok is not False for row in self.rows)


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def latency(summary: Summary) -> str:
    return f"{ms(summary.p50)} / {ms(summary.p95)} / {ms(summary.p99)} ms"


def statuses(summary: Summary) -> str:
    return "  ".join(f"{status}: {count:,}" for status, count in summary.statuses.items()) or "-"


def machine() -> dict[str, Any]:
    """Where and when the figures were taken: they mean little without it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                               capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {
        "commit": commit + ("+changes" if dirty else ""),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def render(outcomes: list[Outcome], context: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:
        console.width = 160  # a file or a pipe: one row per line rather than 80 columns
    table = Table(title="make bench", title_justify="left", show_lines=False)
    for column in ("scenario", "measure", "result", "target", ""):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        for index, row in enumerate(outcome.rows):
            mark = {True: "[green]ok[/]", False: "[bold red]MISS[/]", None: ""}[row.ok]
            table.add_row(outcome.scenario if index == 0 else "", row.measure, row.result,
                          row.target, mark, end_section=index == len(outcome.rows) - 1)
    console.print(table)
    start, end = context.get("load_before"), context.get("load_after")
    console.print(
        f"commit {context['commit']}, {context['cpus']} CPUs, Python {context['python']}, "
        f"{context['when']}; load average {start} before, {end} after"
    )
    for outcome in outcomes:
        for note in outcome.notes:
            console.print(f"[dim]{outcome.scenario}: {note}[/]")


def write_json(path: Path, outcomes: list[Outcome], context: dict[str, Any]) -> None:
    body = {"context": context, "scenarios": {o.scenario: asdict(o) for o in outcomes}}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
