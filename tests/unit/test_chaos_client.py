"""The chaos customers as a client of API.md: they wait the Retry-After a WAITING token is
given, pay a hold taken again under a new Idempotency-Key, and leave a seat a rival has
once their own unanswered hold has surely run out. Against a small in-process HTTP
server that answers as API.md says; the full system is tests/e2e/test_chaos.py."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from bench.chaos.client import Customers, Outbid, Purchase


async def serve(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def problem(status: int, code: str) -> web.Response:
    return web.json_response({"code": code}, status=status)


async def test_a_waiting_customer_asks_again_when_retry_after_says() -> None:
    polls: list[float] = []

    async def issue(_: web.Request) -> web.Response:
        return web.json_response({"token": "t", "status": "WAITING"}, status=201,
                                 headers={"Retry-After": "1"})

    async def mine(_: web.Request) -> web.Response:
        polls.append(time.monotonic())
        status = "ACTIVE" if len(polls) == 2 else "WAITING"
        return web.json_response({"token": "t", "status": status}, headers={"Retry-After": "1"})

    runner, url = await serve([web.post("/queue/tokens", issue), web.get("/queue/tokens/me", mine)])
    customers = Customers([url], "s" * 32)
    try:
        began = time.monotonic()
        assert await customers._queue(Purchase("chaos-u", "01012345678", 1))
    finally:
        customers.close()
        await runner.cleanup()
    assert len(polls) == 2  # not one every 0.1 s
    assert polls[0] - began >= 0.95 and polls[1] - polls[0] >= 0.95


async def test_a_hold_taken_again_is_paid_under_a_new_key_and_a_rivals_seat_is_left() -> None:
    keys: Counter[str] = Counter()
    holds: list[Any] = []

    async def hold(_: web.Request) -> web.Response:
        holds.append(None)
        if len(holds) == 1:
            return web.json_response({"id": "r1"}, status=201)
        if len(holds) == 2:
            return web.json_response({"id": "r2"}, status=201)
        return problem(409, "SEAT_UNAVAILABLE")

    async def pay(request: web.Request) -> web.Response:
        body = await request.json()
        keys[request.headers["Idempotency-Key"]] += 1
        if body["reservation_id"] == "r1":
            return problem(410, "RESERVATION_EXPIRED")
        return web.json_response({"id": "p2", "reservation_id": "r2"}, status=201)

    async def active(_: web.Request) -> web.Response:
        return web.json_response({"token": "t", "status": "ACTIVE"}, status=201)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"balance": 10_000})

    runner, url = await serve([web.post("/reservations", hold), web.post("/payments", pay),
                               web.post("/queue/tokens", active), web.get("/queue/tokens/me", active),
                               web.post("/points/charge", ok)])
    customers = Customers([url], "s" * 32, hold_ttl=0.0)
    try:
        paid = await customers.buy(1, time.monotonic() + 30)
        # A hold whose answer was lost, then a 409 once it has surely run out: a rival's seat.
        other = Purchase("chaos-v", "01012345679", 2, token="t",
                         hold_unanswered_at=time.monotonic() - 10)
        with pytest.raises(Outbid):
            await customers._hold(other)
    finally:
        customers.close()
        await runner.cleanup()
    assert paid.payment == {"id": "p2", "reservation_id": "r2"}
    assert len(keys) == 2 and set(keys.values()) == {1}  # r1's key never reused for r2
