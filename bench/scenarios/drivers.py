"""Client CPU of one transaction of the payment path's shape through SQLAlchemy and through
asyncpg directly: what a hot path saves by leaving SQLAlchemy's layer (issue 12's next step).

The same BEGIN, four statements (two row locks, a count, an update) and COMMIT, one
transaction at a time on one connection, timed by this process's CPU clock.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy import text

from bench import checks
from bench.report import Outcome
from bench.scenarios.common import log_dir, prefix
from bench.stack import plain_dsn, running_stack
from services.common.engines import create_private_engine

STATEMENTS = [
    "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
    "SELECT count(*) FROM reservations WHERE user_id = $1 AND status = 'HELD'",
    "SELECT balance FROM wallets WHERE user_id = $1 FOR UPDATE",
    "UPDATE wallets SET updated_at = now() WHERE user_id = $1 RETURNING balance",
]
TRANSACTIONS, WARMUP = 3_000, 200


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("drivers")
    with running_stack({}, log_dir=log_dir(options, "drivers"), only_parts=["api"]) as stack:
        who = prefix("drv")
        checks.seed_users(stack, who, 1)
        sqlalchemy_us, asyncpg_us = asyncio.run(_measure(stack.database_url, f"{who}-000000"))
    outcome.add("SQLAlchemy text(), client CPU per transaction", f"{sqlalchemy_us:.0f} µs")
    outcome.add("asyncpg prepared statements, client CPU per transaction", f"{asyncpg_us:.0f} µs")
    outcome.add("saved per transaction", f"{sqlalchemy_us - asyncpg_us:.0f} µs "
                f"({1 - asyncpg_us / sqlalchemy_us:.0%})")
    outcome.data |= {"sqlalchemy_us": sqlalchemy_us, "asyncpg_us": asyncpg_us}
    outcome.notes.append("BEGIN + 4 statements + COMMIT, one transaction at a time, "
                         f"{TRANSACTIONS:,} each")
    return outcome


async def _measure(database_url: str, user_id: str) -> tuple[float, float]:
    engine = create_private_engine(database_url, pool_size=1)
    named = [text(statement.replace("$1", ":user_id")) for statement in STATEMENTS]

    async def through_sqlalchemy() -> None:
        async with engine.begin() as conn:
            for statement in named:
                (await conn.execute(statement, {"user_id": user_id})).first()

    try:
        sqlalchemy_us = await _cpu_per_call(through_sqlalchemy)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(plain_dsn(database_url))

    async def through_asyncpg() -> None:
        async with connection.transaction():
            for statement in STATEMENTS:
                await connection.fetchrow(statement, user_id)

    try:
        asyncpg_us = await _cpu_per_call(through_asyncpg)
    finally:
        await connection.close()
    return sqlalchemy_us, asyncpg_us


async def _cpu_per_call(transaction: Callable[[], Awaitable[None]]) -> float:
    for _ in range(WARMUP):
        await transaction()
    started = time.process_time()
    for _ in range(TRANSACTIONS):
        await transaction()
    return (time.process_time() - started) / TRANSACTIONS * 1e6
