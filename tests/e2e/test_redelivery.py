"""At-least-once delivery made harmless: replayed topics, poison messages; a spent token swept."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.common import topics
from services.common.envelope import Envelope, encode
from tests.e2e.flows import (
    accepted_by,
    assert_each_sent_once,
    buy_seats,
    customer,
    new_phone,
    notifications_final,
    tickets_settled,
)
from tests.e2e.kafka_tools import read_all, send_all, wait_consumed
from tests.e2e.stack import Stack
from tests.support import auth, eventually

pytestmark = pytest.mark.e2e

PARTS = {"ticket-saga": topics.PAYMENTS, "notifier": topics.NOTIFICATIONS}


async def test_every_event_delivered_twice_changes_nothing(stack: Stack) -> None:
    stack.venue.behave(mode="error", status=422, code="UNKNOWN_SEAT", for_seats=[2])
    paid = await buy_seats(stack, 4)
    refunded = paid[1]
    notices = [p.confirmation_id for p in paid if p is not refunded] + [refunded.refund_notice_id]
    await eventually(lambda: tickets_settled(stack, paid), 30, "4 settled tickets")
    await eventually(lambda: notifications_final(stack, notices), 30, "4 notifications")
    stack.venue.behave(mode="ok")
    calls_before = {name: len(sim.calls()) for name, sim in stack.sims.items()}

    users = {p.user_id for p in paid}
    resent = 0
    for topic in (*PARTS.values(), topics.TICKETS):
        records = [r for r in await read_all(stack.kafka, topic) if _mentions(r.value, users)]
        resent += await send_all(stack.kafka, records)
    assert resent >= 4 + 1 + 4 + 3  # payments + refund, notification requests, confirmed tickets
    await wait_consumed(stack.kafka, [(stack.group(part), topic) for part, topic in PARTS.items()])

    assert {name: len(sim.calls()) for name, sim in stack.sims.items()} == calls_before
    assert_each_sent_once(stack, notices)
    assert all(accepted_by(stack.venue)[p.ticket_id] <= 1 for p in paid)
    refunds = await stack.sql(
        "SELECT count(*) AS n FROM point_history WHERE type = 'REFUND' AND user_id = :user",
        user=refunded.user_id)
    assert refunds[0]["n"] == 1
    balance = await stack.booking.http.get("/points", headers=auth(refunded.user_id))
    assert balance.json()["balance"] == 10_000


def _mentions(value: bytes | None, users: set[str]) -> bool:
    try:
        return orjson.loads(value or b"")["data"]["user_id"] in users
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False


async def test_poison_is_parked_with_its_cause_and_the_workers_go_on(stack: Stack) -> None:
    marker = uuid.uuid4().hex[:12]
    unknown = str(uuid.uuid4())
    cases = {
        "garbage": (b"\xff\x00 not json", "InvalidEnvelope"),
        "tombstone": (None, "InvalidEnvelope"),
        "envelope-v9": (orjson.dumps({"envelope": 9, "id": unknown}), "InvalidEnvelope"),
        "unknown-type": (_event("SomethingElse", 1, {}), "UnknownEvent"),
        "version-7": (None, "UnsupportedVersion"),
        "malformed": (None, "MalformedEvent"),
    }
    expected: dict[tuple[str, str], str] = {}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all")
    await producer.start()
    try:
        for part, topic in PARTS.items():
            event_type = {"ticket-saga": "PaymentCompleted", "notifier": "NotificationRequested"}[part]
            for case, (value, error) in cases.items():
                if case == "version-7":
                    value = _event(event_type, 7, {})
                elif case == "malformed":
                    value = _event(event_type, 1, {"seat_no": "first row", "token": 42})
                key = f"{marker}-{part}-{case}"
                await producer.send_and_wait(topic, value, key=key.encode())
                expected[(topic, key)] = error
        # A handler that cannot succeed: the payment and the user do not exist.
        for topic, event_type, data in [
            (topics.PAYMENTS, "PaymentCompleted", _payment(unknown)),
            (topics.NOTIFICATIONS, "NotificationRequested", _notification(unknown)),
        ]:
            key = f"{marker}-handler-{topic}"
            await producer.send_and_wait(topic, _event(event_type, 1, data), key=key.encode())
            expected[(topic, key)] = {"PaymentCompleted": "PaymentUnknown",
                                      "NotificationRequested": "NotificationUnknown"}[event_type]
    finally:
        await producer.stop()

    (paid,) = await buy_seats(stack, 1)  # the workers are alive and past the poison
    await eventually(lambda: notifications_final(stack, [paid.confirmation_id]), 30, "a delivery")
    parked = await _parked(stack, marker, len(expected))
    for (topic, key), error in expected.items():
        headers = parked[key]
        assert headers["dlq-original-topic"] == topic and headers["dlq-error-class"] == error, headers
        assert headers["dlq-consumer"].startswith(stack.group_prefix)
        assert int(headers["dlq-original-offset"]) >= 0 and headers["dlq-failed-at"]
        assert headers["dlq-attempts"] == "1"  # retrying cannot fix any of these


async def _parked(stack: Stack, marker: str, count: int) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}

    async def all_parked() -> bool:
        for topic in PARTS.values():
            for record in await read_all(stack.kafka, topic + ".dlq"):
                key = (record.key or b"").decode(errors="replace")
                if key.startswith(marker):
                    found[key] = {k: v.decode() for k, v in record.headers}
        return len(found) >= count

    await eventually(all_parked, 30, f"{count} parked messages")
    return found


def _event(event_type: str, version: int, data: dict[str, object]) -> bytes:
    envelope = Envelope.new(event_type, "test", "test", data, version=version)
    return encode(envelope)


def _payment(payment_id: str) -> dict[str, object]:
    return {"payment_id": payment_id, "reservation_id": payment_id, "ticket_id": payment_id,
            "user_id": "nobody", "schedule_id": payment_id, "seat_no": 1, "amount": 1,
            "queue_token": None}


def _notification(some_id: str) -> dict[str, object]:
    return {"notification_id": some_id, "template": "TICKET_CONFIRMED", "user_id": "nobody",
            "payment_id": some_id, "schedule_id": some_id, "seat_no": 1, "amount": 1}


async def test_a_spent_token_left_in_redis_is_swept_by_the_token_expiry_worker(stack: Stack) -> None:
    user = await customer(stack.booking, phone=new_phone())
    token = await stack.booking.active_token(user, await stack.booking.create_concert(seat_count=1))
    # The row a payment writes in its transaction; here without the API's own removal after commit.
    await stack.sql("INSERT INTO queue_token_expiries (token, user_id, payment_id)"
                    " VALUES (:token, :user, :payment)", token=token, user=user, payment=uuid.uuid4())

    async def refused() -> bool:
        response = await stack.booking.http.get(
            "/queue/tokens/me", headers={**auth(user), "X-Queue-Token": token})
        return response.status_code == 401

    async def row_swept() -> bool:
        rows = await stack.sql("SELECT swept_at FROM queue_token_expiries WHERE token = :token",
                               token=token)
        return len(rows) == 1 and rows[0]["swept_at"] is not None

    await eventually(refused, 30, "the token to expire")
    await eventually(row_swept, 30, "the row to be marked swept")
