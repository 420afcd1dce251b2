"""Which channel carries a notification, under which id, saying what."""

from datetime import datetime
from uuid import uuid4

import pytest

from services.notifier.domain.messages import Content, channel_order, message_id, sms_text

pytestmark = pytest.mark.unit


def content(template: str) -> Content:
    return Content(template, "Ann", "010", "Rush", datetime(2027, 1, 1, 19, 30), 7, 10_000)  # type: ignore[arg-type]


def test_alimtalk_comes_first_unless_an_earlier_call_on_a_channel_is_unsettled() -> None:
    assert channel_order(None) == ("kakao", "sms")
    assert channel_order("kakao") == ("kakao", "sms")
    # An SMS call may have been accepted: settle it with SMS before trying AlimTalk.
    assert channel_order("sms") == ("sms", "kakao")


def test_every_channel_and_try_of_a_notification_carries_the_same_message_id() -> None:
    notification = uuid4()
    assert message_id(notification) == message_id(notification) == str(notification)
    assert message_id(uuid4()) != message_id(notification)


def test_the_sms_says_confirmed_or_refunded_with_the_show_seat_and_amount() -> None:
    assert sms_text(content("TICKET_CONFIRMED")) == (
        "[Booking] Ann, your ticket is confirmed: Rush, 2027-01-01 19:30, seat 7. Paid 10,000 KRW.")
    assert sms_text(content("PAYMENT_REFUNDED")) == (
        "[Booking] Ann, your booking for Rush, 2027-01-01 19:30, seat 7 could not be completed."
        " 10,000 KRW refunded.")
