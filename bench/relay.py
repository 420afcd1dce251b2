"""Outbox relay benchmark: drain rate, commit → broker latency, and the raw producer beside them.

    python -m bench.relay [--events 100000] [--rate 1000] [--seconds 10]

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set (a scratch database is created
on that server and dropped after), else starts embedded PostgreSQL and Tansu. The
relay runs as its own process (`python -m workers.outbox_relay`), as in production;
this process only fills the outbox, commits the steady load and measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import make_url

from bench.cpu import cpu_seconds
from services.booking.adapters.migrate import upgrade_to_head
from services.common.envelope import Envelope, encode
from services.common.kafka import KafkaSettings, ensure_topics
from workers.devstack.embedded import start_broker, start_postgres

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = {"payment_id": "5d7c0c52-0a3c-4f57-9d53-3f1f5b8ad0a1", "user_id": "user-000042",
           "amount": 150000, "seat_no": 17, "schedule_id": "0b9f7e1e-2d7c-4a4e-9a53-1c2d3e4f5a6b"}
PAYLOAD_JSON = orjson.dumps(PAYLOAD).decode()
FILL = """
INSERT INTO outbox (event_id, event_type, topic, aggregate_type, aggregate_id, payload)
SELECT gen_random_uuid(), 'PaymentCompleted', $1, 'payment', 'pay-' || (g / $3), $2::jsonb
FROM generate_series(0, $4 - 1) AS g
"""
PAYMENT = """
INSERT INTO outbox (event_id, event_type, topic, aggregate_type, aggregate_id, payload)
SELECT gen_random_uuid(), t, $1, 'payment', $2, $3::jsonb
FROM unnest(ARRAY['PaymentCompleted', 'TicketIssued', 'NotificationRequested']) AS t
RETURNING event_id
"""


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL server URL, Kafka bootstrap): from the environment or embedded."""
    with ExitStack() as stack:
        database = os.environ.get("DATABASE_URL")
        if not database:
            base = Path(tempfile.mkdtemp(prefix="relay-bench-pg-"))
            base.chmod(0o755)
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            database = stack.enter_context(start_postgres(base / "data")).url
        kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(start_broker()).url
        yield database, kafka


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"relay_bench_{secrets.token_hex(4)}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(dsn(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def relay_process(database_url: str, kafka: str, args: argparse.Namespace) -> Iterator[int]:
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka,
           "KAFKA_ENABLE_IDEMPOTENCE": os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "false"),
           "RELAY_METRICS_PORT": "0", "RELAY_CONCURRENCY": str(args.concurrency),
           "RELAY_BATCH_SIZE": str(args.batch_size), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.outbox_relay"], cwd=REPO_ROOT, env=env)
    try:
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def message() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    envelope = Envelope.new("PaymentCompleted", "payment", "pay-1", PAYLOAD)
    return encode(envelope), envelope.key, envelope.headers


async def raw_producer(kafka: str, topic: str, count: int) -> float:
    """Messages/s of aiokafka alone (acks=all, same size and headers as relayed events)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=1,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        value, _, headers = message()
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=f"pay-{n // 3}".encode(), headers=headers)
                   for n in range(count)]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def wait_drained(connection: asyncpg.Connection, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not drain the outbox")
        await asyncio.sleep(0.02)


async def drain(database_url: str, kafka: str, topic: str, args: argparse.Namespace) -> float:
    """Events/s from the first to the last acknowledged row of a pre-filled outbox."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(FILL, topic, PAYLOAD_JSON, args.events_per_aggregate, args.events)
        await connection.execute("ANALYZE outbox")
        with relay_process(database_url, kafka, args):
            await wait_drained(connection)
        span = await connection.fetchval(
            "SELECT extract(epoch FROM max(published_at) - min(published_at)) FROM outbox")
        return args.events / float(span)
    finally:
        await connection.close()


