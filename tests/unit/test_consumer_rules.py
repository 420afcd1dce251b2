"""Pure rules of the consumers: event data parsing, notification identity, channel order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.booking.domain import ticket_saga
from services.booking.domain.events import NotificationRequested, PaymentCompleted
from services.notifier.domain.messages import Content, channel_order, sms_text
from workers.common.database import is_database_outage
from workers.common.event_data import MalformedEvent, parse_event

pytestmark = pytest.mark.unit

PAYMENT = PaymentCompleted(
    payment_id=uuid.uuid4(), reservation_id=uuid.uuid4(), ticket_id=uuid.uuid4(), user_id="u-1",
    schedule_id=uuid.uuid4(), seat_no=7, amount=10_000, queue_token=None,
)


def test_event_data_is_parsed_strictly_and_extra_fields_are_ignored() -> None:
    data = {field: str(value) if isinstance(value, uuid.UUID) else value
            for field, value in vars(PAYMENT).items()}
    assert parse_event(PaymentCompleted, {**data, "added_later": 1}) == PAYMENT
    with pytest.raises(MalformedEvent, match="'seat_no' must be an integer"):
        parse_event(PaymentCompleted, {**data, "seat_no": "7"})
    with pytest.raises(MalformedEvent, match="'payment_id' must be a UUID"):
        parse_event(PaymentCompleted, {**data, "payment_id": "p-1"})
    with pytest.raises(MalformedEvent, match="'amount' is missing"):
        parse_event(PaymentCompleted, {k: v for k, v in data.items() if k != "amount"})


def test_a_notification_is_named_by_its_payment_and_template() -> None:
    confirmed = ticket_saga.confirmation_events(PAYMENT)[1]
    refunded = ticket_saga.refund_events(PAYMENT, "venue said no")[1]
    assert isinstance(confirmed, NotificationRequested)
    assert confirmed.notification_id == ticket_saga.confirmation_events(PAYMENT)[1].notification_id
    assert confirmed.notification_id != refunded.notification_id
    with pytest.raises(MalformedEvent, match="unknown value"):
        parse_event(NotificationRequested, {**vars(confirmed), "template": "HELLO",
                                            "notification_id": str(confirmed.notification_id),
                                            "payment_id": str(PAYMENT.payment_id),
                                            "schedule_id": str(PAYMENT.schedule_id)})


def test_an_unsettled_channel_is_settled_before_any_other() -> None:
    assert channel_order(None) == ("kakao", "sms")
    assert channel_order("kakao") == ("kakao", "sms")
    assert channel_order("sms") == ("sms", "kakao")


def test_sms_text_names_what_happened() -> None:
    content = Content("PAYMENT_REFUNDED", "Kim", "01012345678", "Rush",
                      datetime(2027, 1, 1, 19, 0, tzinfo=UTC), 7, 10_000)
    assert sms_text(content) == ("[Booking] Kim, your booking for Rush, 2027-01-01 19:00, seat 7 "
                                 "could not be completed. 10,000 KRW refunded.")


def test_only_an_unreachable_database_is_an_outage() -> None:
    assert is_database_outage(ConnectionRefusedError(111, "refused"))
    try:
        raise RuntimeError("wrapped") from OSError("reset by peer")
    except RuntimeError as wrapped:
        assert is_database_outage(wrapped)
    assert not is_database_outage(ValueError("bad"))
