"""5,000 events while relay processes are SIGKILLed at random: none lost, order kept."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services.common.logging import READY
from tests.relay_support import (
    Collector,
    assert_in_order,
    asyncpg_dsn,
    insert_events,
    relay_env,
    unique_topic,
)
from workers.devstack.embedded import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
AGGREGATES = 200
EVENTS_PER_AGGREGATE = 25
BATCH_SIZE = 100
CONCURRENCY = 2
LEASED = "SELECT count(*) FROM outbox WHERE lease_token IS NOT NULL AND published_at IS NULL"


class RelayProcess:
    def __init__(self, env: dict[str, str], log: Path, name: str) -> None:
        self.name = name
        self._env = {**env, "RELAY_NAME": name}
        self._log = log
        self._starts_before = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._starts_before = self._starts() if self._log.exists() else 0
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers.outbox_relay"], cwd=REPO_ROOT, env=self._env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def _starts(self) -> int:
        return self._log.read_text(errors="replace").count(f"outbox relay {self.name} {READY}")

    def log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            # SIGTERM before the relay installed its handler would just kill it.
            for _ in range(200):
                if self._starts() > self._starts_before:
                    break
                time.sleep(0.05)
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        return self.process.returncode


@pytest.fixture
def relays(outbox_db: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[list[RelayProcess]]:
    env = {**os.environ, **relay_env(
        outbox_db, kafka_bootstrap, RELAY_LEASE_SECONDS="2", KAFKA_REQUEST_TIMEOUT_MS="1500",
        RELAY_BATCH_SIZE=str(BATCH_SIZE), RELAY_CONCURRENCY=str(CONCURRENCY),
        RELAY_BACKOFF_MAX_SECONDS="0.5", RELAY_POLL_INTERVAL_SECONDS="0.5",
    )}
    processes = [RelayProcess(env, tmp_path / f"relay-{n}.log", f"relay-{n}") for n in range(2)]
    for process in processes:
        process.start()
    yield processes
    for process in processes:
        process.stop()


async def write_events(connection: asyncpg.Connection, topic: str) -> list[str]:
    """Commit the events like a stream of payments: small transactions, all the time."""
    ids: list[str] = []
    for seq in range(1, EVENTS_PER_AGGREGATE + 1):
        for first in range(0, AGGREGATES, 50):
            events = [(f"agg-{n}", seq) for n in range(first, first + 50)]
            ids += await insert_events(connection, topic, events)
        await asyncio.sleep(0.1)
    return ids


async def kill_while(writer: asyncio.Task[list[str]], relays: list[RelayProcess],
                     dsn: str) -> int:
    """SIGKILL a random relay, preferably while rows are leased, and restart it; count kills."""
    connection = await asyncpg.connect(dsn)
    try:
        return await _kill_while(writer, relays, connection)
    finally:
        await connection.close()


async def _kill_while(writer: asyncio.Task[list[str]], relays: list[RelayProcess],
                      connection: asyncpg.Connection) -> int:
    kills = 0
    rng = random.Random()
    while not writer.done():
        await asyncio.sleep(rng.uniform(0.2, 0.5))
        for _ in range(60):  # up to 0.3 s for a batch to be in flight
            if await connection.fetchval(LEASED):
                break
            await asyncio.sleep(0.005)
        victim = rng.choice(relays)
        victim.kill()
        victim.start()
        kills += 1
    return kills


async def test_every_event_arrives_in_order_although_relays_are_killed(
    outbox_db: str, connection: asyncpg.Connection, relays: list[RelayProcess],
    kafka_bootstrap: str,
) -> None:
    collector = Collector(kafka_bootstrap, unique_topic("kill"))
    async with collector.running():
        writer = asyncio.create_task(write_events(connection, collector.topic))
        kills = await kill_while(writer, relays, asyncpg_dsn(outbox_db))
        ids = await writer
        await collector.wait_for(ids, within=60)
        await asyncio.sleep(0.5)  # let late repeats arrive, so they are counted

    repeats = assert_in_order(collector.by_aggregate())
    print(f"\n{len(ids)} events, {kills} SIGKILLs, {repeats} repeated deliveries")
    assert len(ids) == AGGREGATES * EVENTS_PER_AGGREGATE
    assert collector.ids == set(ids)
    assert kills >= 5
    # Only rows claimed by a killed relay may be sent twice.
    assert repeats <= kills * BATCH_SIZE * CONCURRENCY
    # Rows a killed relay had leased and sent are marked by the next relay once the lease
    # (RELAY_LEASE_SECONDS) runs out, which may come after the last event arrived.
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    deadline = time.monotonic() + 30
    while (left := await connection.fetchval(unpublished)) > 0:
        assert time.monotonic() < deadline, f"{left} outbox rows never marked published"
        await asyncio.sleep(0.2)
    # A relay stopped by SIGTERM finishes its batch and exits cleanly.
    codes = [relay.stop() for relay in relays]
    assert codes == [0, 0], [relay.log_tail() for relay in relays]


def test_a_relay_waiting_for_the_broker_logs_once_and_stops_on_sigterm(
    outbox_db: str, tmp_path: Path
) -> None:
    env = {**os.environ, **relay_env(outbox_db, f"127.0.0.1:{free_port()}",
                                     RELAY_BACKOFF_MAX_SECONDS="0.2")}
    relay = RelayProcess(env, tmp_path / "waiting.log", "waiting")
    relay.start()
    assert relay.process is not None
    try:
        time.sleep(3)  # some fifteen failed attempts
        relay.process.send_signal(signal.SIGTERM)
        assert relay.process.wait(10) == 0
    finally:
        if relay.process.poll() is None:
            relay.kill()
    lines = relay.log_tail().splitlines()
    assert len(lines) == 1 and "broker unavailable" in lines[0], lines
