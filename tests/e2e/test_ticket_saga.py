"""After a payment (API.md §2): venue registration, confirmation or compensation, notification."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from tests.e2e.flows import (
    PRICE,
    Paid,
    accepted_by,
    assert_each_sent_once,
    buy,
    buy_seats,
    commit_to_provider_seconds,
    customer,
    new_phone,
    new_schedule,
    notifications_final,
    tickets_settled,
)
from tests.e2e.stack import REPO_ROOT, VENUE_MAX_ATTEMPTS, Stack
from tests.support import auth, eventually

pytestmark = pytest.mark.e2e


async def test_200_payments_give_200_registrations_confirmed_tickets_and_messages(stack: Stack) -> None:
    paid = await buy_seats(stack, 200)

    await eventually(lambda: tickets_settled(stack, paid), 60, "200 tickets to settle")
    confirmations = [p.confirmation_id for p in paid]
    await eventually(lambda: notifications_final(stack, confirmations), 60, "200 notifications")

    tickets = await stack.sql("SELECT status FROM tickets WHERE id = ANY(CAST(:ids AS uuid[]))",
                              ids=[p.ticket_id for p in paid])
    assert [row["status"] for row in tickets] == ["CONFIRMED"] * 200
    registered = accepted_by(stack.venue)
    assert all(registered[p.ticket_id] == 1 for p in paid)
    assert_each_sent_once(stack, confirmations, channel="kakao")
    kakao = {call.key: call.body for call in stack.kakao.calls() if call.key in set(confirmations)}
    sample = kakao[paid[0].confirmation_id]
    assert sample["template_code"] == "TICKET_CONFIRMED" and sample["recipient"] == paid[0].phone
    assert sample["variables"]["seat_no"] == paid[0].seat_no and sample["variables"]["amount"] == PRICE
    latencies = await commit_to_provider_seconds(stack, paid)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
    print(f"\npayment commit -> Kakao call: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


async def test_venue_rejection_refunds_once_and_frees_the_seat(stack: Stack) -> None:
    schedule_id = await new_schedule(stack.booking, 5)
    stack.venue.behave(mode="error", status=409, code="SEAT_CONFLICT", for_seats=[3])
    phone = new_phone()
    user = await customer(stack.booking, phone=phone)
    rejected = await buy(stack.booking, user, phone, schedule_id, 3)

    await eventually(lambda: _payment_status(stack, rejected, "REFUNDED"), 30, "the refund")
    stack.venue.behave(mode="ok")
    headers = auth(user)
    payment = (await stack.booking.http.get(f"/payments/{rejected.payment_id}", headers=headers)).json()
    assert payment["status"] == "REFUNDED" and payment["refunded_at"]
    assert (await stack.booking.http.get("/points", headers=headers)).json()["balance"] == PRICE
    history = (await stack.booking.http.get("/points/history", headers=headers)).json()["items"]
    assert [item["type"] for item in history] == ["REFUND", "USE", "CHARGE"]
    tickets = (await stack.booking.http.get("/tickets", headers=headers)).json()["items"]
    assert [ticket["status"] for ticket in tickets] == ["VOID"]

    # The seat is bookable again, and this time the venue takes it.
    other_phone = new_phone()
    other = await customer(stack.booking, phone=other_phone)
    again = [await buy(stack.booking, other, other_phone, schedule_id, 3)]
    await eventually(lambda: tickets_settled(stack, again), 30, "the second ticket")
    await eventually(lambda: notifications_final(stack, [rejected.refund_notice_id]), 30,
                     "the refund notification")
    assert_each_sent_once(stack, [rejected.refund_notice_id], channel="kakao")
    notice = next(c.body for c in stack.kakao.calls() if c.key == rejected.refund_notice_id)
    assert notice["template_code"] == "PAYMENT_REFUNDED"
    saga = await _saga_view(stack, rejected)
    assert saga["status"] == "COMPENSATED" and "SEAT_CONFLICT" in saga["reason"]


async def _payment_status(stack: Stack, paid: Paid, status: str) -> bool:
    rows = await stack.sql("SELECT status FROM payments WHERE id = CAST(:id AS uuid)", id=paid.payment_id)
    return rows[0]["status"] == status


async def _saga_view(stack: Stack, paid: Paid) -> dict[str, object]:
    """The operator's view: `booking-worker sagas --payment ID --json`."""
    env = {**os.environ, "DATABASE_URL": stack.database_url}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "workers.cli", "sagas", "--payment", paid.payment_id,
                         "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (saga,) = json.loads(result.stdout)
    return dict(saga)


async def test_venue_failing_through_its_attempts_refunds_only_that_ticket(stack: Stack) -> None:
    schedule_id = await new_schedule(stack.booking, 2)
    stack.venue.behave(mode="error", status=503, for_seats=[1])
    failing, healthy = await buy_seats(stack, 2, schedule_id=schedule_id)

    await eventually(lambda: tickets_settled(stack, [failing, healthy]), 30, "2 settled tickets")
    assert await _payment_status(stack, failing, "REFUNDED")
    assert await _payment_status(stack, healthy, "PAID")
    calls = [c.outcome for c in stack.venue.calls() if c.key == failing.ticket_id]
    assert calls == ["failed"] * VENUE_MAX_ATTEMPTS
    saga = await _saga_view(stack, failing)
    assert saga["venue_attempts"] == VENUE_MAX_ATTEMPTS and "HTTP 503" in str(saga["reason"])
