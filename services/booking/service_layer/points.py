"""Point balances: charging and reading the history."""

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import wallets
from services.booking.domain.wallet import balance_after_charge
from services.booking.service_layer.unit_of_work import UnitOfWork

NO_CURSOR = 2**63 - 1


async def charge(uow: UnitOfWork, user_id: str, amount: int, now: datetime) -> int:
    after = balance_after_charge(await uow.wallets.lock_balance(user_id), amount)
    await uow.wallets.record_movement(user_id, "CHARGE", amount, after, now)
    return after


async def history_page(
    conn: AsyncConnection, user_id: str, cursor: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page, newest first, and the cursor of the next page (None after the last)."""
    rows = await wallets.history(conn, user_id, cursor or NO_CURSOR, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return page, (page[-1]["id"] if more else None)
