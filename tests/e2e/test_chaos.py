"""The ledger chaos run, short: 30 tickets while the relay and every worker are SIGKILLed,
the broker and Redis restart and the providers fail; the ledger must be all zero.

The run gets a Redis and a broker of its own (it restarts them: the session's are
shared with every other test) and its own processes, one of each part; only the
PostgreSQL server is the session's, with a scratch database. `python -m bench.chaos`
is the long version (200 tickets, two processes of each part).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bench.chaos.ledger import Ledger, Row
from bench.chaos.scenario import Plan, Run
from bench.chaos.system import System, run_private

pytestmark = pytest.mark.e2e


def test_chaos_run_loses_nothing_duplicates_nothing_leaves_nothing_stuck(
    postgres_server_url: str, tmp_path: Path,
) -> None:
    output = io.StringIO()
    console = Console(file=output, width=160, color_system=None)
    system = System(replicas=1, log_dir=tmp_path / "chaos", database_server_url=postgres_server_url)
    try:
        system.start()
        ledger = run_private(Run(system, Plan(tickets=30, seconds=30, settle_timeout=60), console).execute())
    finally:
        system.stop()
    ledger.print(console, "chaos ledger")
    report = output.getvalue()
    assert ledger.clean, report

    rows = _rows(ledger)
    # The faults happened, and what they cause was absorbed rather than avoided.
    assert rows["payments committed"].done == 30, report
    assert rows["events committed → published"].absorbed > 0, report  # republished
    assert rows["compensations / refunds"].done > 0, report  # venue 4xx and 5xx
    # Whether Kakao's outage outlasts its retries (and SMS takes over) depends on machine
    # speed here; the takeover itself is proven in test_notifications.py.
    assert rows["notifications sent once"].done == rows["notifier consumed"].expected, report


def _rows(ledger: Ledger) -> dict[str, Row]:
    return {row.stage: row for row in ledger.rows}
