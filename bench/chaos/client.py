"""Customers who buy one ticket each through the HTTP API, the way a real client would.

Token → hold → pay, with one Idempotency-Key per purchase, so a payment retried
after a lost answer is taken once. A dependency that is down answers 503: wait and
retry. Redis restarted empty forgets the waiting room: 401 QUEUE_TOKEN_INVALID means
queue again (the hold is in PostgreSQL and survives). A hold that expired is taken
again. The client never decides the outcome of a payment: the API does.

A seat refused (409 SEAT_UNAVAILABLE) is someone else's: the customer leaves, outbid,
unless a hold of its own went unanswered. That hold may have been taken, and a hold
has no Idempotency-Key: the customer tries again until it has surely run out
(`hold_ttl`, HOLD_TTL_SECONDS, after it was sent); a seat refused after that is a
rival's. A hold that expired before its payment is taken again, and paid under a new
Idempotency-Key: the old key belongs to the old reservation's payment (API.md: a key
used again with another body is refused 422).

A customer waits as long as `Retry-After` asks (API.md): a WAITING token's next poll, a
503 or 429. Thousands wait at once, so the requests go through bench/httpclient.py's
lean client (httpx spends ~2 ms of CPU per request: a few hundred polls a second would
take a core), over a pool of keep-alive connections per API process.
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

import jwt
import orjson

from bench.httpclient import HttpError, Pool

PRICE = 10_000
# An expired hold gives its seat back when it is next asked for, or when the sweep passes.
HOLD_GRACE_SECONDS = 5.0


class Retry(Exception):
    """This step must be tried again; the reason is counted. `after`: the seconds the
    answer's Retry-After asked for, if it had one."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Unanswered(Retry):
    """The request may or may not have taken effect: a lost connection or a 5xx."""


