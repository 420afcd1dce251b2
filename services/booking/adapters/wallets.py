"""Wallet balances and their history rows in PostgreSQL.

Locking and moving a balance (the API's charge, the saga's refund) run in a unit of work
on asyncpg; reading the balance and its history goes through SQLAlchemy.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SELECT_BALANCE = text("SELECT balance FROM wallets WHERE user_id = :user_id")
LOCK_BALANCE = "SELECT balance FROM wallets WHERE user_id = $1 FOR UPDATE"
WRITE_MOVEMENT = """
WITH moved AS (
    UPDATE wallets SET balance = $4, updated_at = $6 WHERE user_id = $1
)
INSERT INTO point_history (user_id, type, amount, balance_after, payment_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
SELECT_HISTORY = text("""
SELECT id, type, amount, balance_after, created_at FROM point_history
 WHERE user_id = :user_id AND id < :before
 ORDER BY id DESC LIMIT :limit
""")


async def balance(conn: AsyncConnection, user_id: str) -> int:
    row = (await conn.execute(SELECT_BALANCE, {"user_id": user_id})).first()
    return 0 if row is None else int(row.balance)


class PostgresWallets:
    """Balances inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock_balance(self, user_id: str) -> int:
        balance = await self._conn.fetchval(LOCK_BALANCE, user_id)
        return 0 if balance is None else int(balance)

    async def record_movement(self, user_id: str, kind: str, amount: int, balance_after: int,
                              now: datetime, payment_id: UUID | None = None) -> None:
        await self._conn.execute(WRITE_MOVEMENT, user_id, kind, amount, balance_after, payment_id, now)


async def history(
    conn: AsyncConnection, user_id: str, before_id: int, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        SELECT_HISTORY, {"user_id": user_id, "before": before_id, "limit": limit}
    )
    return [dict(row._mapping) for row in rows]
