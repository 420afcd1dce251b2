"""The ticket saga: register a paid ticket with the venue, or undo the payment.

Delivery is at least once. The saga tolerates any repeat: the processed-event row
commits with the effects, the saga row is closed once, and the venue deduplicates
by the ticket's registration id, so a call repeated after a crash registers nothing new.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import outbox, sagas
from services.booking.adapters.database import driver_connection
from services.booking.adapters.sagas import Claim, ClaimRequest, Confirmation, RegistrationContext
from services.booking.adapters.unit_of_work import unit_of_work
from services.booking.adapters.venue_client import VenueRegistrar, VenueRegistration
from services.booking.domain import ticket_saga
from services.booking.domain.events import PaymentCompleted
from services.booking.domain.ticket_saga import Refused, Registered, VenueVerdict
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.coalescing import Coalescer
from services.common.http_resilience import Accepted, BreakerOpen, TransientFailure

CONSUMER = "ticket-saga"
SETTLE_LINGER_SECONDS = 0.002
log = logging.getLogger("booking.saga")


class PaymentUnknown(Exception):
    """The event names a payment this database does not have; retrying cannot help."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TicketSaga:
    """The saga's two usual statements are shared by the payments handled at once: each
    payment's claim goes with the others issued in the same turn of the event loop, and so
    does each settlement (services/common/coalescing.py)."""

    def __init__(
        self, engine: AsyncEngine, venue: VenueRegistrar,
        # An open venue breaker is waited out once (it then lets a trial call through);
        # if that fails too, the venue counts as unavailable and the payment is undone.
        breaker_wait_seconds: float = 30.0, clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.breaker_wait_seconds = breaker_wait_seconds
        self.clock = clock
        self._claims = Coalescer(self._claim_many, key=lambda request: request.payment_id)
        # Settlements follow venue answers, which come back a little apart: they wait a
        # moment for each other.
        self._confirmations = Coalescer(self._confirm_many, key=lambda done: done.payment_id,
                                        linger=SETTLE_LINGER_SECONDS)

    async def on_payment_completed(
        self, event_id: UUID, payment: PaymentCompleted, trace_id: str | None
    ) -> str:
        """Run the saga for one payment; return what happened (for logs and metrics).

        The usual path is two statements, each its own transaction: one claims the event
        and reads what the venue needs, the venue is called outside any transaction, one
        settles the saga with the ticket's events. Undoing a payment is rare and runs as
        one unit of work of several statements (compensate).
        """
        claimed = await self._claims(ClaimRequest(event_id, payment.payment_id, payment.ticket_id))
        if claimed.processed:
            return "duplicate"
        if claimed.context is None:
            raise PaymentUnknown(f"no payment {payment.payment_id} with a ticket")
        if not claimed.started:  # the saga finished before; the claim marked the event
            return "duplicate"
        verdict = await self._register(payment, claimed.context, trace_id)
        if isinstance(verdict, Registered):
            events = [outbox.outbox_row(event, trace_id)
                      for event in ticket_saga.confirmation_events(payment)]
            done = await self._confirmations(Confirmation(
                event_id, payment.payment_id, payment.ticket_id, verdict.attempts, events))
            return "confirmed" if done else "duplicate"
        async with unit_of_work(self.engine, trace_id) as uow:
            done = await compensate(uow, event_id, payment, verdict, self.clock())
        return "compensated" if done else "duplicate"

    async def _claim_many(self, requests: list[ClaimRequest]) -> list[Claim]:
        async with driver_connection(self.engine) as conn:
            return await sagas.claim_many(conn, CONSUMER, requests, self.clock())

    async def _confirm_many(self, confirmations: list[Confirmation]) -> list[bool]:
        async with driver_connection(self.engine) as conn:
            return await sagas.settle_confirmed_many(conn, CONSUMER, confirmations, self.clock())

    async def _register(
        self, payment: PaymentCompleted, context: RegistrationContext, trace_id: str | None
    ) -> VenueVerdict:
        registration = VenueRegistration(
            registration_id=ticket_saga.registration_id(payment.ticket_id),
            ticket_id=str(payment.ticket_id), concert_title=context.concert_title,
            schedule_id=str(payment.schedule_id), starts_at=context.starts_at,
            seat_no=payment.seat_no, holder=context.holder,
        )
        for waited in (False, True):
            try:
                outcome = await self.venue.register(registration, trace_id=trace_id)
            except TransientFailure as failure:
                return ticket_saga.venue_unavailable(failure, failure.attempts)
            except BreakerOpen as refused:
                if waited:
                    return ticket_saga.venue_unavailable(refused, 0)
                await asyncio.sleep(self.breaker_wait_seconds)
                continue
            if isinstance(outcome, Accepted):
                return Registered(outcome.attempts)
            return ticket_saga.venue_rejected(outcome.status, outcome.code, outcome.attempts)
        raise AssertionError("unreachable")


async def compensate(
    uow: UnitOfWork, event_id: UUID, payment: PaymentCompleted, refused: Refused, now: datetime
) -> bool:
    """Undo the payment the venue refused; False when this event or the saga was handled before."""
    if not await uow.sagas.mark_processed(CONSUMER, event_id):
        return False
    # Lock order as in payment: reservation, wallet, seat.
    locked = await uow.refunds.lock_for_refund(payment.reservation_id)
    if locked is None:
        raise PaymentUnknown(f"no reservation {payment.reservation_id}")
    balance = await uow.wallets.lock_balance(locked.user_id)
    await uow.refunds.lock_seat(locked.schedule_id, locked.seat_no)
    if not await uow.sagas.finish(
        payment.payment_id, ticket_saga.COMPENSATED, refused.reason, refused.attempts, now
    ):
        return False
    amount = await uow.refunds.undo_payment(payment.payment_id, locked.schedule_id, locked.seat_no, now)
    if amount is None:
        log.warning("payment %s was refunded outside the saga", payment.payment_id)
        return True
    refund = ticket_saga.refund(payment, refused, balance, amount)
    await uow.wallets.record_movement(
        locked.user_id, "REFUND", amount, refund.balance_after, now, payment_id=payment.payment_id)
    uow.collect(refund.events)
    log.info("payment %s refunded: %s", payment.payment_id, refused.reason)
    return True
