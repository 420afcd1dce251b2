"""Point balance, charges and history."""

from datetime import UTC, datetime

from services.booking.adapters import wallets
from services.booking.adapters.idempotency_store import IdempotencyKey
from services.booking.domain.errors import BalanceLimitExceeded
from services.booking.entrypoints.api import idempotency
from services.booking.entrypoints.api.guards import IDEMPOTENCY, checked_idempotency_key
from services.booking.entrypoints.api.http import Call, Endpoint
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import Balance, ChargeIn, HistoryPage, HistoryQuery
from services.booking.service_layer import points
from services.booking.service_layer.unit_of_work import UnitOfWork


async def get_balance(call: Call) -> Balance:
    user_id = call.user.user_id
    async with call.services.reads.connect() as conn:
        return Balance(user_id=user_id, balance=await wallets.balance(conn, user_id))


async def charge(call: Call) -> Balance | Response:
    user_id = call.user.user_id
    body = await call.body(ChargeIn)

    async def operation(uow: UnitOfWork) -> Balance:
        balance = await points.charge(uow, user_id, body.amount, datetime.now(UTC))
        return Balance(user_id=user_id, balance=balance)

    key = checked_idempotency_key(call.header("idempotency-key"), required=False)
    if key is None:
        async with call.services.unit_of_work() as uow:
            return await operation(uow)
    idem = IdempotencyKey(user_id, "points.charge", key, idempotency.request_hash(body))
    return await idempotency.run_once(call.services.unit_of_work, idem, operation, 200,
                                      key_limit=call.services.settings.idempotency_keys_per_user)


async def history(call: Call) -> HistoryPage:
    query = call.query(HistoryQuery)
    cursor = None if query.cursor is None else int(query.cursor)  # its pattern: 1..2**63-1
    async with call.services.reads.connect() as conn:
        items, next_id = await points.history_page(conn, call.user.user_id, cursor, query.limit)
    return HistoryPage.model_validate(
        {"items": items, "next_cursor": None if next_id is None else str(next_id)}
    )


ENDPOINTS = [
    Endpoint("GET", "/points", get_balance, operation_id="getPointBalance", response=Balance, tag="points",
             summary="The caller's point balance"),
    Endpoint("POST", "/points/charge", charge, operation_id="chargePoints", response=Balance, body=ChargeIn,
             headers=("Idempotency-Key?",), errors=(BalanceLimitExceeded, *IDEMPOTENCY), tag="points",
             summary="Add points"),
    Endpoint("GET", "/points/history", history, operation_id="listPointHistory",
             response=HistoryPage, query=HistoryQuery,
             tag="points", summary="The caller's point history, newest first"),
]
