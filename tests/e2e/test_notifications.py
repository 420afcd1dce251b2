"""Notifications (API.md §2.3): Kakao first, SMS when Kakao cannot, DLQ when neither can."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.e2e.flows import (
    assert_each_sent_once,
    buy_seats,
    new_phone,
    notifications_final,
)
from tests.e2e.stack import (
    BREAKER_FAIL_MAX,
    BREAKER_RESET,
    CONSUMER_CONCURRENCY,
    NOTIFIER_METRICS_PORT,
    Stack,
)
from tests.support import eventually
from workers.dlq.cli import app as dlq_app

pytestmark = pytest.mark.e2e



async def test_not_a_kakao_user_gets_an_sms_after_one_kakao_call(stack: Stack) -> None:
    phone = new_phone()
    stack.kakao.behave(mode="error", status=400, code="NOT_KAKAO_USER", for_recipients=[phone])
    (paid,) = await buy_seats(stack, 1, phones=[phone])

    await eventually(lambda: notifications_final(stack, [paid.confirmation_id]), 30, "the SMS")
    assert_each_sent_once(stack, [paid.confirmation_id], channel="sms")
    kakao = [call for call in stack.kakao.calls() if call.key == paid.confirmation_id]
    assert [(call.outcome, call.status) for call in kakao] == [("failed", 400)]  # a 4xx is final
    sms = next(call.body for call in stack.sms.calls() if call.key == paid.confirmation_id)
    assert sms["to"] == phone and "confirmed" in sms["text"]
    log = await _delivery_log(stack, paid.confirmation_id)
    assert [(row["channel"], row["status"]) for row in log] == [("kakao", "REJECTED"), ("sms", "ACCEPTED")]
    assert log[0]["error"] == "rejected with HTTP 400 NOT_KAKAO_USER"
    assert log[1]["provider_message_id"] == paid.confirmation_id and log[1]["finished_at"]


async def test_kakao_down_opens_its_breaker_and_sms_carries_the_rest(stack: Stack) -> None:
    stack.kakao.behave(mode="error", status=503)
    before = len(stack.kakao.calls())
    started = time.monotonic()
    paid = await buy_seats(stack, 15)
    ids = [p.confirmation_id for p in paid]

    await eventually(lambda: notifications_final(stack, ids), 60, "15 notifications by SMS")
    elapsed = time.monotonic() - started
    assert_each_sent_once(stack, ids, channel="sms")
    kakao_calls = len(stack.kakao.calls()) - before
    # Without a breaker: 15 notifications x 3 attempts = 45 calls. With it: the calls that
    # tripped it, the others already in flight then, and one half-open trial per reset period.
    in_flight = CONSUMER_CONCURRENCY - 1
    assert kakao_calls <= BREAKER_FAIL_MAX + in_flight + int(elapsed / BREAKER_RESET) + 1, kakao_calls
    await _breakers_close(stack)


async def test_user_without_phone_is_skipped_and_recorded(stack: Stack) -> None:
    (paid,) = await buy_seats(stack, 1, phones=[None])
    await eventually(lambda: notifications_final(stack, [paid.confirmation_id], "SKIPPED"), 30,
                     "the skip")
    rows = await stack.sql("SELECT reason FROM notifications WHERE id = CAST(:id AS uuid)",
                           id=paid.confirmation_id)
    assert rows[0]["reason"] == "the user has no phone_number"
    assert not [c for c in stack.kakao.calls() + stack.sms.calls() if c.key == paid.confirmation_id]


async def _notification_results() -> dict[str, float]:
    """notifications_total by result, from the notifier's own /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{NOTIFIER_METRICS_PORT}/metrics")).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "notifications_total":
                result = sample.labels["result"]
                totals[result] = totals.get(result, 0.0) + sample.value
    return totals


async def test_both_down_parks_in_the_dlq_and_replay_delivers_each_once(stack: Stack) -> None:
    counted = await _notification_results()
    stack.kakao.behave(mode="error", status=503)
    stack.sms.stop()  # connection refused
    paid = await buy_seats(stack, 3)
    ids = [p.confirmation_id for p in paid]
    mine: list[dict[str, Any]] = []

    async def all_parked() -> bool:
        parked = await _dlq(stack, "list", "--topic", "booking.notifications", "--json")
        mine[:] = [m for m in parked["messages"] if m["aggregate_id"] in ids]
        return len(mine) == 3

    await eventually(all_parked, 60, "3 notifications in the DLQ")
    assert await notifications_final(stack, ids, "FAILED")
    # The first to fail tried both providers; once both breakers were open, nothing was sent.
    assert len(mine) == 3
    assert {m["error_class"] for m in mine} <= {"DeliveryFailed", "ChannelsUnavailable"}
    assert all("kakao:" in m["error"] and "sms:" in m["error"] for m in mine)
    # Each parked one shows on the notifier's metrics (NotificationsFailing reads them): as
    # failed once, or as unavailable on each attempt that found both breakers open.
    now = await _notification_results()
    causes = [m["error_class"] for m in mine]
    assert now.get("failed", 0) - counted.get("failed", 0) >= causes.count("DeliveryFailed"), now
    assert now.get("unavailable", 0) - counted.get("unavailable", 0) >= causes.count(
        "ChannelsUnavailable"), (now, causes)

    stack.kakao.behave(mode="ok")
    stack.sms.start()
    await asyncio.sleep(BREAKER_RESET)  # both breakers let a trial through again
    replayed = await _dlq(stack, "replay", "--all", "--topic", "booking.notifications", "--json")
    assert {m["id"] for m in mine} <= set(replayed["replayed"])

    await eventually(lambda: notifications_final(stack, ids), 30, "delivery after the replay")
    # Half-open breakers admit one trial each, so a replayed notification may go either way.
    assert_each_sent_once(stack, ids)
    again = await _dlq(stack, "replay", "--all", "--topic", "booking.notifications", "--json")
    assert not {m["id"] for m in mine} & set(again["replayed"])


async def _breakers_close(stack: Stack) -> None:
    stack.kakao.behave(mode="ok")
    # After the reset timeout the next call is the half-open trial, which closes it.
    await asyncio.sleep(BREAKER_RESET)


async def _delivery_log(stack: Stack, notification_id: str) -> list[dict[str, Any]]:
    return await stack.sql(
        "SELECT channel, status, message_id, provider_message_id, error, finished_at "
        "FROM notification_attempts WHERE notification_id = CAST(:id AS uuid) ORDER BY id",
        id=notification_id)


async def _dlq(stack: Stack, *args: str) -> Any:
    result = await asyncio.to_thread(CliRunner().invoke, dlq_app, list(args), env=stack.dlq_env)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)
