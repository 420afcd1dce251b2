"""The booking API as a benchmark user sees it (the steps of tests/support.py, timed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from bench.httpclient import Client, json_of
from bench.stats import Recorder


def mint(secret: str, user_id: str, hours: int = 6, **claims: Any) -> str:
    """An HS256 JWT as the API gateway would issue it."""
    payload = {"sub": user_id, "exp": int(time.time()) + hours * 3600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class User:
    user_id: str
    authorization: dict[str, str]
    queue_token: str = ""

    @classmethod
    def new(cls, secret: str, user_id: str, **claims: Any) -> User:
        return cls(user_id, {"Authorization": f"Bearer {mint(secret, user_id, **claims)}"})

    def guarded(self, **extra: str) -> dict[str, str]:
        return {**self.authorization, "X-Queue-Token": self.queue_token, **extra}


class Unexpected(Exception):
    """A step answered something other than what the flow needs to go on."""

    def __init__(self, step: str, status: int, body: bytes) -> None:
        super().__init__(f"{step} answered {status}: {body[:200]!r}")
        self.step, self.status = step, status


@dataclass
class BookingApi:
    """One user's view of the API over one keep-alive connection."""

    client: Client
    recorder: Recorder
    concert_id: str = ""  # whose waiting room the user lines up in
    poll_seconds: float = 0.02
    max_poll_seconds: float = 2.0
    last: dict[str, Any] = field(default_factory=dict)

    async def issue_token(self, user: User) -> dict[str, Any]:
        status, body = await self.recorder.call(
            "queue token", self.client, "POST", "/queue/tokens", user.authorization,
            {"concert_id": self.concert_id})
        if status not in (200, 201):
            raise Unexpected("queue token", status, body)
        ticket: dict[str, Any] = json_of(body)
        user.queue_token = ticket["token"]
        return ticket

    async def poll_token(self, user: User) -> dict[str, Any]:
        status, body = await self.recorder.call(
            "queue poll", self.client, "GET", "/queue/tokens/me", user.guarded())
        if status != 200:
            raise Unexpected("queue poll", status, body)
        ticket: dict[str, Any] = json_of(body)
        return ticket

    async def live(self) -> None:
        status, body = await self.recorder.call("liveness", self.client, "GET", "/health/live", {})
        if status != 200:
            raise Unexpected("liveness", status, body)

    async def wait_active(self, user: User) -> dict[str, Any]:
        """Take a place in line and poll until admitted, as a considerate client polls: when
        the answer's Retry-After says, else soon when the ETA is short, at most every
        `max_poll_seconds`. The first answer: where the user stood on arrival."""
        ticket = first = await self.issue_token(user)
        while ticket["status"] != "ACTIVE":
            eta = float(ticket.get("eta_seconds") or 0)
            wait = self.client.retry_after or min(max(self.poll_seconds, eta / 2), self.max_poll_seconds)
            await asyncio.sleep(wait)
            ticket = await self.poll_token(user)
        return first

    async def charge(self, user: User, amount: int) -> None:
        status, body = await self.recorder.call(
            "charge", self.client, "POST", "/points/charge", user.authorization, {"amount": amount})
        if status != 200:
            raise Unexpected("charge", status, body)

    async def seats(self, schedule_id: str) -> list[dict[str, Any]]:
        status, body = await self.recorder.call(
            "seat map", self.client, "GET", f"/schedules/{schedule_id}/seats")
        if status != 200:
            raise Unexpected("seat map", status, body)
        items: list[dict[str, Any]] = json_of(body)["items"]
        return items

    async def hold(self, user: User, schedule_id: str, seat_no: int) -> tuple[int, Any]:
        status, body = await self.recorder.call(
            "hold", self.client, "POST", "/reservations", user.guarded(),
            {"schedule_id": schedule_id, "seat_no": seat_no})
        return status, json_of(body) if body else None

    async def pay(self, user: User, reservation_id: str) -> tuple[int, Any]:
        headers = user.guarded(**{"Idempotency-Key": uuid.uuid4().hex})
        status, body = await self.recorder.call(
            "pay", self.client, "POST", "/payments", headers, {"reservation_id": reservation_id})
        return status, json_of(body) if body else None
