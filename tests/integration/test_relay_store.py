"""The relay's claim, lease and retention rules, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import orjson
import pytest

from services.booking.adapters.outbox import OutboxStore, create_pool
from tests.relay_support import insert_events, prepared_plan, private_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outbox_db(postgres_server_url: str) -> Iterator[str]:
    """One database for the module (each test empties its outbox), not conftest's one per test."""
    with private_database(postgres_server_url) as url:
        yield url


@pytest.fixture
async def db(
    outbox_db: str, connection: asyncpg.Connection
) -> AsyncIterator[tuple[OutboxStore, asyncpg.Connection]]:
    pool = await create_pool(outbox_db, 4)
    # Each test starts from an empty outbox: the relay claims from the whole table.
    await connection.execute("TRUNCATE outbox")
    try:
        yield OutboxStore(pool), connection
    finally:
        await pool.close()


async def test_claims_only_the_oldest_unpublished_row_of_each_aggregate(db) -> None:
    store, connection = db
    await insert_events(connection, "t", [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)])

    first = await store.claim(uuid.uuid4(), 30, 100)
    second = await store.claim(uuid.uuid4(), 30, 100)

    assert [(row.aggregate_id, orjson.loads(row.payload)["seq"]) for row in first] == [("a", 1), ("b", 1)]
    # a2 and b2 wait: their predecessors are leased by the first claimer.
    assert second == []


async def test_next_row_of_an_aggregate_is_claimable_once_its_predecessor_is_published(db) -> None:
    store, connection = db
    await insert_events(connection, "t", [("a", 1), ("a", 2)])
    token = uuid.uuid4()
    (row,) = await store.claim(token, 30, 100)

    assert await store.settle(token, [row.id], [], []) == 1
    (following,) = await store.claim(uuid.uuid4(), 30, 100)

    assert orjson.loads(following.payload)["seq"] == 2


async def test_a_late_ack_after_the_lease_was_taken_over_marks_nothing(db) -> None:
    store, connection = db
    await insert_events(connection, "t", [("a", 1)])
    slow, fast = uuid.uuid4(), uuid.uuid4()
    (row,) = await store.claim(slow, 0.05, 100)
    await asyncio.sleep(0.1)
    (taken_over,) = await store.claim(fast, 30, 100)
    assert taken_over.id == row.id

    assert await store.settle(slow, [row.id], [], []) == 0
    lease = await connection.fetchval("SELECT lease_token FROM outbox WHERE id = $1", row.id)
    assert lease == fast
    assert await store.settle(fast, [row.id], [], []) == 1


async def test_a_dead_row_blocks_its_aggregate_only(db) -> None:
    store, connection = db
    await insert_events(connection, "t", [("a", 1), ("a", 2), ("b", 1)])
    token = uuid.uuid4()
    rows = await store.claim(token, 30, 100)
    a1 = next(row for row in rows if row.aggregate_id == "a")
    b1 = next(row for row in rows if row.aggregate_id == "b")
    await store.settle(token, [b1.id], [], [(a1.id, "MessageSizeTooLargeError: too big")])

    assert await store.claim(uuid.uuid4(), 30, 100) == []
    stats = await store.stats()
    assert (stats.backlog, stats.dead) == (1, 1)
    assert stats.oldest_age_seconds > 0


async def test_a_failed_row_is_released_at_once_with_its_error(db) -> None:
    store, connection = db
    await insert_events(connection, "t", [("a", 1)])
    token = uuid.uuid4()
    (row,) = await store.claim(token, 30, 100)

    await store.settle(token, [], [(row.id, "KafkaConnectionError: down")], [])

    (again,) = await store.claim(uuid.uuid4(), 30, 100)
    assert again.id == row.id
    record = await connection.fetchrow("SELECT attempts, last_error FROM outbox WHERE id = $1",
                                       row.id)
    assert (record["attempts"], record["last_error"]) == (2, "KafkaConnectionError: down")


async def test_purge_deletes_only_rows_published_before_the_retention(db) -> None:
    store, connection = db
    ids = await insert_events(connection, "t", [(f"agg-{n}", 1) for n in range(6)])
    old, recent = ids[:3], ids[3:5]
    await connection.execute(
        "UPDATE outbox SET published_at = now() - interval '2 days' WHERE event_id = ANY($1::uuid[])",
        old)
    await connection.execute(
        "UPDATE outbox SET published_at = now() - interval '1 hour' WHERE event_id = ANY($1::uuid[])",
        recent)

    purged = await store.purge_published(retention_seconds=86400, chunk=2)

    remaining = await connection.fetch("SELECT event_id::text FROM outbox")
    assert purged == 3
    assert {record[0] for record in remaining} == set(ids[3:])



async def test_claim_and_settle_use_the_indexes_of_an_outbox_that_grew(outbox_db, db) -> None:
    # Prepared while the outbox is empty, the statements' sixth run onwards would keep a
    # plan that scans the whole table once it has grown, unless each run is planned anew.
    _, connection = db
    pool = await create_pool(outbox_db, 1)
    try:
        store = OutboxStore(pool)
        for _ in range(7):
            token = uuid.uuid4()
            await store.settle(token, [row.id for row in await store.claim(token, 30, 100)], [], [])
        await connection.execute("""
            INSERT INTO outbox (event_id, event_type, topic, aggregate_type, aggregate_id, payload,
                                published_at)
            SELECT gen_random_uuid(), 'E', 't', 'test', n::text, '{}', now()
              FROM generate_series(1, 20000) AS n""")
        await insert_events(connection, "t", [("a", 1), ("b", 1)])
        async with pool.acquire() as session:
            claim = await prepared_plan(session, "attempts = outbox.attempts + 1",
                                        f"'{uuid.uuid4()}', 30, 100")
            settle = await prepared_plan(session, "WITH published AS",
                                         f"'{{1,2}}', '{{}}', '{{}}', '{{}}', '{{}}', '{uuid.uuid4()}'")
    finally:
        await pool.close()

    assert "Seq Scan" not in claim and "outbox_pending" in claim, claim
    assert "Seq Scan" not in settle, settle
