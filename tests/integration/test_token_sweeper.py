"""booking-worker token-expiry's sweep on real PostgreSQL and Redis: a spent token's row is
marked swept only once Redis let the token go, replicas share the rows, an outage keeps them
unswept."""

import asyncio
import logging
import secrets
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.booking.adapters.queue_token_expiries import QueueTokenExpiries, create_pool
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.domain.waiting_room import Lifetimes, Room, RoomPolicy
from services.common.redis_client import RedisClient, connect_redis
from tests.relay_support import asyncpg_dsn, prepared_plan
from workers.devstack.embedded import start_redis
from workers.token_expiry.sweeper import Sweeper

pytestmark = pytest.mark.integration


class WatchedRooms(WaitingRooms):
    """The real waiting rooms, noting each token `expire` was called for; `go_on` cleared
    holds every call until it is set again."""

    def __init__(self, redis: RedisClient, namespace: str) -> None:
        super().__init__(redis, LIFETIMES, namespace)
        self.expired: list[str] = []
        self.entered = asyncio.Event()
        self.go_on = asyncio.Event()
        self.go_on.set()

    async def expire(self, token: str) -> None:
        self.entered.set()
        await self.go_on.wait()
        self.expired.append(token)
        await super().expire(token)


LIFETIMES = Lifetimes(600, 600)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


def new_namespace() -> str:
    return "sweep" + secrets.token_hex(4)


async def issue_tokens(rooms: WaitingRooms, count: int) -> list[str]:
    concert_id = uuid.uuid4()
    await rooms.publish(Room(concert_id, RoomPolicy(admit_per_second=100, max_active=10), 1))
    issued = [await rooms.issue(concert_id, f"user-{n}") for n in range(count)]
    return [found.ticket.token for found in issued]


