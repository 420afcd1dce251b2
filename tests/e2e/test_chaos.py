"""The ledger chaos run, short: 30 tickets (3 of them wanted by two customers) while the
relay, every worker and the API are SIGKILLed, PostgreSQL crashes, the broker and Redis
restart and the providers fail; the ledger must be all zero, and each fault must have
caused what it causes.

The run gets servers of its own (it kills and restarts them: the session's are shared
with every other test) and its own processes, one of each part. `python -m bench.chaos`
is the long version (2,000 tickets, two processes of each part, every fault).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bench.chaos.faults import Faults
from bench.chaos.ledger import Ledger, Row
from bench.chaos.scenario import Plan, Run
from bench.chaos.system import System, run_private

pytestmark = pytest.mark.e2e

FAULTS = frozenset({
    "kakao-down", "relay-kill", "venue-down", "api-kill", "venue-back", "kakao-back",
    "broker-restart", "postgres-crash", "providers-down", "providers-up", "redis-restart",
    "workers-kill", "all-kill", "relay-kill-again",
})
TICKETS, RIVALS = 30, 3


def test_chaos_run_loses_nothing_duplicates_nothing_leaves_nothing_stuck(tmp_path: Path) -> None:
    output = io.StringIO()
    console = Console(file=output, width=160, color_system=None)
    system = System(replicas=1, log_dir=tmp_path / "chaos")
    plan = Plan(tickets=TICKETS, seconds=30, rival_every=TICKETS // RIVALS, settle_timeout=60,
                min_in_flight=1, faults=FAULTS)
    run = Run(system, plan, console)
    try:
        system.start()
        ledger = run_private(run.execute())
        postgres_log = system.servers["postgres"].log_path.read_text(errors="replace")
    finally:
        system.stop()
    ledger.print(console, "chaos ledger")
    report = output.getvalue()
    assert ledger.clean, report
    assert {landing.name for landing in ledger.faults} == FAULTS, report
    assert isinstance(run.faults, Faults)
    faults, rows = run.faults, _rows(ledger)

    # Every seat sold once: one of each pair of rivals paid, the other was outbid.
    assert rows["payments committed"].done == TICKETS, report
    assert rows["client answers = database"].expected == TICKETS + RIVALS, report
    assert f"{RIVALS} customers outbid" in rows["no seat sold twice"].note, report
    # The API was killed with a payment in flight: its client retried with the same key
    # and was answered with the one payment (the ledger's "client answers" line holds).
    assert faults.paying_at_kill["api-1"] >= 1, report
    assert rows["client answers = database"].absorbed >= 1, report
    # PostgreSQL was SIGKILLed: it recovered from its WAL, and no answered commit was lost.
    assert "automatic recovery in progress" in postgres_log, report
    assert "postgres" in faults.recovered, report
    # The broker lost everything: every event published before was published again,
    # and the saga absorbed each payment event it had already consumed.
    before = faults.before_broker_restart
    assert faults.republished >= before["published"] > 0, report
    assert rows["ticket-saga consumed"].absorbed >= before["saga_consumed"], report
    # The venue refused seats 3 and 28 for good: both payments were refunded.
    assert rows["compensations / refunds"].done >= len(range(3, TICKETS + 1, plan.refused_every)), report
    # Whether Kakao's outage outlasts its retries (and SMS takes over) depends on machine
    # speed here; the takeover itself is proven in test_notifications.py.
    assert rows["notifications sent once"].done == rows["notifier consumed"].expected, report


def _rows(ledger: Ledger) -> dict[str, Row]:
    return {row.stage: row for row in ledger.rows}
