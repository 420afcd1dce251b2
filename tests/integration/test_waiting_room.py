"""The waiting rooms end to end: real API, real admission worker, a room per concert.

Every test runs twice: on the single Redis of the suite and on a real three-master Redis
Cluster, where each room's keys sit in a slot of their own.
"""

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.config import Settings, queue_lifetimes
from services.common.redis_client import connect_redis
from tests.support import Booking, assert_problem, auth, new_user, queue_worker, serve_api, sql

pytestmark = pytest.mark.integration

TOKEN = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{32}")


@pytest.fixture(params=["single", "cluster"])
def rooms_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The suite's settings over a namespace of their own, on one Redis or on the cluster."""
    redis_url = request.getfixturevalue("redis_cluster_url") if request.param == "cluster" else None
    update: dict[str, Any] = {"queue_namespace": "x" + uuid.uuid4().hex[:12]}
    if redis_url:
        update["redis_url"] = redis_url
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[Booking]:
    limits = httpx.Limits(max_connections=200)
    async with serve_api(settings) as url, httpx.AsyncClient(
        base_url=url, timeout=30, limits=limits
    ) as http:
        yield Booking(http)


@contextlib.asynccontextmanager
async def _rooms(settings: Settings, **overrides: Any) -> AsyncIterator[Booking]:
    """An API and an admission worker of their own."""
    own = settings.model_copy(update=overrides)
    async with _api(own) as booking, queue_worker(own):
        yield booking


@contextlib.asynccontextmanager
async def _redis_rooms(settings: Settings) -> AsyncIterator[WaitingRooms]:
    """The rooms as Redis holds them, to step or look at directly."""
    client = connect_redis(str(settings.redis_url))
    try:
        yield WaitingRooms(client, queue_lifetimes(settings), settings.queue_namespace)
    finally:
        await client.aclose()


async def _room(booking: Booking, **policy: Any) -> dict[str, Any]:
    return await booking.create_concert(seat_count=5, price=1_000, **policy)


async def _me(booking: Booking, user: str, queue_token: str) -> httpx.Response:
    return await booking.http.get("/queue/tokens/me", headers=booking.guarded(user, queue_token))


