"""Setup that is not measured, and the correctness checks read back with SQL afterwards."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench.api import mint
from bench.httpclient import Client, json_of
from bench.stack import RunningStack, plain_dsn
from services.common.broker_offsets import BrokerOffsets, consumer_groups

MAX_SEATS_PER_SCHEDULE = 10_000


@dataclass(frozen=True)
class BenchConcert:
    id: str
    schedules: list[str]


def create_concert(stack: RunningStack, seats: int, price: int, **waiting_room: int) -> BenchConcert:
    """A concert with enough schedules for `seats` seats, created through the admin API
    (`waiting_room`: its room's policy, else the stack's QUEUE_* defaults)."""
    schedules: list[dict[str, Any]] = []
    remaining = seats
    while remaining > 0:
        count = min(remaining, MAX_SEATS_PER_SCHEDULE)
        schedules.append({"starts_at": f"2027-{1 + len(schedules) % 12:02d}-01T19:00:00+09:00",
                          "seat_count": count, "price": price})
        remaining -= count
    body: dict[str, Any] = {"title": "Bench " + secrets.token_hex(3), "venue": "Olympic Hall",
                            "schedules": schedules}
    if waiting_room:
        body["waiting_room"] = waiting_room
    headers = {"Authorization": f"Bearer {mint(stack.env['AUTH_JWT_SECRET'], 'bench-admin', role='admin')}"}

    async def create() -> dict[str, Any]:
        address = urlsplit(stack.base_url)
        client = Client(address.hostname or "127.0.0.1", address.port or 80, timeout=300)
        try:
            status, answer = await client.request("POST", "/admin/concerts", headers, body)
        finally:
            client.close()
        if status != 201:
            raise RuntimeError(f"creating the bench concert answered {status}: {answer[:300]!r}")
        created: dict[str, Any] = json_of(answer)
        return created

    created = asyncio.run(create())
    return BenchConcert(created["id"], [schedule["id"] for schedule in created["schedules"]])


async def _fetch(stack: RunningStack, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain_dsn(stack.database_url))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(query, *args)
        return rows
    finally:
        await connection.close()


def sql(stack: RunningStack, query: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(stack, query, *args))


def seed_users(stack: RunningStack, prefix: str, count: int, points: int = 0,
               phone: str | None = None) -> None:
    """Users who registered and charged points before the run: rows exist, the API has
    not seen them yet (setup by SQL, not measured: ten thousand charges take a while).
    With a `phone` every one of them is notified, as buyers who signed in with Kakao are."""
    sql(stack, """
        WITH made AS (
            INSERT INTO users (id, name, phone_number)
            SELECT $1 || '-' || lpad(n::text, 6, '0'),
                   CASE WHEN $4::text IS NOT NULL THEN 'Bench User' END, $4
              FROM generate_series(0, $2 - 1) AS n
            RETURNING id
        ), wallet AS (
            INSERT INTO wallets (user_id, balance) SELECT id, $3 FROM made
        )
        INSERT INTO point_history (user_id, type, amount, balance_after)
        SELECT id, 'CHARGE', $3, $3 FROM made WHERE $3 > 0
    """, prefix, count, points, phone)
    # Otherwise autovacuum takes up the new rows during the measurement that follows.
    sql(stack, "VACUUM ANALYZE users, wallets, point_history")


@dataclass(frozen=True)
class Sales:
    seats: int
    sold: int
    held: int
    payments: int
    live_tickets: int
    seats_sold_twice: int


def sales(stack: RunningStack, schedule_ids: list[str]) -> Sales:
    row = sql(stack, """
        SELECT
          (SELECT count(*) FROM seats WHERE schedule_id = ANY($1::uuid[])) AS seats,
          (SELECT count(*) FROM seats WHERE schedule_id = ANY($1::uuid[]) AND status = 'SOLD') AS sold,
          (SELECT count(*) FROM seats WHERE schedule_id = ANY($1::uuid[]) AND status = 'HELD') AS held,
          (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
            WHERE r.schedule_id = ANY($1::uuid[]) AND p.status = 'PAID') AS payments,
          (SELECT count(*) FROM tickets
            WHERE schedule_id = ANY($1::uuid[]) AND status <> 'VOID') AS live_tickets,
          (SELECT count(*) FROM (SELECT 1 FROM tickets WHERE schedule_id = ANY($1::uuid[])
             AND status <> 'VOID' GROUP BY schedule_id, seat_no HAVING count(*) > 1) AS twice
          ) AS seats_sold_twice
    """, schedule_ids)[0]
    return Sales(**dict(row))


def inconsistent_wallets(stack: RunningStack, prefix: str, charged: int) -> int:
    """Wallets of the run's users whose balance is not charge - payments = sum of history."""
    row = sql(stack, """
        SELECT count(*) AS wrong FROM wallets w
         WHERE w.user_id LIKE $1 || '-%'
           AND (w.balance <> $2 - (SELECT coalesce(sum(amount), 0) FROM payments p
                                    WHERE p.user_id = w.user_id AND p.status = 'PAID')
                OR w.balance <> (SELECT coalesce(sum(CASE h.type WHEN 'USE' THEN -h.amount
                                                             ELSE h.amount END), 0)
                                   FROM point_history h WHERE h.user_id = w.user_id))
    """, prefix, charged)[0]
    return int(row["wrong"])


def seconds_until_drained(stack: RunningStack, patience: float = 60.0) -> float | None:
    """Seconds from now until the workers have caught up: the outbox published, every spent
    queue token swept and every consumer group's committed offset at the end of what it
    reads; None past `patience`."""
    prefix = stack.env.get("CONSUMER_GROUP_PREFIX", "booking")
    offsets = BrokerOffsets(stack.env["KAFKA_BOOTSTRAP_SERVERS"], consumer_groups(prefix), timeout=5)
    started = time.monotonic()
    while time.monotonic() - started < patience:
        waiting = sql(stack, "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL"
                             " AND dead_at IS NULL) + (SELECT count(*) FROM queue_token_expiries"
                             " WHERE swept_at IS NULL) AS n")[0]["n"]
        if waiting == 0 and not any(asyncio.run(offsets.read()).lag.values()):
            return time.monotonic() - started
        time.sleep(0.5)
    return None
