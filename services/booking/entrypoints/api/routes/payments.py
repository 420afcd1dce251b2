"""Payments and the tickets they buy."""

import logging
from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import payments as payment_rows
from services.booking.adapters.idempotency_store import IdempotencyKey
from services.booking.domain.errors import BookingError
from services.booking.entrypoints.api import idempotency
from services.booking.entrypoints.api.deps import (
    CallerDep,
    IdempotencyKeyHeader,
    QueueTokenHeader,
    ServicesDep,
    checked_idempotency_key,
    require_active_token,
)
from services.booking.entrypoints.api.schemas import (
    PayIn,
    PaymentCreated,
    PaymentOut,
    TicketList,
)
from services.booking.entrypoints.api.tracing import current_trace_id
from services.booking.service_layer import payments

log = logging.getLogger(__name__)
router = APIRouter(tags=["payments"])


def _created(receipt: payments.PaymentReceipt) -> PaymentCreated:
    reservation = receipt.reservation
    return PaymentCreated.model_validate({
        "id": receipt.payment_id, "reservation_id": reservation.id, "amount": reservation.price,
        "status": "PAID",
        "ticket": {"id": receipt.ticket_id, "status": "PENDING",
                   "schedule_id": reservation.schedule_id, "seat_no": reservation.seat_no},
    })


@router.post("/payments", status_code=201, response_model=PaymentCreated)
async def pay(
    body: PayIn, caller: CallerDep, services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None, x_queue_token: QueueTokenHeader = None,
) -> Response:
    key = IdempotencyKey(
        caller.user_id, "payments", checked_idempotency_key(idempotency_key, required=True) or "",
        idempotency.request_hash(body),
    )
    # A repeat is answered from the store even when the queue guard refuses it or Redis
    # is down: its token may be gone precisely because the first attempt paid. A repeat
    # whose token still passes is answered by run_once, whose claim finds the stored
    # response; so the store is read only then, sparing every first attempt a transaction.
    try:
        token = await require_active_token(services, caller, x_queue_token)
    except (BookingError, RedisError):
        if (replayed := await idempotency.stored_response(services.engine, key)) is not None:
            return replayed
        raise

    async def operation(conn: AsyncConnection) -> PaymentCreated:
        receipt = await payments.pay(
            conn, caller.user_id, body.reservation_id, token, datetime.now(UTC),
            current_trace_id(),
        )
        return _created(receipt)

    response = await idempotency.run_once(services.engine, key, operation, 201)
    if response.status_code == 201:
        try:
            await services.waiting_room.expire(token)
        except RedisError:
            # The outbox carries a QueueTokenExpired event; its consumer finishes the job.
            log.warning("queue token not expired in Redis after payment; the event will")
    return response


@router.get("/payments/{payment_id}", response_model=PaymentOut)
async def get_payment(payment_id: UUID, caller: CallerDep, services: ServicesDep) -> PaymentOut:
    async with services.engine.connect() as conn:
        found = await payments.get_payment(conn, caller.user_id, payment_id)
    return PaymentOut.model_validate(found)


@router.get("/tickets", response_model=TicketList)
async def list_tickets(caller: CallerDep, services: ServicesDep) -> TicketList:
    async with services.engine.connect() as conn:
        items = await payment_rows.own_tickets(conn, caller.user_id)
    return TicketList.model_validate({"items": items})