async def pay(pool: asyncpg.Pool, topic: str, n: int, committed: dict[str, float]) -> None:
    async with pool.acquire() as connection:
        records = await connection.fetch(PAYMENT, topic, f"steady-{n}", PAYLOAD_JSON)
    done = time.time()
    for record in records:
        committed[str(record[0])] = done


async def steady(database_url: str, kafka: str, topic: str,
                 args: argparse.Namespace) -> tuple[list[float], float]:
    """Commit → broker-acknowledged latencies (ms) at a steady rate of events per second,
    and the relay's CPU seconds from the first commit to the drained outbox."""
    committed: dict[str, float] = {}
    pool = await asyncpg.create_pool(dsn(database_url), min_size=8, max_size=8)
    try:
        with relay_process(database_url, kafka, args) as relay:
            await asyncio.sleep(2)  # let the relay connect before the clock starts
            cpu_before = cpu_seconds({"relay": relay})["relay"]
            interval = 3 / args.rate  # one payment = three events
            started = time.monotonic()
            tasks = []
            for n in range(int(args.seconds * args.rate / 3)):
                await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                tasks.append(asyncio.create_task(pay(pool, topic, n, committed)))
            await asyncio.gather(*tasks)
            async with pool.acquire() as connection:
                await wait_drained(connection, within=60)
            relay_cpu = cpu_seconds({"relay": relay})["relay"] - cpu_before
        async with pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT event_id::text, extract(epoch FROM published_at) FROM outbox"
                " WHERE aggregate_id LIKE 'steady-%'")
        return [(float(published) - committed[event_id]) * 1000 for event_id, published in rows], relay_cpu
    finally:
        await pool.close()


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=1000)[int(fraction * 1000) - 1]


@dataclass
class RelayFigures:
    raw_per_second: float
    drained_per_second: float
    latencies_ms: list[float]
    steady_cpu_seconds: float

    @property
    def cpu_us_per_event(self) -> float:
        return self.steady_cpu_seconds / len(self.latencies_ms) * 1e6

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def measure(server_url: str, kafka: str, args: argparse.Namespace) -> RelayFigures:
    """Run the three measurements on a scratch database of `server_url` (call from sync code)."""
    topic = f"bench.relay.{secrets.token_hex(4)}"
    with scratch_database(server_url) as database_url:
        asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap_servers=kafka),
                                  [topic, topic + ".raw"]))
        raw = asyncio.run(raw_producer(kafka, topic + ".raw", args.events))
        drained = asyncio.run(drain(database_url, kafka, topic, args))
        latencies, cpu = asyncio.run(steady(database_url, kafka, topic, args))
    return RelayFigures(raw, drained, latencies, cpu)


def report(args: argparse.Namespace, figures: RelayFigures) -> None:
    rows = [
        ("raw aiokafka producer, acks=all", f"{figures.raw_per_second:,.0f} msg/s", "-"),
        (f"relay drain, {args.events:,} pre-filled events",
         f"{figures.drained_per_second:,.0f} events/s", ">= 20,000 events/s"),
        (f"commit -> broker ack at {args.rate:,}/s, p50 / p99",
         f"{figures.p50_ms:.1f} / {figures.p99_ms:.1f} ms", "p99 <= 50 ms"),
        (f"relay CPU per event at {args.rate:,}/s", f"{figures.cpu_us_per_event:,.0f} µs", "-"),
    ]
    print(f"\noutbox relay (concurrency {args.concurrency}, batch {args.batch_size}),"
          f" {len(figures.latencies_ms):,} events in the steady run")
    print(f"| {'scenario':<46} | {'result':<18} | {'target':<18} |")
    print(f"|{'-' * 48}|{'-' * 20}|{'-' * 20}|")
    for name, result, target in rows:
        print(f"| {name:<46} | {result:<18} | {target:<18} |")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--events-per-aggregate", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="events/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    return parser.parse_args(argv)


def main() -> None:
    args = options()
    with servers() as (server_url, kafka):
        figures = measure(server_url, kafka, args)
    report(args, figures)


if __name__ == "__main__":
    main()
