"""Helpers for tests that talk to a real booking API over real sockets."""

import asyncio
import contextlib
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.booking.adapters.database import create_engine
from services.booking.config import Settings
from services.booking.domain.events import PaymentCompleted
from services.booking.entrypoints.api.app import create_app
from services.common.redis_client import connect_redis
from workers.queue.admission import run as run_queue_worker

JWT_SECRET = "test-secret-" + "x" * 20


# The API keys the provider simulators of the integration tests expect (conftest.py).
KAKAO_KEY = "kakao-test-key"
SMS_KEY = "sms-test-key"


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll `check` until it is true; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(database_url: str, redis_url: str, kafka: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url, "redis_url": redis_url, "kafka_bootstrap_servers": kafka,
        "auth_jwt_secret": JWT_SECRET, "queue_namespace": "t" + secrets.token_hex(6),
        "queue_admit_per_second": 10_000, "queue_max_active": 100_000,
        # Each API of a test scrapes on a port of its own (several run at once).
        "metrics_port": free_port(),
        # Tests send far more than a person would; the limits have tests of their own.
        "rate_limit_user_per_second": 0, "rate_limit_anon_per_second": 0,
    }
    values.update(overrides)
    return Settings(**values)


def metrics_url(settings: Settings) -> str:
    """Where an API with these settings serves /metrics (never its public port)."""
    return f"http://{settings.metrics_host}:{settings.metrics_port}"


def token(user_id: str, *, expires_in: int = 3600, secret: str = JWT_SECRET, **claims: Any) -> str:
    payload = {"sub": user_id, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def auth(user_id: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, **claims)}"}


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check that `response` is an RFC 9457 problem with this status (and code); return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    media = response.headers.get("content-type", "")
    assert media.startswith("application/problem+json"), (media, response.text)
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status and isinstance(body["detail"], str), body
    assert "Traceback" not in response.text
    if code is not None:
        assert body["code"] == code, body
    return body


async def sql(settings: Settings, statement: str, **params: Any) -> list[dict[str, Any]]:
    """Run one SQL statement against the service's database; its rows as dicts."""
    engine = create_async_engine(settings.database_dsn, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [dict(row._mapping) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def serve_api(settings: Settings, *, scraped: bool = False) -> AsyncIterator[str]:
    """Run the real app under uvicorn in this event loop; yield its base URL.

    Its metrics go to a port of its own unless `scraped` (then settings.metrics_port, where
    the test reads them): tests copy settings, and a metrics port is never shared.
    """
    if not scraped:
        settings = settings.model_copy(update={"metrics_port": free_port()})
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning",
        lifespan="on", access_log=False, backlog=4096,
        # The app decides whom X-Forwarded-For speaks for (FORWARDED_ALLOW_IPS), as under
        # granian: uvicorn must not rewrite the client address first.
        proxy_headers=False,
        # Longer than any pause in a test, so a pooled client never reuses a closed socket.
        timeout_keep_alive=120,
        # Teardown must end even if a client left a request hanging.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def queue_worker(settings: Settings, shuffle_seed: int | None = None) -> AsyncIterator[None]:
    """The real admission/expiry worker, running beside the API in this event loop."""
    engine = create_engine(settings)
    redis = connect_redis(str(settings.redis_url))
    task = asyncio.create_task(run_queue_worker(settings, engine, redis, shuffle_seed))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
        await engine.dispose()


@dataclass
class Booking:
    """A client session of the real API, with shortcuts for the booking steps."""

    http: httpx.AsyncClient
    # The concert of each schedule this session created, for helpers given only a schedule.
    concert_of_schedule: dict[str, str] = field(default_factory=dict)

    async def create_concert(self, seat_count: int = 50, price: int = 10_000,
                             schedules: int = 1, **waiting_room: Any) -> dict[str, Any]:
        """A new concert (so a waiting room of its own: `waiting_room` sets its policy)."""
        body: dict[str, Any] = {
            "title": "Rush " + secrets.token_hex(3), "venue": "Olympic Hall", "schedules": [
                {"starts_at": f"2027-0{1 + i}-01T19:00:00+09:00", "seat_count": seat_count,
                 "price": price} for i in range(schedules)]}
        if waiting_room:
            body["waiting_room"] = {name: value.isoformat() if hasattr(value, "isoformat") else value
                                    for name, value in waiting_room.items()}
        response = await self.http.post("/admin/concerts", json=body,
                                        headers=auth("admin-1", role="admin"))
        assert response.status_code == 201, response.text
        created = dict(response.json())
        for schedule in created["schedules"]:
            self.concert_of_schedule[schedule["id"]] = created["id"]
        return created

    async def issue(self, user_id: str, concert: dict[str, Any] | str) -> httpx.Response:
        """POST /queue/tokens for the concert (its body or its id)."""
        concert_id = concert if isinstance(concert, str) else concert["id"]
        return await self.http.post("/queue/tokens", json={"concert_id": concert_id},
                                    headers=auth(user_id))

    async def active_token(self, user_id: str, concert: dict[str, Any] | str,
                           wait_seconds: float = 60.0) -> str:
        """Take a place in the concert's line and wait for admission (the queue worker must
        be running)."""
        response = await self.issue(user_id, concert)
        assert response.status_code in (200, 201), response.text
        body = response.json()
        deadline = time.monotonic() + wait_seconds
        while body["status"] != "ACTIVE":
            assert time.monotonic() < deadline, f"{user_id} never admitted: {body}"
            await asyncio.sleep(0.05)
            response = await self.http.get(
                "/queue/tokens/me", headers={**auth(user_id), "X-Queue-Token": body["token"]}
            )
            assert response.status_code == 200, response.text
            body = response.json()
        return str(body["token"])

    async def charge(self, user_id: str, amount: int) -> None:
        response = await self.http.post("/points/charge", json={"amount": amount},
                                        headers=auth(user_id))
        assert response.status_code == 200, response.text

    def guarded(self, user_id: str, queue_token: str, **extra: str) -> dict[str, str]:
        return {**auth(user_id), "X-Queue-Token": queue_token, **extra}

    async def hold(self, user_id: str, queue_token: str, schedule_id: str,
                   seat_no: int) -> httpx.Response:
        return await self.http.post(
            "/reservations", json={"schedule_id": schedule_id, "seat_no": seat_no},
            headers=self.guarded(user_id, queue_token),
        )

    async def pay(self, user_id: str, queue_token: str, reservation_id: str,
                  key: str | None = None) -> httpx.Response:
        return await self.http.post(
            "/payments", json={"reservation_id": reservation_id},
            headers=self.guarded(user_id, queue_token, **{"Idempotency-Key": key or uuid.uuid4().hex}),
        )

    async def paid(self, price: int, prefix: str = "paid") -> PaymentCompleted:
        """A new user's payment for the one seat of a new concert, as its PaymentCompleted event."""
        concert = await self.create_concert(seat_count=1, price=price)
        schedule_id = concert["schedules"][0]["id"]
        user = new_user(prefix)
        await self.charge(user, price)
        token = await self.active_token(user, concert)
        hold = (await self.hold(user, token, schedule_id, 1)).json()
        body = (await self.pay(user, token, hold["id"])).json()
        return PaymentCompleted(
            payment_id=uuid.UUID(body["id"]), reservation_id=uuid.UUID(hold["id"]),
            ticket_id=uuid.UUID(body["ticket"]["id"]), user_id=user,
            schedule_id=uuid.UUID(schedule_id), seat_no=1, amount=price, queue_token=token,
        )
