"""Payments and the tickets they buy."""

import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError

from services.booking.adapters import payments as payment_rows
from services.booking.adapters.idempotency_store import IdempotencyKey
from services.booking.domain.errors import (
    AlreadyPaid,
    BookingError,
    InsufficientPoints,
    NotFound,
    ReservationExpired,
)
from services.booking.domain.payment import Payment
from services.booking.domain.waiting_room import concert_of_token
from services.booking.entrypoints.api import idempotency
from services.booking.entrypoints.api.guards import (
    IDEMPOTENCY,
    QUEUE_GUARD,
    checked_idempotency_key,
    require_active_token,
)
from services.booking.entrypoints.api.http import Call, Endpoint, Link
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.problems import IDEMPOTENCY_KEY_REQUIRED
from services.booking.entrypoints.api.schemas import PayIn, PaymentCreated, PaymentOut, TicketList
from services.booking.service_layer import payments
from services.booking.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def _created(payment: Payment) -> PaymentCreated:
    reservation = payment.reservation
    return PaymentCreated.model_validate({
        "id": payment.id, "reservation_id": reservation.id, "amount": reservation.price,
        "status": "PAID",
        "ticket": {"id": payment.ticket_id, "status": "PENDING",
                   "schedule_id": reservation.schedule_id, "seat_no": reservation.seat_no},
    })


async def pay(call: Call) -> Response:
    body = await call.body(PayIn)
    services, caller = call.services, call.user
    key = IdempotencyKey(
        caller.user_id, "payments",
        checked_idempotency_key(call.header("idempotency-key"), required=True) or "",
        idempotency.request_hash(body),
    )
    # A repeat is answered from the store even when the queue guard refuses it or Redis
    # is down: its token may be gone precisely because the first attempt paid. A repeat
    # whose token still passes is answered by run_once, whose claim finds the stored
    # response; so the store is read only then, sparing every first attempt a transaction.
    # Any of the caller's active tokens passes here; the payment's own statement checks
    # that the hold is for the token's concert.
    try:
        token = await require_active_token(services, caller, call.header("x-queue-token"), None)
    except (BookingError, RedisError):
        if (replayed := await idempotency.stored_response(services.reads, key)) is not None:
            return replayed
        raise

    async def operation(uow: UnitOfWork) -> PaymentCreated:
        payment = await payments.pay(uow, caller.user_id, body.reservation_id, token,
                                     datetime.now(UTC), token_concert=concert_of_token(token))
        return _created(payment)

    response = await idempotency.run_once(services.unit_of_work, key, operation, 201,
                                         key_limit=services.settings.idempotency_keys_per_user)
    if response.status == 201:
        try:
            await services.waiting_rooms.expire(token)
        except RedisError:
            # The payment recorded the spent token; booking-worker token-expiry finishes the job.
            log.warning("queue token not expired in Redis after payment; the sweeper will")
    return response


async def get_payment(call: Call) -> PaymentOut:
    payment_id = call.path_id("payment_id")
    async with call.services.reads.connect() as conn:
        found = await payments.get_payment(conn, call.user.user_id, payment_id)
    return PaymentOut.model_validate(found)


async def list_tickets(call: Call) -> TicketList:
    async with call.services.reads.connect() as conn:
        items = await payment_rows.own_tickets(conn, call.user.user_id)
    return TicketList.model_validate({"items": items})


ENDPOINTS = [
    Endpoint("POST", "/payments", pay, 201, PaymentCreated, operation_id="payReservation", body=PayIn,
             headers=("X-Queue-Token", "Idempotency-Key"),
             errors=(*QUEUE_GUARD, IDEMPOTENCY_KEY_REQUIRED, *IDEMPOTENCY, NotFound, AlreadyPaid,
                     ReservationExpired, InsufficientPoints),
             tag="payments", summary="Pay for a held seat (once per Idempotency-Key)",
             links=(Link("read", "getPayment", {"payment_id": "$response.body#/id"}),)),
    Endpoint("GET", "/payments/{payment_id}", get_payment, operation_id="getPayment",
             response=PaymentOut, errors=(NotFound,),
             tag="payments", summary="One of the caller's payments"),
    Endpoint("GET", "/tickets", list_tickets, operation_id="listTickets", response=TicketList, tag="payments",
             summary="The caller's tickets"),
]
