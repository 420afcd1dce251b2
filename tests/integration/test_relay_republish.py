"""`booking-relay republish`: rows published within the window go back to the relay."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from typer.testing import CliRunner

from tests.relay_support import insert_events
from workers.outbox_relay import republish

pytestmark = pytest.mark.integration


async def test_republish_requeues_only_the_window_and_topics_asked(
    outbox_db: str, connection: asyncpg.Connection,
) -> None:
    recent = await insert_events(connection, "booking.payments", [("a", 1), ("b", 1)])
    other = await insert_events(connection, "booking.notifications", [("n", 1)])
    old = await insert_events(connection, "booking.payments", [("c", 1)])
    dead = await insert_events(connection, "booking.payments", [("d", 1)])
    await connection.execute("UPDATE outbox SET published_at = now() - interval '5 minutes'")
    await connection.execute("UPDATE outbox SET published_at = now() - interval '2 hours' "
                             "WHERE event_id = ANY($1::uuid[])", old)
    await connection.execute("UPDATE outbox SET published_at = NULL, dead_at = now() "
                             "WHERE event_id = ANY($1::uuid[])", dead)

    counted = await republish.republish(outbox_db, 3600, ["booking.payments"], dry_run=True)
    assert counted == {"booking.payments": 2}
    assert await _unpublished(connection) == set(dead)

    done = await republish.republish(outbox_db, 3600, [], dry_run=False)
    assert done == {"booking.payments": 2, "booking.notifications": 1}
    assert await _unpublished(connection) == {*recent, *other, *dead}


async def test_the_command_reports_json_and_refuses_a_bad_window(outbox_db: str) -> None:
    runner, env = CliRunner(), {"DATABASE_URL": outbox_db}
    # In a thread: the command runs its own event loop.
    result = await asyncio.to_thread(
        runner.invoke, republish.app, ["--since", "15m", "--json", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"dry_run": True, "since": "15m", "topics": {}, "total": 0}
    bad = await asyncio.to_thread(runner.invoke, republish.app, ["--since", "soon"], env=env)
    assert bad.exit_code == 2 and "bad duration" in bad.output


async def _unpublished(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch("SELECT event_id::text FROM outbox WHERE published_at IS NULL")
    return {row[0] for row in rows}
