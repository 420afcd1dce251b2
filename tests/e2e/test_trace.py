"""One trace id from the HTTP request to the provider calls, and on every log line between."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import orjson
import pytest

from tests.e2e.flows import Paid, customer, new_phone, new_schedule, notifications_final
from tests.e2e.stack import Stack, WorkerProcess
from tests.support import eventually

pytestmark = pytest.mark.e2e


async def test_the_payment_trace_id_reaches_both_providers_and_the_worker_logs(stack: Stack) -> None:
    trace_id = "chaos-" + secrets.token_hex(8)
    paid = await _pay_with_trace(stack, trace_id)

    await eventually(lambda: notifications_final(stack, [paid.confirmation_id]), 30, "the confirmation")
    venue = [call for call in stack.venue.calls() if call.key == paid.ticket_id]
    kakao = [call for call in stack.kakao.calls() if call.key == paid.confirmation_id]
    assert venue and {call.headers.get("x-trace-id") for call in venue} == {trace_id}
    assert kakao and {call.headers.get("x-trace-id") for call in kakao} == {trace_id}

    # A worker writes its info lines in batches, at most 0.2 s after the fact.
    async def logged(worker: str, outcome: str) -> bool:
        return any(r.get("outcome") == outcome for r in _records(stack.workers[worker], trace_id))

    await eventually(lambda: logged("saga", "confirmed"), 30, "the saga's line")
    await eventually(lambda: logged("notifier", "delivered:kakao"), 30, "the notifier's line")
    saga = _records(stack.workers["saga"], trace_id)
    assert all(r["service"] == "ticket-saga" for r in saga), saga


async def test_a_request_without_a_trace_id_gets_one_of_its_own(stack: Stack) -> None:
    response = await stack.booking.http.get("/health/live", headers={"X-Trace-Id": "bad id!"})
    echoed = response.headers["x-trace-id"]
    assert echoed != "bad id!" and len(echoed) == 32


async def _pay_with_trace(stack: Stack, trace_id: str) -> Paid:
    phone = new_phone()
    schedule_id = await new_schedule(stack.booking, 1)
    user = await customer(stack.booking, phone=phone)
    token = await stack.booking.active_token(user, stack.booking.concert_of_schedule[schedule_id])
    hold = await stack.booking.hold(user, token, schedule_id, 1)
    assert hold.status_code == 201, hold.text
    headers = stack.booking.guarded(user, token, **{"Idempotency-Key": uuid.uuid4().hex,
                                                    "X-Trace-Id": trace_id})
    response = await stack.booking.http.post("/payments", json={"reservation_id": hold.json()["id"]},
                                             headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["x-trace-id"] == trace_id
    body = response.json()
    rows = await stack.sql("SELECT DISTINCT trace_id FROM outbox WHERE aggregate_id = :payment",
                           payment=body["id"])
    assert [row["trace_id"] for row in rows] == [trace_id]
    return Paid(user, phone, body["id"], body["ticket"]["id"], body["reservation_id"], schedule_id, 1)


def _records(worker: WorkerProcess, trace_id: str) -> list[dict[str, Any]]:
    """The worker's JSON log records that carry `trace_id`."""
    found = []
    for line in worker.log.read_bytes().splitlines():
        if trace_id.encode() not in line or not line.startswith(b"{"):
            continue
        record = orjson.loads(line)
        if record.get("trace_id") == trace_id:
            found.append(record)
    return found