async def _line(booking: Booking, concert: dict[str, Any], count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` users taking their places one after another."""
    line = []
    for _ in range(count):
        user = new_user("q")
        response = await booking.issue(user, concert)
        assert response.status_code == 201, response.text
        line.append((user, response.json()))
    return line


async def _statuses(booking: Booking, line: list[tuple[str, str]]) -> list[dict[str, Any]]:
    responses = await asyncio.gather(*(_me(booking, user, token) for user, token in line))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


async def _until(check: Any, what: str, seconds: float = 10.0) -> Any:
    """Poll `check` (async, returns a truthy value when done) until it holds."""
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)
    return found


async def test_a_user_has_one_token_per_room_and_may_wait_in_several(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        full, other = await _room(booking, max_active=1), await _room(booking)
        first = new_user("q")
        active = await booking.active_token(first, full)
        again = await booking.issue(first, full)
        assert again.status_code == 200
        body = again.json()
        assert (body["token"], body["concert_id"], body["status"], body["position"], body["eta_seconds"]) == (
            active, full["id"], "ACTIVE", 0, 0)
        expires = datetime.fromisoformat(body["expires_at"])
        assert expires.utcoffset() is not None
        assert 0 < (expires - datetime.now(UTC)).total_seconds() <= rooms_settings.queue_active_ttl_seconds

        second = new_user("q")
        created = await booking.issue(second, full)
        assert created.status_code == 201
        waiting = created.json()
        assert waiting["status"] == "WAITING" and waiting["position"] == 1
        assert waiting["expires_at"] is None and waiting["eta_seconds"] >= 1
        repeated = await booking.issue(second, full)
        assert repeated.status_code == 200 and repeated.json() == waiting
        me = await _me(booking, second, waiting["token"])
        assert me.status_code == 200 and me.json() == waiting

        # The same user in another room: a token of its own, bound to that concert.
        elsewhere = await booking.issue(second, other)
        assert elsewhere.status_code == 201
        assert elsewhere.json()["token"] != waiting["token"] and elsewhere.json()["concert_id"] == other["id"]
        assert (await _me(booking, second, waiting["token"])).json()["status"] == "WAITING"

        tokens = [waiting["token"], active] + [body["token"] for _, body in await _line(booking, full, 20)]
        assert len(set(tokens)) == len(tokens)
        # The concert, then at least 128 random bits, URL-safe.
        assert all(TOKEN.fullmatch(t) and t.startswith(uuid.UUID(full["id"]).hex) for t in tokens)


async def test_a_token_admits_to_its_own_concerts_schedules_only(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        mine, theirs = await _room(booking), await _room(booking)
        user = new_user("q")
        await booking.charge(user, 10_000)
        token = await booking.active_token(user, mine)
        elsewhere = theirs["schedules"][0]["id"]
        assert_problem(await booking.hold(user, token, elsewhere, 1), 401, "QUEUE_TOKEN_INVALID")
        held = await booking.hold(user, token, mine["schedules"][0]["id"], 1)
        assert held.status_code == 201, held.text

        # A reservation of the other concert is guarded by that concert's room too.
        other_token = await booking.active_token(user, theirs)
        theirs_held = (await booking.hold(user, other_token, elsewhere, 2)).json()
        assert_problem(await booking.http.delete(
            f"/reservations/{theirs_held['id']}", headers=booking.guarded(user, token)),
            401, "QUEUE_TOKEN_INVALID")
        assert_problem(await booking.pay(user, token, theirs_held["id"]), 401, "QUEUE_TOKEN_INVALID")
        seats = (await booking.http.get(f"/schedules/{elsewhere}/seats")).json()["items"]
        assert seats[1]["status"] == "HELD"
        assert (await booking.pay(user, other_token, theirs_held["id"])).status_code == 201


async def test_positions_are_exact_and_one_based(rooms_settings: Settings) -> None:
    rate = 3
    async with _rooms(rooms_settings) as booking:
        concert = await _room(booking, max_active=1, admit_per_second=rate)
        await booking.active_token(new_user("q"), concert)  # fills the only slot
        line = await _line(booking, concert, 10)
        assert [body["position"] for _, body in line] == list(range(1, 11))
        assert {body["status"] for _, body in line} == {"WAITING"}
        polled = await _statuses(booking, [(user, body["token"]) for user, body in line])
        assert [body["position"] for body in polled] == list(range(1, 11))

        # Thirty at once: places 11..40, each given once, whatever the order of arrival.
        users = [new_user("q") for _ in range(30)]
        crowd = await asyncio.gather(*(booking.issue(user, concert) for user in users))
        assert sorted(r.json()["position"] for r in crowd) == list(range(11, 41))

        # The ETA follows the position at the room's admission rate.
        everyone = polled + [r.json() for r in crowd]
        for body in everyone:
            assert body["position"] / rate <= body["eta_seconds"] <= body["position"] / rate + 1
        by_place = sorted(everyone, key=lambda body: body["position"])
        etas = [body["eta_seconds"] for body in by_place]
        assert etas == sorted(etas) and etas[-1] == math.ceil(40 / rate)


async def test_admission_fills_to_max_active_and_no_further(rooms_settings: Settings) -> None:
    async with _api(rooms_settings) as booking:
        concert = await _room(booking, max_active=5)
        # The line forms before the admission worker starts, so its order is known.
        line = [(user, body["token"]) for user, body in await _line(booking, concert, 20)]
        async with queue_worker(rooms_settings):
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


async def test_a_paid_token_frees_its_slot_for_the_next_in_line(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        concert = await _room(booking, max_active=2)
        schedule_id = concert["schedules"][0]["id"]
        buyer, other = new_user("q"), new_user("q")
        buyer_token = await booking.active_token(buyer, concert)
        await booking.active_token(other, concert)
        line = [(user, body["token"]) for user, body in await _line(booking, concert, 3)]
        await asyncio.sleep(0.3)
        assert [b["position"] for b in await _statuses(booking, line)] == [1, 2, 3]

        await booking.charge(buyer, 1_000)
        held = await booking.hold(buyer, buyer_token, schedule_id, 1)
        assert (await booking.pay(buyer, buyer_token, held.json()["id"])).status_code == 201
        assert_problem(await _me(booking, buyer, buyer_token), 401, "QUEUE_TOKEN_INVALID")

        async def head_admitted() -> list[dict[str, Any]] | None:
            snapshot = await _statuses(booking, line)
            return snapshot if snapshot[0]["status"] == "ACTIVE" else None

        snapshot = await _until(head_admitted, "the head of the line admitted")
        assert [(b["status"], b["position"]) for b in snapshot] == [
            ("ACTIVE", 0), ("WAITING", 1), ("WAITING", 2)]
        # Only the one freed slot was filled.
        await asyncio.sleep(0.3)
        assert [b["status"] for b in await _statuses(booking, line)] == ["ACTIVE", "WAITING", "WAITING"]
        # The buyer may line up again, at the back.
        again = await booking.issue(buyer, concert)
        assert again.status_code == 201 and again.json()["token"] != buyer_token
        assert again.json()["position"] == 3


async def test_admission_respects_the_rooms_rate(rooms_settings: Settings) -> None:
    rate, count = 20, 60
    active_ttl = timedelta(seconds=rooms_settings.queue_active_ttl_seconds)
    async with _rooms(rooms_settings) as booking:
        concert = await _room(booking, admit_per_second=rate)
        users = [new_user("q") for _ in range(count)]
        await asyncio.gather(*(booking.http.get("/points", headers=auth(user)) for user in users))
        line = []  # (user, first answer, when it was given)
        for user in users:
            response = await booking.issue(user, concert)
            assert response.status_code == 201, response.text
            line.append((user, response.json(), datetime.now(UTC)))

        async def all_admitted() -> list[dict[str, Any]] | None:
            snapshot = await _statuses(booking, [(user, body["token"]) for user, body, _ in line])
            return snapshot if all(body["status"] == "ACTIVE" for body in snapshot) else None

        snapshot = await _until(all_admitted, "everyone admitted", seconds=60)
    # When the admission worker admitted each token, by its own clock: an ACTIVE token
    # expires the active TTL after it (to the millisecond), however late this test looked.
    admitted = [datetime.fromisoformat(body["expires_at"]) - active_ttl for body in snapshot]
    ms = sorted(round(at.timestamp() * 1000) for at in admitted)
    # A bucket of `rate`, refilled at `rate` a second: between any two admissions, at most a
    # full bucket plus what the time between them refilled (so 60 take 2 s at least).
    over = [(first, last) for first in range(count) for last in range(first, count)
            if last - first + 1 > rate + (ms[last] - ms[first]) * rate / 1000]
    assert over == [], [(first, last, ms[last] - ms[first]) for first, last in over[:5]]
    # Nobody waited much longer than the ETA they were given.
    late = {order: ((at - issued).total_seconds(), body["eta_seconds"])
            for order, ((_, body, issued), at) in enumerate(zip(line, admitted, strict=True))
            if (at - issued).total_seconds() > body["eta_seconds"] + 1.5}
    assert late == {}


async def test_a_crowd_in_one_room_does_not_delay_another_room(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        hot = await _room(booking, max_active=1, admit_per_second=1)
        quiet = await _room(booking, admit_per_second=1)
        await booking.active_token(new_user("q"), hot)  # the hot room's only slot, taken
        crowd = await asyncio.gather(*(booking.issue(new_user("q"), hot) for _ in range(200)))
        assert sorted(r.json()["position"] for r in crowd) == list(range(1, 201))

        buyer = new_user("q")
        first = (await booking.issue(buyer, quiet)).json()
        # One room's line is not the other's: the quiet room's buyer is first in line there...
        assert (first["status"], first["position"], first["eta_seconds"]) == ("WAITING", 1, 1)
        # ...and admitted at the quiet room's own pace while the whole crowd still waits.
        await booking.active_token(buyer, quiet)
        room = (await booking.http.get(f"/concerts/{hot['id']}/waiting-room")).json()
        assert (room["waiting"], room["active"]) == (200, 1)


async def test_an_active_token_expires_after_its_ttl(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings, queue_active_ttl_seconds=1) as booking:
        concert = await _room(booking, max_active=1)
        schedule_id = concert["schedules"][0]["id"]
        first, second = new_user("q"), new_user("q")
        first_token = await booking.active_token(first, concert)
        body = (await _me(booking, first, first_token)).json()
        left = (datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC)).total_seconds()
        assert 0 < left <= 1.0
        waiting = (await booking.issue(second, concert)).json()
        assert waiting["status"] == "WAITING" and waiting["position"] == 1
        assert (await booking.hold(first, first_token, schedule_id, 1)).status_code == 201

        await asyncio.sleep(left + 0.05)
        assert_problem(await _me(booking, first, first_token), 401, "QUEUE_TOKEN_INVALID")
        assert_problem(await booking.hold(first, first_token, schedule_id, 2), 401, "QUEUE_TOKEN_INVALID")

        # Its slot goes to the next in line.
        async def second_admitted() -> bool:
            return bool((await _me(booking, second, waiting["token"])).json()["status"] == "ACTIVE")

        await _until(second_admitted, "the next in line admitted")
        again = await booking.issue(first, concert)
        assert again.status_code == 201 and again.json()["token"] != first_token
        assert again.json()["status"] == "WAITING" and again.json()["position"] == 1


async def test_a_waiting_token_that_stops_polling_loses_its_place(rooms_settings: Settings) -> None:
    """No worker runs here: the test moves the last polls into the past and steps by hand."""
    grace_ms = rooms_settings.queue_wait_grace_seconds * 1000
    async with _api(rooms_settings) as booking, _redis_rooms(rooms_settings) as rooms:
        concert = await _room(booking, max_active=1)
        concert_id = uuid.UUID(concert["id"])
        holder = new_user("q")
        holder_token = (await booking.issue(holder, concert)).json()["token"]
        assert (await rooms.admit(concert_id, seed=1)).admitted == 1
        line = [(user, body["token"]) for user, body in await _line(booking, concert, 4)]
        stays, (gone_user, gone_token) = [line[0], line[2], line[3]], line[1]

        # Everyone's last poll a grace and a moment ago; then all but one poll again.
        seen = rooms.keys(concert_id).seen
        client = connect_redis(str(rooms_settings.redis_url))
        try:
            polls = await client.execute("ZRANGE", seen, 0, -1, "WITHSCORES")  # token, ms, ...
            for token, score in zip(polls[::2], polls[1::2], strict=True):
                await client.execute("ZADD", seen, int(float(score)) - grace_ms - 1, token)
        finally:
            await client.aclose()
        await _statuses(booking, stays)
        step = await rooms.admit(concert_id, seed=1)
        assert step is not None and (step.abandoned, step.waiting) == (1, 3)

        assert_problem(await _me(booking, gone_user, gone_token), 401, "QUEUE_TOKEN_INVALID")
        assert [b["position"] for b in await _statuses(booking, stays)] == [1, 2, 3]
        # An ACTIVE token needs no polling: the grace is for the waiting line.
        assert (await _me(booking, holder, holder_token)).json()["status"] == "ACTIVE"
        back = await booking.issue(gone_user, concert)
        assert back.status_code == 201 and back.json()["token"] != gone_token
        assert back.json()["position"] == 4


async def test_waiting_answers_say_when_to_ask_again_at_the_rooms_pace(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        slow = await _room(booking, max_active=1, admit_per_second=2)
        first = new_user("q")
        active = await booking.active_token(first, slow)
        me = await _me(booking, first, active)
        assert me.json()["status"] == "ACTIVE" and "retry-after" not in me.headers
        line = await _line(booking, slow, 120)
        for user, body in (line[0], line[-1]):
            assert body["status"] == "WAITING", body
            for answer in (await booking.issue(user, slow), await _me(booking, user, body["token"])):
                seconds = int(answer.headers["retry-after"])
                # Half the ETA, jittered by at most a fifth, within 1..30 seconds.
                half = body["eta_seconds"] / 2
                assert max(1, math.floor(half * 0.8)) <= seconds <= min(30, math.ceil(half * 1.2)), (
                    seconds, body)
        near = await _me(booking, line[0][0], line[0][1]["token"])
        far = await _me(booking, line[-1][0], line[-1][1]["token"])
        assert int(near.headers["retry-after"]) < int(far.headers["retry-after"])

        # The same place in a faster room: asked back sooner.
        fast = await _room(booking, max_active=1, admit_per_second=60)
        await booking.active_token(new_user("q"), fast)
        fast_line = await _line(booking, fast, 120)
        assert fast_line[-1][1]["eta_seconds"] == 2
        answer = await _me(booking, fast_line[-1][0], fast_line[-1][1]["token"])
        assert int(answer.headers["retry-after"]) <= 2 < int(far.headers["retry-after"])


async def test_a_room_before_its_queue_opens_is_closed(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        opens = datetime.now(UTC) + timedelta(hours=1)
        concert = await _room(booking, queue_opens_at=opens, sale_opens_at=opens + timedelta(hours=1))
        assert datetime.fromisoformat(concert["waiting_room"]["queue_opens_at"]) == opens
        user = new_user("q")
        assert_problem(await booking.issue(user, concert), 409, "QUEUE_NOT_OPEN")
        room = (await booking.http.get(f"/concerts/{concert['id']}/waiting-room")).json()
        assert (room["status"], room["waiting"], room["active"]) == ("CLOSED", 0, 0)
        # Refused, not half-issued: the user has no token there.
        assert_problem(await booking.issue(user, concert), 409, "QUEUE_NOT_OPEN")
        assert_problem(await booking.issue(user, str(uuid.uuid4())), 404, "NOT_FOUND")


async def test_the_pre_queue_gets_a_random_order_ahead_of_later_arrivals(rooms_settings: Settings) -> None:
    early_count, late_count = 60, 15
    own = rooms_settings.model_copy(update={"queue_wait_grace_seconds": 60})
    async with _api(own) as booking:
        sale = datetime.now(UTC) + timedelta(seconds=3)
        concert = await _room(booking, admit_per_second=1, max_active=1000, sale_opens_at=sale)
        early_users = [new_user("pre") for _ in range(early_count)]
        async with queue_worker(own, shuffle_seed=20261206):
            # A crowd arriving at once before the sale: all in, none ordered.
            answers = await asyncio.gather(*(booking.issue(user, concert) for user in early_users))
            assert {a.status_code for a in answers} == {201}
            assert {(a.json()["status"], a.json()["position"], a.json()["eta_seconds"]) for a in answers} == {
                ("PRE_QUEUE", None, None)}
            assert "retry-after" not in answers[0].headers
            room = (await booking.http.get(f"/concerts/{concert['id']}/waiting-room")).json()
            assert (room["status"], room["waiting"], room["active"]) == ("PRE_QUEUE", early_count, 0)
            early = [(user, a.json()["token"]) for user, a in zip(early_users, answers, strict=True)]
            again = await booking.issue(early_users[0], concert)
            assert again.status_code == 200 and again.json()["token"] == early[0][1]

            async def sale_open() -> bool:
                return datetime.now(UTC) >= sale

            await _until(sale_open, "the sale to open")
            # Nobody got in before the sale.
            before = await _statuses(booking, early)
            assert {b["status"] for b in before} <= {"PRE_QUEUE", "WAITING", "ACTIVE"}
            late = await _line(booking, concert, late_count)
            everyone = early + [(user, body["token"]) for user, body in late]

            async def released() -> bool:
                return all(b["status"] != "PRE_QUEUE" for b in await _statuses(booking, everyone))

            await _until(released, "the pre-queue released", seconds=60)
            # One admission a second moves every place, and reading 75 places takes a while
            # on a busy machine: pause the room, so that the places stop moving, and read
            # until two reads agree (a tick already under way may still admit one).
            admin = auth("room-admin", role="admin")
            paused = await booking.http.patch(f"/admin/concerts/{concert['id']}/waiting-room",
                                              json={"paused": True}, headers=admin)
            assert paused.status_code == 200, paused.text

            async def still() -> list[dict[str, Any]] | None:
                first = await _statuses(booking, everyone)
                places = [(b["status"], b["position"]) for b in first]
                second = await _statuses(booking, everyone)
                return first if places == [(b["status"], b["position"]) for b in second] else None

            both = await _until(still, "the places to stop moving", seconds=60)
            seconds_open = (datetime.now(UTC) - sale).total_seconds()
            snapshot, later = both[:early_count], both[early_count:]

        waiting_early = [b["position"] for b in snapshot if b["status"] == "WAITING"]
        admitted_early = sum(b["status"] == "ACTIVE" for b in snapshot)
        # At one a second, only the head of the pre-queue may be in by now (however long this
        # machine took to get here: the room's rate is the bound, not the test's speed)...
        assert admitted_early + len(waiting_early) == early_count
        assert admitted_early <= 1 + seconds_open, (admitted_early, seconds_open)
        assert len(waiting_early) >= 2, "the machine took too long to see any order"
        # ...every other early token has a distinct place, all of them ahead of every later arrival.
        assert sorted(waiting_early) == list(range(1, len(waiting_early) + 1))
        assert [b["status"] for b in later] == ["WAITING"] * late_count
        late_positions = [b["position"] for b in later]
        assert late_positions == list(range(len(waiting_early) + 1, len(waiting_early) + late_count + 1))
        # The order is not the order of arrival.
        by_arrival = [b["position"] for b in snapshot if b["status"] == "WAITING"]
        assert by_arrival != sorted(by_arrival)


async def test_an_admin_pauses_resumes_and_repaces_a_room(rooms_settings: Settings) -> None:
    async with _rooms(rooms_settings) as booking:
        concert = await _room(booking, admit_per_second=1, max_active=100)
        path = f"/admin/concerts/{concert['id']}/waiting-room"
        admin = auth("room-admin", role="admin")
        paused = await booking.http.patch(path, json={"paused": True}, headers=admin)
        assert paused.status_code == 200, paused.text
        assert (paused.json()["status"], paused.json()["admit_per_second"]) == ("PAUSED", 1)
        line = [(user, body["token"]) for user, body in await _line(booking, concert, 30)]
        await asyncio.sleep(0.5)  # five admission ticks: a paused room admits nobody
        assert {b["status"] for b in await _statuses(booking, line)} == {"WAITING"}

        resumed = await booking.http.patch(path, json={"paused": False, "admit_per_second": 10_000},
                                           headers=admin)
        assert resumed.json()["status"] == "OPEN" and resumed.json()["admit_per_second"] == 10_000

        async def all_admitted() -> bool:
            return {b["status"] for b in await _statuses(booking, line)} == {"ACTIVE"}

        await _until(all_admitted, "the whole line admitted at the new pace")
        changes = await booking.http.patch(path, json={"max_active": 7}, headers=admin)
        assert changes.json()["max_active"] == 7 and changes.json()["active"] == 30


async def test_room_changes_are_validated_and_audited(booking: Booking, settings: Settings) -> None:
    concert = await _room(booking)
    path = f"/admin/concerts/{concert['id']}/waiting-room"
    admin = auth("auditor-1", role="admin")
    for bad in ({}, {"admit_per_second": 0}, {"max_active": 100_001}, {"paused": "yes"},
                {"admit_per_second": "5"}, {"max_active": None}):
        assert_problem(await booking.http.patch(path, json=bad, headers=admin), 422, "VALIDATION_FAILED")
    assert_problem(await booking.http.patch(path, json={"paused": True}, headers=auth("someone")),
                   403, "FORBIDDEN")
    assert_problem(await booking.http.patch(f"/admin/concerts/{uuid.uuid4()}/waiting-room",
                                            json={"paused": True}, headers=admin), 404, "NOT_FOUND")
    shown = await booking.http.get(f"/concerts/{concert['id']}/waiting-room")
    assert shown.json() == {
        "concert_id": concert["id"], "status": "OPEN", "waiting": 0, "active": 0,
        "admit_per_second": settings.queue_admit_per_second, "max_active": settings.queue_max_active,
        "queue_opens_at": None, "sale_opens_at": None}
    assert_problem(await booking.http.get(f"/concerts/{uuid.uuid4()}/waiting-room"), 404, "NOT_FOUND")

    changed = await booking.http.patch(path, json={"admit_per_second": 7, "paused": True}, headers=admin)
    assert changed.status_code == 200
    assert {**changed.json(), "status": "PAUSED", "admit_per_second": 7} == changed.json()
    audit = await sql(settings, "SELECT changed_by, changes, changed_at FROM waiting_room_changes"
                      " WHERE concert_id = :c ORDER BY id", c=concert["id"])
    assert [(row["changed_by"], row["changes"]) for row in audit][1:] == [
        ("auditor-1", {"admit_per_second": 7, "paused": True})]
    assert audit[0]["changed_by"] == "admin-1" and "created" in audit[0]["changes"]
    assert audit[-1]["changed_at"] <= datetime.now(UTC)


async def test_a_concerts_room_is_set_at_creation(booking: Booking) -> None:
    sale = datetime(2027, 1, 1, 10, tzinfo=UTC)
    concert = await _room(booking, admit_per_second=3, max_active=9,
                          queue_opens_at=sale - timedelta(hours=1), sale_opens_at=sale)
    assert concert["waiting_room"] == {
        "admit_per_second": 3, "max_active": 9, "queue_opens_at": "2027-01-01T09:00:00Z",
        "sale_opens_at": "2027-01-01T10:00:00Z"}
    body = {"title": "T", "venue": "V", "schedules": [
        {"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": 1, "price": 1}]}
    admin = auth("admin-1", role="admin")
    for bad in ({"admit_per_second": 0}, {"admit_per_second": 10_001}, {"max_active": 0},
                {"queue_opens_at": "2027-01-02T00:00:00Z", "sale_opens_at": "2027-01-01T00:00:00Z"},
                {"sale_opens_at": "2027-01-01T00:00:00"}, {"max_active": 1.5}):
        refused = await booking.http.post("/admin/concerts", json={**body, "waiting_room": bad},
                                          headers=admin)
        assert_problem(refused, 422, "VALIDATION_FAILED")


async def test_a_change_applies_at_the_next_admission_step(rooms_settings: Settings) -> None:
    """No worker runs here: each admission step is taken by hand, right after each PATCH."""
    async with _api(rooms_settings) as booking, _redis_rooms(rooms_settings) as steps:
        concert = await _room(booking, admit_per_second=2, max_active=100)
        concert_id = uuid.UUID(concert["id"])
        path, admin = f"/admin/concerts/{concert['id']}/waiting-room", auth("admin-2", role="admin")
        await _line(booking, concert, 40)

        async def step() -> tuple[int, int]:
            taken = await steps.admit(concert_id, seed=1)
            assert taken is not None
            return taken.admitted, taken.active

        assert await step() == (2, 2)  # a full bucket at 2 a second
        assert (await booking.http.patch(path, json={"paused": True}, headers=admin)).status_code == 200
        await asyncio.sleep(1.1)  # the bucket refills; a paused room still admits nobody
        assert await step() == (0, 2)
        await booking.http.patch(path, json={"paused": False, "max_active": 5,
                                             "admit_per_second": 10_000}, headers=admin)
        assert await step() == (3, 5)  # resumed, at the new pace, up to the new limit
        await booking.http.patch(path, json={"max_active": 40}, headers=admin)
        assert await step() == (35, 40)


async def test_a_room_left_empty_costs_nothing_and_comes_back_with_its_next_waiter(
    rooms_settings: Settings,
) -> None:
    async with _rooms(rooms_settings) as booking, _redis_rooms(rooms_settings) as rooms:
        concert = await _room(booking)
        concert_id = uuid.UUID(concert["id"])
        await booking.active_token(new_user("q"), concert)

        async def left_the_round() -> bool:
            return concert_id not in await rooms.rooms_with_waiters()

        await _until(left_the_round, "the emptied room left the admission round")
        await booking.active_token(new_user("q"), concert)  # admitted: the room came back
