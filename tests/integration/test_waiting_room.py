"""The waiting room end to end: real API, real admission worker, an isolated queue per test."""

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.booking.config import Settings
from tests.support import Booking, assert_problem, auth, new_user, queue_worker, serve_api

pytestmark = pytest.mark.integration

URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def _isolated(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={"queue_namespace": "x" + uuid.uuid4().hex[:12], **overrides})


@contextlib.asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[Booking]:
    limits = httpx.Limits(max_connections=200)
    async with serve_api(settings) as url, httpx.AsyncClient(
        base_url=url, timeout=30, limits=limits
    ) as http:
        yield Booking(http)


@contextlib.asynccontextmanager
async def _room(settings: Settings, **overrides: Any) -> AsyncIterator[Booking]:
    """An API and an admission worker over a queue of their own."""
    isolated = _isolated(settings, **overrides)
    async with _api(isolated) as booking, queue_worker(isolated):
        yield booking


async def _issue(booking: Booking, user: str) -> httpx.Response:
    return await booking.http.post("/queue/tokens", headers=auth(user))


async def _me(booking: Booking, user: str, queue_token: str) -> httpx.Response:
    return await booking.http.get("/queue/tokens/me", headers=booking.guarded(user, queue_token))


async def _line(booking: Booking, count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` users taking their places one after another."""
    line = []
    for _ in range(count):
        user = new_user("q")
        response = await _issue(booking, user)
        assert response.status_code == 201, response.text
        line.append((user, response.json()))
    return line


async def _statuses(booking: Booking, line: list[tuple[str, str]]) -> list[dict[str, Any]]:
    responses = await asyncio.gather(*(_me(booking, user, token) for user, token in line))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


async def test_a_user_has_one_token_at_a_time(settings: Settings) -> None:
    async with _room(settings, queue_max_active=1) as booking:
        first = new_user("q")
        active = await booking.active_token(first)
        again = await _issue(booking, first)
        assert again.status_code == 200
        body = again.json()
        assert (body["token"], body["status"], body["position"], body["eta_seconds"]) == (
            active, "ACTIVE", 0, 0)
        expires = datetime.fromisoformat(body["expires_at"])
        assert expires.utcoffset() is not None
        assert 0 < (expires - datetime.now(UTC)).total_seconds() <= settings.queue_active_ttl_seconds

        second = new_user("q")
        created = await _issue(booking, second)
        assert created.status_code == 201
        waiting = created.json()
        assert waiting["status"] == "WAITING" and waiting["position"] == 1
        assert waiting["expires_at"] is None and waiting["eta_seconds"] >= 1
        repeated = await _issue(booking, second)
        assert repeated.status_code == 200 and repeated.json() == waiting
        me = await _me(booking, second, waiting["token"])
        assert me.status_code == 200 and me.json() == waiting

        tokens = [waiting["token"], active] + [body["token"] for _, body in await _line(booking, 20)]
        assert len(set(tokens)) == len(tokens)
        # At least 128 random bits, URL-safe.
        assert all(URLSAFE.fullmatch(t) and len(t) >= 22 for t in tokens)


async def test_positions_are_exact_and_one_based(settings: Settings) -> None:
    rate = 3
    async with _room(settings, queue_max_active=1, queue_admit_per_second=rate) as booking:
        await booking.active_token(new_user("q"))  # fills the only slot
        line = await _line(booking, 10)
        assert [body["position"] for _, body in line] == list(range(1, 11))
        assert {body["status"] for _, body in line} == {"WAITING"}
        polled = await _statuses(booking, [(user, body["token"]) for user, body in line])
        assert [body["position"] for body in polled] == list(range(1, 11))

        # Thirty at once: places 11..40, each given once, whatever the order of arrival.
        users = [new_user("q") for _ in range(30)]
        crowd = await asyncio.gather(*(_issue(booking, user) for user in users))
        assert sorted(r.json()["position"] for r in crowd) == list(range(11, 41))

        # The ETA follows the position at the admission rate.
        everyone = polled + [r.json() for r in crowd]
        for body in everyone:
            assert body["position"] / rate <= body["eta_seconds"] <= body["position"] / rate + 1
        by_place = sorted(everyone, key=lambda body: body["position"])
        etas = [body["eta_seconds"] for body in by_place]
        assert etas == sorted(etas) and etas[-1] == math.ceil(40 / rate)


async def test_admission_fills_to_max_active_and_no_further(settings: Settings) -> None:
    narrow = _isolated(settings, queue_max_active=5)
    async with _api(narrow) as booking:
        # The line forms before the admission worker starts, so its order is known.
        line = [(user, body["token"]) for user, body in await _line(booking, 20)]
        async with queue_worker(narrow):
            counts = []
            deadline = time.monotonic() + 0.8
            while time.monotonic() < deadline or counts[-1] < 5:
                assert time.monotonic() < deadline + 5, counts
                snapshot = await _statuses(booking, line)
                counts.append(sum(body["status"] == "ACTIVE" for body in snapshot))
                await asyncio.sleep(0.03)
        assert max(counts) <= 5, counts
        # The head of the line got in; everyone else moved up five places.
        assert [body["status"] for body in snapshot] == ["ACTIVE"] * 5 + ["WAITING"] * 15
        assert [body["position"] for body in snapshot] == [0] * 5 + list(range(1, 16))


async def test_a_paid_token_frees_its_slot_for_the_next_in_line(settings: Settings) -> None:
    async with _room(settings, queue_max_active=2) as booking:
        concert = await booking.create_concert(seat_count=5, price=1_000)
        schedule_id = concert["schedules"][0]["id"]
        buyer, other = new_user("q"), new_user("q")
        buyer_token = await booking.active_token(buyer)
        await booking.active_token(other)
        line = [(user, body["token"]) for user, body in await _line(booking, 3)]
        await asyncio.sleep(0.3)
        assert [b["position"] for b in await _statuses(booking, line)] == [1, 2, 3]

        await booking.charge(buyer, 1_000)
        held = await booking.hold(buyer, buyer_token, schedule_id, 1)
        assert (await booking.pay(buyer, buyer_token, held.json()["id"])).status_code == 201
        assert_problem(await _me(booking, buyer, buyer_token), 401, "QUEUE_TOKEN_INVALID")

        deadline = time.monotonic() + 3
        while (snapshot := await _statuses(booking, line))[0]["status"] != "ACTIVE":
            assert time.monotonic() < deadline, snapshot
            await asyncio.sleep(0.05)
        assert [(b["status"], b["position"]) for b in snapshot] == [
            ("ACTIVE", 0), ("WAITING", 1), ("WAITING", 2)]
        # Only the one freed slot was filled.
        await asyncio.sleep(0.3)
        assert [b["status"] for b in await _statuses(booking, line)] == ["ACTIVE", "WAITING", "WAITING"]
        # The buyer may line up again, at the back.
        again = await _issue(booking, buyer)
        assert again.status_code == 201 and again.json()["token"] != buyer_token
        assert again.json()["position"] == 3


async def test_admission_respects_the_rate(settings: Settings) -> None:
    rate, count = 20, 60
    async with _room(settings, queue_admit_per_second=rate) as booking:
        users = [new_user("q") for _ in range(count)]
        await asyncio.gather(*(booking.http.get("/points", headers=auth(user)) for user in users))
        started = time.monotonic()
        line = []  # (order of arrival, user, first answer, when it was given)
        for order, user in enumerate(users):
            response = await _issue(booking, user)
            line.append((order, user, response.json(), time.monotonic() - started))
        # Watch a few places along the line; the last one's place tells how many got in.
        watched = [line[i] for i in (0, 19, 20, 39, 40, count - 1)]
        admitted_at: dict[int, float] = {}
        admitted_early = count
        while len(admitted_at) < len(watched):
            now = time.monotonic() - started
            assert now < 8, f"not all admitted after {now:.1f}s: {admitted_at}"
            snapshot = await _statuses(booking, [(user, body["token"]) for _, user, body, _ in watched])
            now = time.monotonic() - started
            for (order, _, _, _), body in zip(watched, snapshot, strict=True):
                if body["status"] == "ACTIVE":
                    admitted_at.setdefault(order, now)
            last = snapshot[-1]
            admitted = count if last["status"] == "ACTIVE" else count - last["position"]
            # At most a full bucket at once, then the rate.
            assert admitted <= rate + rate * now + 1, (admitted, now)
            if now < 1.5:  # the bucket allows 20 + 20 x 1.5 = 50 by then
                admitted_early = admitted
            await asyncio.sleep(0.05)
        assert admitted_early < count
        # Nobody waited much longer than the ETA they were given.
        late = {order: (admitted_at[order] - at, body["eta_seconds"])
                for order, _, body, at in watched if admitted_at[order] - at > body["eta_seconds"] + 1.5}
        assert late == {}


async def test_an_active_token_expires_after_its_ttl(settings: Settings) -> None:
    async with _room(settings, queue_max_active=1, queue_active_ttl_seconds=1) as booking:
        concert = await booking.create_concert(seat_count=3)
        schedule_id = concert["schedules"][0]["id"]
        first, second = new_user("q"), new_user("q")
        first_token = await booking.active_token(first)
        body = (await _me(booking, first, first_token)).json()
        left = (datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC)).total_seconds()
        assert 0 < left <= 1.0
        waiting = (await _issue(booking, second)).json()
        assert waiting["status"] == "WAITING" and waiting["position"] == 1
        assert (await booking.hold(first, first_token, schedule_id, 1)).status_code == 201

        await asyncio.sleep(left + 0.05)
        assert_problem(await _me(booking, first, first_token), 401, "QUEUE_TOKEN_INVALID")
        assert_problem(await booking.hold(first, first_token, schedule_id, 2), 401, "QUEUE_TOKEN_INVALID")
        # Its slot goes to the next in line.
        deadline = time.monotonic() + 3
        while (me := (await _me(booking, second, waiting["token"])).json())["status"] != "ACTIVE":
            assert time.monotonic() < deadline, me
            await asyncio.sleep(0.05)
        again = await _issue(booking, first)
        assert again.status_code == 201 and again.json()["token"] != first_token
        assert again.json()["status"] == "WAITING" and again.json()["position"] == 1


async def test_a_waiting_token_that_stops_polling_loses_its_place(settings: Settings) -> None:
    async with _room(settings, queue_max_active=1, queue_wait_grace_seconds=1) as booking:
        holder = new_user("q")
        holder_token = await booking.active_token(holder)
        line = [(user, body["token"]) for user, body in await _line(booking, 4)]
        stays = [line[0], line[2], line[3]]
        deadline = time.monotonic() + 1.7
        while time.monotonic() < deadline:
            await _statuses(booking, stays)
            await asyncio.sleep(0.25)

        gone_user, gone_token = line[1]
        assert_problem(await _me(booking, gone_user, gone_token), 401, "QUEUE_TOKEN_INVALID")
        assert [b["position"] for b in await _statuses(booking, stays)] == [1, 2, 3]
        # An ACTIVE token needs no polling: the grace is for the waiting line.
        assert (await _me(booking, holder, holder_token)).json()["status"] == "ACTIVE"
        back = await _issue(booking, gone_user)
        assert back.status_code == 201 and back.json()["token"] != gone_token
        assert back.json()["position"] == 4


async def test_waiting_answers_say_when_to_ask_again(settings: Settings) -> None:
    rate = 2
    async with _room(settings, queue_max_active=1, queue_admit_per_second=rate) as booking:
        first = new_user("q")
        active = await booking.active_token(first)
        me = await _me(booking, first, active)
        assert me.json()["status"] == "ACTIVE" and "retry-after" not in me.headers
        line = await _line(booking, 120)
        for user, body in (line[0], line[-1]):
            assert body["status"] == "WAITING", body
            for answer in (await _issue(booking, user), await _me(booking, user, body["token"])):
                seconds = int(answer.headers["retry-after"])
                # Half the ETA, jittered by at most a fifth, within 1..30 seconds.
                half = body["eta_seconds"] / 2
                assert max(1, math.floor(half * 0.8)) <= seconds <= min(30, math.ceil(half * 1.2)), (
                    seconds, body)
        near = await _me(booking, line[0][0], line[0][1]["token"])
        far = await _me(booking, line[-1][0], line[-1][1]["token"])
        assert int(near.headers["retry-after"]) < int(far.headers["retry-after"])
