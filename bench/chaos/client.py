"""Customers who buy one ticket each through the HTTP API, the way a real client would.

Token → hold → pay, with one Idempotency-Key per purchase, so a payment retried
after a lost answer is taken once. A dependency that is down answers 503: wait and
retry. Redis restarted empty forgets the waiting room: 401 QUEUE_TOKEN_INVALID means
queue again (the hold is in PostgreSQL and survives). A hold that expired is taken
again. The client never decides the outcome of a payment: the API does.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

PRICE = 10_000


class Retry(Exception):
    """This step must be tried again; the reason is counted."""


class Unexpected(Exception):
    """An answer no retry can change (a bug, or the client's own mistake)."""


@dataclass
class Purchase:
    user: str
    phone: str
    seat_no: int
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    token: str | None = None
    reservation_id: str | None = None
    payment: dict[str, Any] | None = None
    trace_id: str = field(default_factory=lambda: "chaos-" + secrets.token_hex(8))
    failure: str | None = None


@dataclass
class Customers:
    """The load: `api_urls` taken in turn (several API processes), one shared secret."""

    http: httpx.AsyncClient
    api_urls: list[str]
    jwt_secret: str
    concert_id: str = ""
    schedule_id: str = ""
    retries: Counter[str] = field(default_factory=Counter)
    gave_up: list[Purchase] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._urls = itertools.cycle(self.api_urls)

    def auth(self, user: str, **claims: Any) -> dict[str, str]:
        payload = {"sub": user, "exp": int(time.time()) + 3600, **claims}
        return {"Authorization": f"Bearer {jwt.encode(payload, self.jwt_secret, algorithm='HS256')}"}

    async def call(self, method: str, path: str, purchase: Purchase | None = None,
                   **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if purchase is not None:
            claims = self.auth(purchase.user, name="Chaos " + purchase.user[-4:],
                               phone_number=purchase.phone)
            headers = {**claims, "X-Trace-Id": purchase.trace_id, **headers}
        try:
            response = await self.http.request(method, next(self._urls) + path, headers=headers,
                                               **kwargs)
        except httpx.TransportError as error:
            raise Retry(f"transport: {type(error).__name__}") from None
        if response.status_code >= 500:
            raise Retry(f"HTTP {response.status_code} {_code(response)}")
        return response

    async def create_schedule(self, seats: int) -> str:
        body = {"title": "Chaos " + secrets.token_hex(3), "venue": "Olympic Hall", "schedules": [
            {"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": seats, "price": PRICE}]}
        response = await self.call("POST", "/admin/concerts", json=body,
                                   headers=self.auth("chaos-admin", role="admin"))
        assert response.status_code == 201, response.text
        self.concert_id = str(response.json()["id"])
        self.schedule_id = str(response.json()["schedules"][0]["id"])
        return self.schedule_id

    async def buy(self, seat_no: int, deadline: float) -> Purchase:
        """One new customer buys `seat_no`, retrying through any outage until `deadline`."""
        phone = "010" + "".join(secrets.choice("0123456789") for _ in range(8))
        purchase = Purchase(f"chaos-{uuid.uuid4().hex[:12]}", phone, seat_no)
        charged, delay = False, 0.1
        while time.monotonic() < deadline:
            try:
                if not charged:
                    charged = await self._charge(purchase)
                await self._queue(purchase)
                if purchase.reservation_id is None:
                    await self._hold(purchase)
                await self._pay(purchase)
                return purchase
            except Retry as reason:
                self.retries[str(reason)] += 1
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(2.0, delay * 2)
            except Unexpected as error:
                purchase.failure = str(error)
                break
        purchase.failure = purchase.failure or "deadline passed"
        self.gave_up.append(purchase)
        return purchase

    async def _charge(self, purchase: Purchase) -> bool:
        response = await self.call("POST", "/points/charge", purchase, json={"amount": PRICE},
                                   headers={"Idempotency-Key": purchase.key + "-charge"})
        _expect(response, 200)
        return True

    async def _queue(self, purchase: Purchase) -> bool:
        if purchase.token is None:
            response = await self.call("POST", "/queue/tokens", purchase,
                                       json={"concert_id": self.concert_id})
            _expect(response, 200, 201)
            purchase.token = response.json()["token"]
        while True:
            response = await self.call("GET", "/queue/tokens/me", purchase,
                                       headers={"X-Queue-Token": purchase.token})
            if response.status_code == 401:
                return self._requeue(purchase, response)
            _expect(response, 200)
            if response.json()["status"] == "ACTIVE":
                return True
            await asyncio.sleep(0.1)

    async def _hold(self, purchase: Purchase) -> bool:
        response = await self.call("POST", "/reservations", purchase,
                                   json={"schedule_id": self.schedule_id, "seat_no": purchase.seat_no},
                                   headers={"X-Queue-Token": purchase.token or ""})
        if response.status_code == 401:
            return self._requeue(purchase, response)
        _expect(response, 201)
        purchase.reservation_id = response.json()["id"]
        return True

    async def _pay(self, purchase: Purchase) -> bool:
        response = await self.call("POST", "/payments", purchase,
                                   json={"reservation_id": purchase.reservation_id},
                                   headers={"X-Queue-Token": purchase.token or "",
                                            "Idempotency-Key": purchase.key})
        if response.status_code == 401:
            return self._requeue(purchase, response)
        if response.status_code == 410:
            purchase.reservation_id = None
            raise Retry("hold expired: hold again")
        _expect(response, 201)
        purchase.payment = response.json()
        return True

    def _requeue(self, purchase: Purchase, response: httpx.Response) -> bool:
        purchase.token = None
        raise Retry(f"HTTP 401 {_code(response)}: queue again")


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""


def _expect(response: httpx.Response, *statuses: int) -> None:
    if response.status_code == 403:
        raise Retry("HTTP 403 QUEUE_TOKEN_NOT_ACTIVE")
    if response.status_code == 409 and _code(response) == "IDEMPOTENCY_KEY_IN_PROGRESS":
        raise Retry("HTTP 409 IDEMPOTENCY_KEY_IN_PROGRESS")
    if response.status_code not in statuses:
        raise Unexpected(f"HTTP {response.status_code} {response.text[:300]}")
