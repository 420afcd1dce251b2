"""A broker without idempotent producers (Tansu) and KAFKA_ENABLE_IDEMPOTENCE on: the relay
says once what to set and stops, instead of retrying a setting forever; the API's /metrics
shows that no relay publishes while events wait, until one that may publish drains them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services.booking.config import Settings
from tests.relay_support import insert_events, relay_env, topic_with_dead_letters
from tests.scrapes import api, scrape, until
from workers.devstack.embedded import RunningServer, start_broker

pytestmark = pytest.mark.integration
RELAY = [sys.executable, "-m", "workers.outbox_relay"]


@pytest.fixture
def tansu(server_log_dir: Path) -> Iterator[RunningServer]:
    """The embedded broker itself, whatever broker the environment names for other tests."""
    with start_broker(log_dir=server_log_dir) as server:
        yield server


def test_relay_names_the_setting_once_and_exits_2(
    tansu: RunningServer, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": tansu.url,
           "KAFKA_ENABLE_IDEMPOTENCE": "true", "RELAY_METRICS_PORT": "0"}
    done = subprocess.run(RELAY, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "CRITICAL" in lines[0] and f"the broker at {tansu.url} refuses idempotent producers" in lines[0]
    assert "set KAFKA_ENABLE_IDEMPOTENCE=false" in lines[0]


async def test_the_api_shows_no_relay_publishing_while_events_wait(
    tansu: RunningServer, outbox_db: str, connection: asyncpg.Connection, settings: Settings,
    tmp_path: Path,
) -> None:
    topic = await topic_with_dead_letters(tansu.url, "refused", 1)
    await insert_events(connection, topic, [("agg-1", 1)])
    # Waiting longer than the API's stall bound already, so no test waits it out.
    await connection.execute("UPDATE outbox SET occurred_at = occurred_at - interval '1 minute'")
    own = settings.model_copy(update={"database_url": outbox_db, "outbox_stalled_after_seconds": 30})
    async with api(own) as http:
        refused = await asyncio.create_subprocess_exec(
            *RELAY, cwd=tmp_path, env={**os.environ, **relay_env(
                outbox_db, tansu.url, KAFKA_ENABLE_IDEMPOTENCE="true")},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(refused.wait(), 120) == 2
        stalled = await scrape(http)
        assert (stalled.value("outbox_relay_publishing"), stalled.value("outbox_backlog")) == (0, 1)

        relay = await asyncio.create_subprocess_exec(
            *RELAY, cwd=tmp_path, env={**os.environ, **relay_env(outbox_db, tansu.url)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            drained = await until(http, lambda scraped: scraped.value("outbox_backlog") == 0, 60,
                                  "the relay publishes the waiting event")
        finally:
            relay.send_signal(signal.SIGTERM)
            await asyncio.wait_for(relay.wait(), 60)
    assert drained.value("outbox_relay_publishing") == 1