async def spend(database_url: str, tokens: Sequence[str]) -> None:
    """Commit the tokens' rows the way a payment's statement writes them (not swept)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO queue_token_expiries (token, user_id, payment_id, expired_at)"
            " SELECT token, 'user-' || n, gen_random_uuid(), now()"
            "   FROM unnest(CAST($1 AS text[])) WITH ORDINALITY AS t(token, n)", tokens)
    finally:
        await connection.close()


@pytest.fixture
async def pool(outbox_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(outbox_db, size=4)
    yield pool
    await pool.close()


async def waiting_rows(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT token FROM queue_token_expiries WHERE swept_at IS NULL")
    return [record["token"] for record in rows]


async def swept_rows(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT token FROM queue_token_expiries WHERE swept_at IS NOT NULL")
    return [record["token"] for record in rows]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_sweep_removes_a_token_still_in_redis_and_marks_its_row_swept(
    outbox_db: str, pool: asyncpg.Pool, redis: RedisClient,
) -> None:
    rooms = WaitingRooms(redis, LIFETIMES, new_namespace())
    (token,) = await issue_tokens(rooms, 1)
    await spend(outbox_db, [token])
    assert await rooms.state(token, touch=False) is not None
    assert await waiting_rows(pool) == [token]
    removed_before = sample("token_expiry_tokens_removed_total")

    assert await Sweeper(QueueTokenExpiries(pool), rooms).sweep() == 1

    assert await rooms.state(token, touch=False) is None
    assert await waiting_rows(pool) == []
    assert await swept_rows(pool) == [token]  # the record stays
    assert sample("token_expiry_tokens_removed_total") == removed_before + 1
    assert sample("token_expiry_spent_tokens_waiting") == 0
    assert sample("token_expiry_oldest_spent_token_age_seconds") == 0


async def test_two_sweepers_at_once_remove_each_token_once_and_leave_none_unswept(
    outbox_db: str, pool: asyncpg.Pool, redis: RedisClient,
) -> None:
    namespace = new_namespace()
    rooms = WaitingRooms(redis, LIFETIMES, namespace)
    tokens = await issue_tokens(rooms, 40)
    await spend(outbox_db, tokens)
    first, second = WatchedRooms(redis, namespace), WatchedRooms(redis, namespace)
    # Each sweeper holds its first batch until the other holds one too: both hold row
    # locks at once, which only SKIP LOCKED gets through (a wait would never end).
    first.go_on.clear()
    second.go_on.clear()

    async def release_when_both_entered() -> None:
        await first.entered.wait()
        await second.entered.wait()
        first.go_on.set()
        second.go_on.set()

    async def sweep_until_empty(watched: WatchedRooms) -> None:
        sweeper = Sweeper(QueueTokenExpiries(pool), watched, batch=10)
        while await sweeper.sweep():
            pass
        assert sweeper.outage is None

    await asyncio.wait_for(asyncio.gather(
        release_when_both_entered(), sweep_until_empty(first), sweep_until_empty(second)), 30)

    assert first.expired and second.expired
    assert sorted(first.expired + second.expired) == sorted(tokens)
    assert await waiting_rows(pool) == []
    assert sorted(await swept_rows(pool)) == sorted(tokens)
    assert [await rooms.state(token, touch=False) for token in tokens] == [None] * len(tokens)


async def test_redis_unavailable_keeps_the_rows_unswept_until_a_later_sweep_removes_them(
    outbox_db: str, pool: asyncpg.Pool, server_log_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with start_redis(log_dir=server_log_dir) as server:
        client = connect_redis(server.url, timeout=0.5)
        rooms = WaitingRooms(client, LIFETIMES, new_namespace())
        tokens = await issue_tokens(rooms, 3)
        await spend(outbox_db, tokens)
        sweeper = Sweeper(QueueTokenExpiries(pool), rooms)
        failures_before = sample("token_expiry_sweep_failures_total", reason="redis")

        server.send(signal.SIGSTOP)  # Redis stops answering: every command times out
        try:
            with caplog.at_level(logging.WARNING, logger="workers.token_expiry.sweeper"):
                assert await sweeper.sweep() == 0
                assert await sweeper.sweep() == 0
        finally:
            server.send(signal.SIGCONT)

        assert sweeper.outage == "redis"
        assert sample("token_expiry_sweep_failures_total", reason="redis") == failures_before + 2
        assert len([r for r in caplog.records if "redis unavailable" in r.getMessage()]) == 1
        assert sorted(await waiting_rows(pool)) == sorted(tokens)
        assert await swept_rows(pool) == []
        assert sample("token_expiry_spent_tokens_waiting") == 3
        assert sample("token_expiry_oldest_spent_token_age_seconds") > 0
        assert all([await rooms.state(token, touch=False) for token in tokens])

        assert await sweeper.sweep() == 3
        assert sweeper.outage is None
        assert await waiting_rows(pool) == []
        assert sorted(await swept_rows(pool)) == sorted(tokens)
        assert [await rooms.state(token, touch=False) for token in tokens] == [None] * 3
        await client.aclose()


async def test_the_sweep_and_the_backlog_read_the_index_of_rows_not_swept_as_the_table_grows(
    outbox_db: str, pool: asyncpg.Pool,
) -> None:
    # Prepared while the table is empty, the statements' sixth run onwards run on a plan
    # kept from then (unlike the relay's, these need not be planned anew): it must still
    # read the partial index, not every paid token ever recorded.
    sweeper_pool = await create_pool(outbox_db, size=1)
    try:
        table = QueueTokenExpiries(sweeper_pool)
        for _ in range(7):
            await table.sweep(500, remove=lambda tokens: asyncio.sleep(0))
            await table.backlog()
        await pool.execute(
            "INSERT INTO queue_token_expiries (token, user_id, expired_at, swept_at)"
            " SELECT 'swept-' || n, 'user', now(), now() FROM generate_series(1, 20000) AS n")
        await spend(outbox_db, ["waiting-1", "waiting-2"])
        async with sweeper_pool.acquire() as session, session.transaction():
            take = await prepared_plan(session, "SET swept_at = now()", "500")
            backlog = await prepared_plan(session, "count(*)", "")
    finally:
        await sweeper_pool.close()

    for plan in (take, backlog):
        assert "Seq Scan" not in plan and "queue_token_expiries_unswept" in plan, plan
