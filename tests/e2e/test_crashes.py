"""Workers SIGKILLed mid-stream: after a restart nothing is lost and nothing is done twice.
Workers stopped by SIGTERM: they exit cleanly with what they handled committed.

The notifier is killed at the worst moment: Kakao has accepted a message and is
still answering, so the delivery log says SENDING. After the restart Kakao fails
for a while; the notifier must not switch that message to SMS (it may already be on
the user's phone) but settle it with Kakao, whose answer to the same message id is
"already have it".
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from services.common import topics
from tests.e2e.flows import (
    Paid,
    accepted_by,
    assert_each_sent_once,
    buy_seats,
    new_phone,
    new_schedule,
    notifications_final,
    tickets_settled,
)
from tests.e2e.kafka_tools import lag
from tests.e2e.stack import Stack
from tests.support import eventually

pytestmark = pytest.mark.e2e

SEATS = 40


async def test_killed_workers_lose_nothing_and_send_nothing_twice(stack: Stack) -> None:
    schedule_id = await new_schedule(stack.booking, SEATS)
    slow_phone = new_phone()
    # Kakao takes the message at once but answers only after this (within the timeout).
    stack.kakao.behave(mode="ok", delay_seconds=1.5, for_recipients=[slow_phone])
    # The venue is a little slow too, so registrations are in flight when the saga dies.
    stack.venue.behave(mode="ok", delay_seconds=0.05)
    (first,) = await buy_seats(stack, 1, phones=[slow_phone], schedule_id=schedule_id)
    rest = asyncio.create_task(
        buy_seats(stack, SEATS - 1, schedule_id=schedule_id, first_seat=2, concurrency=5))

    await eventually(lambda: _kakao_has(stack, first.confirmation_id), 30, "the slow Kakao call")
    stack.workers["saga"].kill()
    stack.workers["notifier"].kill()
    stack.kakao.behave(mode="error", status=503, for_recipients=[slow_phone], times=3)
    assert (await _attempts(stack, first))[0]["status"] == "SENDING"

    paid = [first, *await rest]
    stack.venue.behave(mode="ok")
    await stack.restart("saga", "notifier")
    await eventually(lambda: tickets_settled(stack, paid), 60, f"{SEATS} tickets")
    ids = [p.confirmation_id for p in paid]
    await eventually(lambda: notifications_final(stack, ids), 60, f"{SEATS} notifications")

    tickets = await stack.sql("SELECT status FROM tickets WHERE id = ANY(CAST(:ids AS uuid[]))",
                              ids=[p.ticket_id for p in paid])
    assert [row["status"] for row in tickets] == ["CONFIRMED"] * SEATS
    assert all(accepted_by(stack.venue)[p.ticket_id] == 1 for p in paid)
    assert_each_sent_once(stack, ids)
    # The interrupted message: settled with Kakao, never sent by SMS.
    assert_each_sent_once(stack, [first.confirmation_id], channel="kakao")
    assert not [call for call in stack.sms.calls() if call.key == first.confirmation_id]
    kakao = [c.outcome for c in stack.kakao.calls() if c.key == first.confirmation_id]
    assert kakao[0] == "accepted" and "failed" in kakao and kakao[-1] == "duplicate", kakao
    attempts = await _attempts(stack, first)
    assert [(row["channel"], row["status"]) for row in attempts] == [("kakao", "ACCEPTED")]


async def _kakao_has(stack: Stack, message_id: str) -> bool:
    return any(call.key == message_id for call in stack.kakao.calls())


async def _attempts(stack: Stack, paid: Paid) -> list[dict[str, object]]:
    return await stack.sql(
        "SELECT channel, status, http_attempts FROM notification_attempts "
        "WHERE notification_id = CAST(:id AS uuid) ORDER BY id", id=paid.confirmation_id)


async def test_consumers_stopped_by_sigterm_exit_cleanly_with_their_offsets_committed(stack: Stack) -> None:
    # The workers' own event loop (uvloop) must deliver the signal to the consumer's stop,
    # which commits the offsets of the messages it handled before the process exits.
    paid = await buy_seats(stack, 3, schedule_id=await new_schedule(stack.booking, 3))
    await eventually(lambda: tickets_settled(stack, paid), 60, "3 tickets")
    ids = [p.confirmation_id for p in paid]
    await eventually(lambda: notifications_final(stack, ids), 60, "3 notifications")

    workers = [stack.workers["saga"], stack.workers["notifier"]]
    for worker in workers:
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
    try:
        for worker in workers:
            assert worker.process is not None
            assert await asyncio.to_thread(worker.process.wait, 60) == 0, worker.tail()
            assert "stopped after" in worker.tail(), worker.tail()
        assert await lag(stack.kafka, stack.group("ticket-saga"), topics.PAYMENTS) == 0
        assert await lag(stack.kafka, stack.group("notifier"), topics.NOTIFICATIONS) == 0
    finally:
        await stack.restart("saga", "notifier")
