"""Point balance, charges and history."""

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import wallets
from services.booking.adapters.idempotency_store import IdempotencyKey
from services.booking.entrypoints.api import idempotency
from services.booking.entrypoints.api.deps import (
    CallerDep,
    IdempotencyKeyHeader,
    ServicesDep,
    checked_idempotency_key,
)
from services.booking.entrypoints.api.problems import ApiError
from services.booking.entrypoints.api.schemas import Balance, ChargeIn, HistoryPage
from services.booking.service_layer import points

router = APIRouter(prefix="/points", tags=["points"])
CURSOR = re.compile(r"[0-9]{1,19}")


@router.get("", response_model=Balance)
async def get_balance(caller: CallerDep, services: ServicesDep) -> Balance:
    async with services.engine.connect() as conn:
        return Balance(user_id=caller.user_id, balance=await wallets.balance(conn, caller.user_id))


@router.post("/charge", response_model=Balance)
async def charge(
    body: ChargeIn, caller: CallerDep, services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Balance | Response:
    async def operation(conn: AsyncConnection) -> Balance:
        balance = await points.charge(conn, caller.user_id, body.amount, datetime.now(UTC))
        return Balance(user_id=caller.user_id, balance=balance)

    key = checked_idempotency_key(idempotency_key, required=False)
    if key is None:
        async with services.engine.begin() as conn:
            return await operation(conn)
    idem = IdempotencyKey(caller.user_id, "points.charge", key, idempotency.request_hash(body))
    return await idempotency.run_once(services.engine, idem, operation, 200)


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not CURSOR.fullmatch(raw) or not 0 < int(raw) < 2**63:
        raise ApiError(422, "VALIDATION_FAILED", "cursor: not a cursor from this API")
    return int(raw)


@router.get("/history", response_model=HistoryPage)
async def history(
    caller: CallerDep, services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HistoryPage:
    async with services.engine.connect() as conn:
        items, next_id = await points.history_page(conn, caller.user_id, _cursor(cursor), limit)
    return HistoryPage.model_validate(
        {"items": items, "next_cursor": None if next_id is None else str(next_id)}
    )
