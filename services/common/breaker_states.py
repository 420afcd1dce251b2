"""The provider_breaker_states table: the workers' circuit breakers, seen from outside.

The breakers live in the worker processes (saga: venue; notifier: kakao, sms), while
the API's /metrics reports them. Each worker process writes its breakers' states on
every transition and every HEARTBEAT_SECONDS (workers/common/breaker_publisher.py); the
reader takes the highest state per provider over the processes seen within
STALE_AFTER_SECONDS, so one replica with an open breaker shows as open, and a process
that died stops counting once its heartbeat is stale.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

HEARTBEAT_SECONDS = 5.0
# Several heartbeats: one slow write or a short database blip must not hide a breaker.
STALE_AFTER_SECONDS = 6 * HEARTBEAT_SECONDS
# Rows of processes gone this long are deleted by the next process that starts.
FORGET_AFTER_SECONDS = 24 * 3600.0

# seen_at is the database's clock, as is the reader's cut-off: worker clocks may drift.
PUBLISH = text("""
INSERT INTO provider_breaker_states (provider, instance, state, changed_at, seen_at)
SELECT reported.provider, :instance, reported.state, reported.changed_at, clock_timestamp()
FROM unnest(CAST(:providers AS text[]), CAST(:states AS smallint[]),
            CAST(:changed AS timestamptz[])) AS reported (provider, state, changed_at)
ON CONFLICT (provider, instance) DO UPDATE
SET state = excluded.state, changed_at = excluded.changed_at, seen_at = excluded.seen_at
""")

FORGET = text("""
DELETE FROM provider_breaker_states
WHERE instance = :instance AND provider = ANY(CAST(:providers AS text[]))
""")

PRUNE = text("""
DELETE FROM provider_breaker_states
WHERE seen_at < clock_timestamp() - make_interval(secs => :older_than)
""")

CURRENT = text("""
SELECT provider, max(state) AS state FROM provider_breaker_states
WHERE seen_at > clock_timestamp() - make_interval(secs => :stale_after)
GROUP BY provider ORDER BY provider
""")


@dataclass(frozen=True, slots=True)
class BreakerReport:
    provider: str
    state: int  # 0 closed, 1 half-open, 2 open: provider_circuit_breaker_state's values
    changed_at: datetime


async def publish(conn: AsyncConnection, instance: str, reports: Sequence[BreakerReport]) -> None:
    """Record `reports` as the current states of `instance`'s breakers."""
    await conn.execute(PUBLISH, {
        "instance": instance,
        "providers": [report.provider for report in reports],
        "states": [report.state for report in reports],
        "changed": [report.changed_at for report in reports],
    })


async def forget(conn: AsyncConnection, instance: str, providers: Sequence[str]) -> None:
    """Drop `instance`'s rows of `providers`: their breakers are going away."""
    await conn.execute(FORGET, {"instance": instance, "providers": list(providers)})


async def prune(conn: AsyncConnection, older_than: float = FORGET_AFTER_SECONDS) -> None:
    await conn.execute(PRUNE, {"older_than": older_than})


async def current_states(
    conn: AsyncConnection, stale_after: float = STALE_AFTER_SECONDS
) -> dict[str, int]:
    """Provider -> the highest state over the instances seen within `stale_after` seconds."""
    rows = await conn.execute(CURRENT, {"stale_after": stale_after})
    return {provider: state for provider, state in rows}
