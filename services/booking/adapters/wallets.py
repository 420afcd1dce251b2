"""Wallet balances and their history rows in PostgreSQL."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SELECT_BALANCE = text("SELECT balance FROM wallets WHERE user_id = :user_id")
LOCK_BALANCE = text("SELECT balance FROM wallets WHERE user_id = :user_id FOR UPDATE")
WRITE_MOVEMENT = text("""
WITH moved AS (
    UPDATE wallets SET balance = :balance_after, updated_at = :now WHERE user_id = :user_id
)
INSERT INTO point_history (user_id, type, amount, balance_after, payment_id, created_at)
VALUES (:user_id, :type, :amount, :balance_after, :payment_id, :now)
""")
SELECT_HISTORY = text("""
SELECT id, type, amount, balance_after, created_at FROM point_history
 WHERE user_id = :user_id AND id < :before
 ORDER BY id DESC LIMIT :limit
""")


async def balance(conn: AsyncConnection, user_id: str) -> int:
    row = (await conn.execute(SELECT_BALANCE, {"user_id": user_id})).first()
    return 0 if row is None else int(row.balance)


async def lock_balance(conn: AsyncConnection, user_id: str) -> int:
    """Lock the wallet row until commit; callers lock their reservation first."""
    row = (await conn.execute(LOCK_BALANCE, {"user_id": user_id})).first()
    return 0 if row is None else int(row.balance)


async def record_movement(
    conn: AsyncConnection, user_id: str, kind: str, amount: int, balance_after: int,
    now: datetime, payment_id: UUID | None = None,
) -> None:
    await conn.execute(WRITE_MOVEMENT, {
        "user_id": user_id, "type": kind, "amount": amount, "balance_after": balance_after,
        "payment_id": payment_id, "now": now,
    })


async def history(
    conn: AsyncConnection, user_id: str, before_id: int, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        SELECT_HISTORY, {"user_id": user_id, "before": before_id, "limit": limit}
    )
    return [dict(row._mapping) for row in rows]
