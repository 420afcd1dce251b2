"""`booking-dlq` end to end against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from typer.testing import CliRunner

from services.common.broker_offsets import log_end_offsets
from services.common.envelope import Envelope, InvalidEnvelope, encode
from services.common.topics import dead_letter_topic
from tests.relay_support import (
    Collector,
    asyncpg_dsn,
    insert_events,
    relay_settings,
    topic_with_dead_letters,
    unique_topic,
)
from workers.common.dead_letters import REPLAY_COUNT, park
from workers.devstack.embedded import free_port
from workers.dlq.cli import app
from workers.outbox_relay.service import running_relay

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_REPLAYS = 2


class Cli:
    """Run `booking-dlq` in a worker thread (it runs its own event loop) with our env."""

    def __init__(self, database_url: str, kafka: str) -> None:
        self.env = {
            "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_ENABLE_IDEMPOTENCE": "false", "DLQ_MAX_REPLAYS": str(MAX_REPLAYS),
            "DLQ_REPLAY_GROUP": f"dlq-test-{uuid.uuid4().hex[:8]}",
        }
        self._runner = CliRunner()

    async def run(self, *args: str, code: int = 0) -> str:
        result = await asyncio.to_thread(self._runner.invoke, app, list(args), env=self.env)
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    async def json(self, *args: str) -> Any:
        return json.loads(await self.run(*args, "--json"))


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    return await topic_with_dead_letters(kafka_bootstrap, "dlq", partitions=2)


@pytest.fixture
def cli(database_url: str, kafka_bootstrap: str) -> Cli:
    return Cli(database_url, kafka_bootstrap)


async def park_event(producer: AIOKafkaProducer, topic: str, event_type: str, aggregate: str,
                     error: Exception, offset: int = 0) -> Envelope:
    envelope = Envelope.new(event_type, "payment", aggregate, {"amount": 1000})
    await park(producer, topic=topic, partition=0, offset=offset, key=envelope.key,
               value=encode(envelope), headers=envelope.headers, error=error, attempts=5,
               consumer="test-consumer")
    return envelope


async def park_again(producer: AIOKafkaProducer, records: list[Any]) -> None:
    """What a consumer does when a replayed message fails again."""
    for record in records:
        await park(producer, topic=record.topic, partition=record.partition,
                   offset=record.offset, key=record.key, value=record.value,
                   headers=record.headers, error=ValueError("still failing"), attempts=5,
                   consumer="test-consumer")


async def read_new(kafka: str, topic: str, start: dict[int, int], count: int) -> list[Any]:
    """`count` records of `topic` past the offsets in `start` (partition → offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start.get(tp.partition, 0))
        records: list[Any] = []
        deadline = time.monotonic() + 10
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def end_offsets(kafka: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return {tp.partition: offset for tp, offset in (await log_end_offsets(consumer, partitions)).items()}
    finally:
        await consumer.stop()


async def test_list_filters_and_shows_a_histogram_of_reasons(
    cli: Cli, topic: str, producer: AIOKafkaProducer
) -> None:
    for n in range(3):
        await park_event(producer, topic, "PaymentCompleted", f"pay-{n}", ValueError("venue said no"))
    await park_event(producer, topic, "TicketIssued", "tic-0", KeyError("seat"))
    for n in range(2):
        await park(producer, topic=topic, partition=1, offset=n, key=b"junk", value=b"\x00garbage",
                   headers=[], error=InvalidEnvelope("value is not JSON"), attempts=1,
                   consumer="test-consumer")

    listed = await cli.json("list", "--topic", topic)

    assert len(listed["messages"]) == 6
    assert listed["reasons"] == [
        {"error_class": "ValueError", "count": 3}, {"error_class": "InvalidEnvelope", "count": 2},
        {"error_class": "KeyError", "count": 1}]
    assert {m["status"] for m in listed["messages"]} == {"parked"}
    assert len((await cli.json("list", "--topic", topic, "--type", "PaymentCompleted"))["messages"]) == 3
    (one,) = (await cli.json("list", "--topic", topic, "--aggregate", "pay-1"))["messages"]
    assert one["event_type"] == "PaymentCompleted" and one["error"] == "venue said no"
    assert (await cli.json("list", "--topic", topic, "--older-than", "1h"))["messages"] == []
    assert len((await cli.json("list", "--topic", topic, "--newer-than", "1h"))["messages"]) == 6

    table = await cli.run("list", "--topic", topic)
    assert "failure reasons" in table and one["id"] in table
    shown = await cli.json("show", one["id"])
    assert shown["headers"]["dlq-original-topic"] == topic
    assert shown["headers"]["dlq-consumer"] == "test-consumer"
    assert shown["value"]["json"]["aggregate_id"] == "pay-1"


async def test_letters_parked_at_once_are_all_listed(
    cli: Cli, topic: str, producer: AIOKafkaProducer
) -> None:
    # Parked concurrently (consumers handle several messages at once), the letters
    # travel in one record batch, whose tail Tansu's ListOffsets leaves out.
    await asyncio.gather(*(park_event(producer, topic, "PaymentCompleted", f"pay-{n}",
                                      ValueError("venue said no"), offset=n) for n in range(8)))

    listed = await cli.json("list", "--topic", topic)

    assert sorted(m["aggregate_id"] for m in listed["messages"]) == sorted(f"pay-{n}" for n in range(8))


async def test_replay_is_resumable_and_quarantines_what_keeps_failing(
    cli: Cli, topic: str, producer: AIOKafkaProducer, kafka_bootstrap: str, database_url: str
) -> None:
    parked = [await park_event(producer, topic, "PaymentCompleted", f"pay-{n}", ValueError("no"))
              for n in range(3)]

    dry = await cli.json("replay", "--all", "--topic", topic, "--dry-run")
    assert len(dry["replayed"]) == 3 and dry["dry_run"]
    assert sum((await end_offsets(kafka_bootstrap, topic)).values()) == 0

    started = time.monotonic()
    first = await cli.json("replay", "--all", "--topic", topic, "--rate", "20", "--actor", "tester")
    assert time.monotonic() - started >= 0.1  # three messages at 20/s
    assert len(first["replayed"]) == 3
    records = await read_new(kafka_bootstrap, topic, {}, 3)
    assert sorted(r.key for r in records) == sorted(e.key for e in parked)
    assert all(dict(r.headers)[REPLAY_COUNT] == b"1" for r in records)
    assert not any(key.startswith("dlq-error") for r in records for key, _ in r.headers)

    assert (await cli.json("replay", "--all", "--topic", topic))["replayed"] == []
    await assert_progress_committed(cli, kafka_bootstrap, topic)
    await assert_audited(database_url, first["replayed"], actor="tester")

    # The consumer fails again: parked, replayed (count 2), parked again, quarantined.
    mark = await end_offsets(kafka_bootstrap, topic)
    await park_again(producer, records)
    assert len((await cli.json("replay", "--all", "--topic", topic))["replayed"]) == 3
    await park_again(producer, await read_new(kafka_bootstrap, topic, mark, 3))
    last = await cli.json("replay", "--all", "--topic", topic)

    assert last["replayed"] == [] and len(last["quarantined"]) == 3
    quarantined = (await cli.json("list", "--topic", topic, "--status", "quarantined"))["messages"]
    assert {m["replay_count"] for m in quarantined} == {MAX_REPLAYS}
    again = await cli.json("replay", quarantined[0]["id"])
    assert again["skipped"] == [{"id": quarantined[0]["id"], "reason": "quarantined"}]


async def assert_progress_committed(cli: Cli, kafka: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=cli.env["DLQ_REPLAY_GROUP"])
    await consumer.start()
    try:
        ends = await end_offsets(kafka, dead_letter_topic(topic))
        for partition, end in ends.items():
            if end:
                assert await consumer.committed(TopicPartition(dead_letter_topic(topic), partition)) == end
    finally:
        await consumer.stop()


async def assert_audited(database_url: str, ids: list[str], actor: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT message_id, action, actor, replay_count FROM dlq_audit WHERE message_id = ANY($1)", ids)
    finally:
        await connection.close()
    assert sorted(r["message_id"] for r in rows) == sorted(ids)
    assert {(r["action"], r["actor"], r["replay_count"]) for r in rows} == {("replay", actor, 1)}


async def test_purge_by_id_and_by_age(cli: Cli, topic: str, producer: AIOKafkaProducer) -> None:
    for n in range(3):
        await park_event(producer, topic, "PaymentCompleted", f"pay-{n}", ValueError("no"))
    ids = [m["id"] for m in (await cli.json("list", "--topic", topic))["messages"]]

    await cli.json("purge", ids[0], "--dry-run")
    assert len((await cli.json("list", "--topic", topic))["messages"]) == 3
    assert (await cli.json("purge", ids[0]))["purged"] == [ids[0]]
    assert [m["id"] for m in (await cli.json("list", "--topic", topic))["messages"]] == ids[1:]
    by_age = await cli.json("purge", "--older-than", "0s", "--topic", topic)
    assert sorted(by_age["purged"]) == sorted(ids[1:])

    assert (await cli.json("list", "--topic", topic))["messages"] == []
    assert (await cli.json("replay", "--all", "--topic", topic))["replayed"] == []
    assert len((await cli.json("list", "--topic", topic, "--status", "purged"))["messages"]) == 3


async def test_errors_are_one_line_with_an_exit_status(cli: Cli, topic: str) -> None:
    assert "unknown dead letter id" in await cli.run("show", f"{topic}.dlq:0:999", code=1)
    assert "bad id" in await cli.run("show", "nonsense", code=2)
    assert "not both and not neither" in await cli.run("replay", code=2)
    assert "bad duration" in await cli.run("list", "--older-than", "soon", code=2)

    env = {**os.environ, **cli.env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    for args, code, start in (
        (["list"], 1, "error: cannot reach the Kafka broker"),
        (["replay", "--bogus"], 2, "error: No such option"),
    ):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "workers.dlq", *args], cwd=REPO_ROOT, env=env,
            capture_output=True, text=True, timeout=60)
        assert done.returncode == code
        assert done.stderr.startswith(start) and done.stderr.count("\n") == 1, done.stderr


async def test_a_dead_outbox_row_is_replayed_quarantined_and_purged(
    outbox_db: str, connection: asyncpg.Connection, kafka_bootstrap: str
) -> None:
    cli = Cli(outbox_db, kafka_bootstrap)
    collector = Collector(kafka_bootstrap, unique_topic("dead-row"))
    settings = relay_settings(outbox_db, kafka_bootstrap)
    async with collector.running(), running_relay(settings):
        (big,) = await insert_events(connection, collector.topic, [("agg", 1)], pad="x" * 1_100_000)
        (behind,) = await insert_events(connection, collector.topic, [("agg", 2)])
        row_id = await connection.fetchval("SELECT id FROM outbox WHERE event_id = $1::uuid", big)
        message_id = f"outbox:{row_id}"

        for replays in range(MAX_REPLAYS + 1):
            await dead(connection, row_id, replays)
            (item,) = (await cli.json("list", "--topic", collector.topic))["messages"]
            assert (item["id"], item["error_class"]) == (message_id, "MessageSizeTooLargeError")
            assert item["replay_count"] == replays
            await cli.json("replay", "--all", "--topic", collector.topic)

        quarantined = await cli.json("list", "--topic", collector.topic, "--status", "quarantined")
        assert [m["id"] for m in quarantined["messages"]] == [message_id]
        assert behind not in collector.ids
        assert (await cli.json("purge", message_id))["purged"] == [message_id]
        # The dead row held its aggregate back; once purged the next event flows.
        await collector.wait_for([behind], within=10)


async def dead(connection: asyncpg.Connection, row_id: int, replays: int) -> None:
    """Wait until the relay has marked the row dead (again) after `replays` replays."""
    deadline = time.monotonic() + 10
    while True:
        row = await connection.fetchrow(
            "SELECT dead_at, (SELECT count(*) FROM dlq_audit WHERE message_id = $2"
            " AND action = 'replay') AS replays FROM outbox WHERE id = $1", row_id, f"outbox:{row_id}")
        if row["dead_at"] is not None and row["replays"] == replays:
            return
        assert time.monotonic() < deadline, "the relay never marked the row dead"
        await asyncio.sleep(0.05)


async def test_show_masks_phone_numbers_and_queue_tokens_unless_revealed(
    cli: Cli, topic: str, producer: AIOKafkaProducer
) -> None:
    phone, queue_token = "+821098765432", "QzT7" + "k" * 28
    envelope = Envelope.new("PaymentCompleted", "payment", "agg-private",
                            {"queue_token": queue_token, "phone_number": phone, "note": "[/x] [bold]"})
    await park(producer, topic=topic, partition=0, offset=0, key=envelope.key, value=encode(envelope),
               headers=envelope.headers, error=ValueError(f"no route to {phone} [/x]"), attempts=5,
               consumer="test-consumer")
    (letter,) = (await cli.json("list", "--topic", topic))["messages"]

    tables = [await cli.run("show", letter["id"]), await cli.run("list", "--topic", topic)]
    for output in (*map(squeezed, tables), json.dumps(await cli.json("show", letter["id"])),
                   json.dumps(letter)):
        assert phone not in output and queue_token not in output, output
    shown = await cli.json("show", letter["id"])
    assert shown["value"]["json"]["data"]["phone_number"] == "+********5432"
    assert shown["value"]["json"]["data"]["queue_token"] == "QzT7…"

    revealed = await cli.json("show", letter["id"], "--reveal")
    assert revealed["value"]["json"]["data"] == {"queue_token": queue_token, "phone_number": phone,
                                                 "note": "[/x] [bold]"}
    # Markup-like text is data: printed as it is, never parsed (rich would raise on `[/x]`).
    table = squeezed(await cli.run("show", letter["id"], "--reveal"))
    assert phone in table and "[/x][bold]" in table and queue_token in table
    assert "[/x]" in squeezed(await cli.run("list", "--topic", topic))


def squeezed(table: str) -> str:
    """A printed table's text without borders and whitespace, so wrapped values read whole."""
    return re.sub(r"[\s│┃]", "", table)