class Outbid(Exception):
    """Someone else holds or bought the seat: the customer leaves without it."""


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
    hold_unanswered_at: float | None = None  # when the last hold whose answer was lost went out
    payment_unanswered: bool = False  # a payment went out and its answer was lost
    authorization: dict[str, str] | None = None  # the customer's JWT, made once


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read in full."""

    status_code: int
    body: bytes
    retry_after: float | None  # seconds, when the answer carried Retry-After

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class Customers:
    """The load: `api_urls` taken in turn (several API processes), one shared secret,
    at most `connections` open to each API process."""

    api_urls: list[str]
    jwt_secret: str
    concert_id: str = ""
    schedule_id: str = ""
    retries: Counter[str] = field(default_factory=Counter)
    gave_up: list[Purchase] = field(default_factory=list)
    outbid: list[Purchase] = field(default_factory=list)
    payments_retried: int = 0  # purchases paid on a retry after a payment's answer was lost
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)  # (step, API url) in flight
    started: Counter[tuple[str, str]] = field(default_factory=Counter)  # (step, API url) ever
    connections: int = 500
    timeout: float = 30.0
    hold_ttl: float = 300.0  # the API's HOLD_TTL_SECONDS

    def __post_init__(self) -> None:
        self._urls = itertools.cycle(self.api_urls)
        self._pools: dict[str, Pool] = {}
        for url in self.api_urls:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            self._pools[url] = Pool(host, int(port), self.connections, self.timeout)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()

    def auth(self, user: str, **claims: Any) -> dict[str, str]:
        payload = {"sub": user, "exp": int(time.time()) + 3600, **claims}
        return {"Authorization": f"Bearer {jwt.encode(payload, self.jwt_secret, algorithm='HS256')}"}

    def in_flight(self, step: str, url: str) -> int:
        """Requests of `step` (charge, queue, hold, pay) sent to `url` and not answered yet
        (a request still waiting for a free connection is not sent)."""
        return self.sent[step, url]

    async def call(self, step: str, method: str, path: str, purchase: Purchase | None = None,
                   headers: dict[str, str] | None = None, json: Any = None) -> Answer:
        """One request; a lost answer or a 5xx raises Unanswered, its reason named after `step`."""
        headers = headers or {}
        if purchase is not None:
            if purchase.authorization is None:
                purchase.authorization = self.auth(purchase.user, name="Chaos " + purchase.user[-4:],
                                                   phone_number=purchase.phone)
            headers = {**purchase.authorization, "X-Trace-Id": purchase.trace_id, **headers}
        url = next(self._urls)
        try:
            async with self._pools[url].connection() as connection:
                self.sent[step, url] += 1
                self.started[step, url] += 1
                try:
                    status, body = await connection.request(method, path, headers=headers, json=json)
                finally:
                    self.sent[step, url] -= 1
                response = Answer(status, body, connection.retry_after)
        except (HttpError, OSError) as error:
            raise Unanswered(f"{step}: transport: {type(error).__name__}") from None
        if response.status_code >= 500:
            raise Unanswered(f"{step}: HTTP {response.status_code} {_code(response)}",
                             response.retry_after)
        return response

    async def create_schedule(self, seats: int) -> str:
        body = {"title": "Chaos " + secrets.token_hex(3), "venue": "Olympic Hall", "schedules": [
            {"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": seats, "price": PRICE}]}
        response = await self.call("setup", "POST", "/admin/concerts", json=body,
                                   headers=self.auth("chaos-admin", role="admin"))
        assert response.status_code == 201, response.text
        self.concert_id = str(response.json()["id"])
        self.schedule_id = str(response.json()["schedules"][0]["id"])
        return self.schedule_id

    async def buy(self, seat_no: int, deadline: float, rival: bool = False) -> Purchase:
        """One new customer buys `seat_no`, retrying through any outage until `deadline`."""
        phone = "010" + "".join(secrets.choice("0123456789") for _ in range(8))
        who = "chaos-rival-" if rival else "chaos-"
        purchase = Purchase(f"{who}{uuid.uuid4().hex[:12]}", phone, seat_no)
        charged, delay = False, 0.1
        while time.monotonic() < deadline:
            try:
                if not charged:
                    charged = await self._charge(purchase)
                await self._queue(purchase)
                if purchase.reservation_id is None:
                    await self._hold(purchase)
                await self._pay(purchase)
                self.payments_retried += purchase.payment_unanswered
                return purchase
            except Outbid:
                self.outbid.append(purchase)
                return purchase
            except Retry as reason:
                self.retries[str(reason)] += 1
                await asyncio.sleep(reason.after if reason.after is not None
                                    else random.uniform(0, delay))
                delay = min(2.0, delay * 2)
            except Unexpected as error:
                purchase.failure = str(error)
                break
        purchase.failure = purchase.failure or "deadline passed"
        self.gave_up.append(purchase)
        return purchase

    async def _charge(self, purchase: Purchase) -> bool:
        response = await self.call("charge", "POST", "/points/charge", purchase, json={"amount": PRICE},
                                   headers={"Idempotency-Key": purchase.key + "-charge"})
        _expect(response, 200)
        return True

    async def _queue(self, purchase: Purchase) -> bool:
        """Until the token is ACTIVE, asking again when its Retry-After says."""
        if purchase.token is None:
            response = await self.call("queue", "POST", "/queue/tokens", purchase,
                                       json={"concert_id": self.concert_id})
            _expect(response, 200, 201)
            purchase.token = response.json()["token"]
        else:
            response = await self.call("queue", "GET", "/queue/tokens/me", purchase,
                                       headers={"X-Queue-Token": purchase.token})
        while True:
            if response.status_code == 401:
                return self._requeue(purchase, response)
            _expect(response, 200, 201)
            if response.json()["status"] == "ACTIVE":
                return True
            await asyncio.sleep(response.retry_after or 1.0)
            response = await self.call("queue", "GET", "/queue/tokens/me", purchase,
                                       headers={"X-Queue-Token": purchase.token})

    async def _hold(self, purchase: Purchase) -> bool:
        sent = time.monotonic()
        try:
            response = await self.call(
                "hold", "POST", "/reservations", purchase,
                json={"schedule_id": self.schedule_id, "seat_no": purchase.seat_no},
                headers={"X-Queue-Token": purchase.token or ""})
        except Unanswered:
            purchase.hold_unanswered_at = sent
            raise
        if response.status_code == 401:
            return self._requeue(purchase, response)
        if response.status_code == 409 and _code(response) == "SEAT_UNAVAILABLE":
            unanswered = purchase.hold_unanswered_at
            if unanswered is not None and time.monotonic() < unanswered + self.hold_ttl + HOLD_GRACE_SECONDS:
                raise Retry("hold: HTTP 409 SEAT_UNAVAILABLE after an unanswered hold: until it runs out")
            raise Outbid()
        _expect(response, 201)
        purchase.reservation_id = response.json()["id"]
        return True

    async def _pay(self, purchase: Purchase) -> bool:
        try:
            response = await self.call("pay", "POST", "/payments", purchase,
                                       json={"reservation_id": purchase.reservation_id},
                                       headers={"X-Queue-Token": purchase.token or "",
                                                "Idempotency-Key": purchase.key})
        except Unanswered:
            purchase.payment_unanswered = True
            raise
        if response.status_code == 401:
            return self._requeue(purchase, response)
        if response.status_code == 410:
            purchase.reservation_id = None
            purchase.hold_unanswered_at = None
            purchase.payment_unanswered = False  # answered at last: 410, nothing taken
            purchase.key = uuid.uuid4().hex  # a new reservation's payment
            raise Retry("pay: HTTP 410: hold expired: hold again")
        _expect(response, 201)
        purchase.payment = response.json()
        return True

    def _requeue(self, purchase: Purchase, response: Answer) -> bool:
        purchase.token = None
        raise Retry(f"HTTP 401 {_code(response)}: queue again")


def _code(response: Answer) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""


def _expect(response: Answer, *statuses: int) -> None:
    if response.status_code == 403:
        raise Retry("HTTP 403 QUEUE_TOKEN_NOT_ACTIVE")
    if response.status_code == 409 and _code(response) == "IDEMPOTENCY_KEY_IN_PROGRESS":
        raise Retry("HTTP 409 IDEMPOTENCY_KEY_IN_PROGRESS", response.retry_after)
    if response.status_code == 429:
        raise Retry("HTTP 429 RATE_LIMITED", response.retry_after)
    if response.status_code not in statuses:
        raise Unexpected(f"HTTP {response.status_code} {response.text[:300]}")
