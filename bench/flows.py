"""What the simulated users do, run inside the load generator process.

Each flow takes the JSON spec the orchestrator sent and returns a JSON-able result:
the recorder's latencies and status codes by request kind, counters, and extras.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from bench.api import BookingApi, Unexpected, User
from bench.httpclient import Client
from bench.stats import Recorder

Flow = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


class Spec:
    def __init__(self, spec: dict[str, Any]) -> None:
        address = urlsplit(spec["base_url"])
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.secret: str = spec["secret"]
        self.params: dict[str, Any] = spec["params"]
        self.watch: dict[str, int] = spec.get("watch", {})

    def recorder(self) -> Recorder:
        """A recorder that also reads the CPU of the system's processes at start and stop."""
        return Recorder(watch=self.watch)

    def client(self) -> Client:
        return Client(self.host, self.port, timeout=float(self.params.get("timeout", 30)))

    def users(self, prefix: str, count: int, **claims: Any) -> list[User]:
        return [User.new(self.secret, f"{prefix}-{n:06d}", **claims) for n in range(count)]


async def window(recorder: Recorder, params: dict[str, Any]) -> None:
    """Measure from the end of the warm-up for `duration` seconds."""
    await asyncio.sleep(params["warmup"])
    recorder.start()
    await asyncio.sleep(params["duration"])
    recorder.stop()


class Pacer:
    """Hands out start times `rate` per second; None means as fast as the users can go."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot, self.next = max(self.next, now), max(self.next, now) + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def _charge_all(spec: Spec, users: list[User], amount: int, concurrency: int = 100) -> None:
    """Setup, not measured: give every user points through the API."""
    recorder = Recorder()
    queue: asyncio.Queue[User] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)

    async def worker() -> None:
        api = BookingApi(spec.client(), recorder)
        try:
            while not queue.empty():
                await api.charge(queue.get_nowait(), amount)
        finally:
            api.client.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(users)))))


def _own_seats(schedules: list[str], seats_per_schedule: int, index: int, stride: int
               ) -> Iterator[tuple[str, int]]:
    """The seats user `index` of `stride` may take: nobody else ever asks for them."""
    for schedule_id in schedules:
        yield from ((schedule_id, seat) for seat in range(index + 1, seats_per_schedule + 1, stride))


async def payment(raw: dict[str, Any]) -> dict[str, Any]:
    """Closed loop: each user repeats queue token → admission → hold → pay on its own seats."""
    spec = Spec(raw)
    p = spec.params
    claims = p.get("claims", {})
    users = spec.users(p["prefix"], p["users"], **claims)
    await _charge_all(spec, users, p["charge"])
    recorder, pacer = spec.recorder(), Pacer(p.get("rate"))
    paid: list[tuple[str, float]] = []  # ticket id, wall time the 201 arrived
    failures: Counter[str] = Counter()
    totals: Counter[str] = Counter()  # all run long, warm-up included, for the SQL checks
    stop_at = time.monotonic() + p["warmup"] + p["duration"]

    async def user_loop(index: int, user: User) -> None:
        api = BookingApi(spec.client(), recorder, poll_seconds=p.get("poll_seconds", 0.02),
                         concert_id=p["concert_id"])
        seats = _own_seats(p["schedules"], p["seats_per_schedule"], index, len(users))
        try:
            for schedule_id, seat_no in seats:
                if time.monotonic() >= stop_at:
                    return
                await pacer.wait()
                started = time.perf_counter()
                try:
                    await api.wait_active(user)
                    status, held = await api.hold(user, schedule_id, seat_no)
                    if status != 201:
                        raise Unexpected("hold", status, b"")
                    status, receipt = await api.pay(user, held["id"])
                    if status != 201:
                        raise Unexpected("pay", status, b"")
                except Unexpected as error:
                    failures[f"{error.step} {error.status}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                recorder.observe("flow: token → paid", (time.perf_counter() - started) * 1000, "201")
                recorder.count("payments")
                totals["paid"] += 1
                if recorder.measuring and p.get("keep_tickets"):
                    paid.append((receipt["ticket"]["id"], time.time()))
        finally:
            api.client.close()

    await asyncio.gather(window(recorder, p), *(user_loop(i, u) for i, u in enumerate(users)))
    return {**recorder.as_json(), "failures": dict(failures), "paid": paid,
            "paid_total": totals["paid"]}


async def rush(raw: dict[str, Any]) -> dict[str, Any]:
    """Many users arrive within seconds for few seats of the hot concert: line up, look, grab,
    pay; with `quiet`, a few buyers of another concert arrive over the same seconds. Each
    buyer's wait for admission is timed per room ("flow: hot room admitted", "flow: quiet ...")."""
    spec = Spec(raw)
    p = spec.params
    rooms = [("hot", p, spec.users(p["prefix"], p["users"]))]
    if quiet := p.get("quiet"):
        rooms.append(("quiet", quiet, spec.users(quiet["prefix"], quiet["users"])))
    if p.get("charge"):
        await _charge_all(spec, rooms[0][2], p["charge"], concurrency=p.get("setup_concurrency", 100))
    recorder = spec.recorder()
    outcomes: dict[str, Counter[str]] = {room: Counter() for room, _, _ in rooms}
    rng = random.Random(7)
    crowd = [(room, params, user, rng.uniform(0, p["arrival_seconds"]))
             for room, params, users in rooms for user in users]
    crowd.sort(key=lambda arrival: arrival[3])
    recorder.start()
    began = time.monotonic()

    async def one_user(room: str, params: dict[str, Any], user: User, arrival: float) -> None:
        await asyncio.sleep(max(0.0, began + arrival - time.monotonic()))
        api = BookingApi(spec.client(), recorder, poll_seconds=p.get("poll_seconds", 0.25),
                         concert_id=params["concert_id"])
        try:
            outcome = await _grab_a_seat(api, user, params["schedule_id"], p["attempts"], rng, room)
            outcomes[room][outcome] += 1
        except Unexpected as error:
            outcomes[room][f"stopped: {error.step} {error.status}"] += 1
        finally:
            api.client.close()

    await asyncio.gather(*(one_user(*arrival) for arrival in crowd))
    recorder.stop()
    return {**recorder.as_json(), "outcomes": dict(outcomes["hot"]),
            "quiet_outcomes": dict(outcomes.get("quiet", {}))}


async def _grab_a_seat(api: BookingApi, user: User, schedule_id: str, attempts: int,
                       rng: random.Random, room: str = "hot") -> str:
    started = time.perf_counter()
    arrived = await api.wait_active(user)
    api.recorder.observe(f"flow: {room} room admitted", (time.perf_counter() - started) * 1000, "200")
    # A place, not a time: kept as a latency only to reuse the percentiles.
    api.recorder.observe(f"flow: {room} room place", float(arrived["position"] or 0), "200")
    for _ in range(attempts):
        free = [seat["seat_no"] for seat in await api.seats(schedule_id)
                if seat["status"] == "AVAILABLE"]
        if not free:
            return "sold out"
        status, held = await api.hold(user, schedule_id, rng.choice(free))
        if status == 409:
            continue
        if status != 201:
            raise Unexpected("hold", status, b"")
        status, _ = await api.pay(user, held["id"])
        return "paid" if status == 201 else f"pay {status}"
    return "gave up"


async def queue(raw: dict[str, Any]) -> dict[str, Any]:
    """Token issues by distinct users for a while, then position polls of those tokens,
    then the API's floor: a route that does nothing (no I/O, no dependency)."""
    spec = Spec(raw)
    p = spec.params
    users = spec.users(p["prefix"], p["users"])
    issued: list[User] = []
    results = {}
    for phase in ("issue", "poll", "floor"):
        recorder = spec.recorder()
        pending = iter(users)
        stop_at = time.monotonic() + p["warmup"] + p["duration"]

        async def worker(index: int, phase: str = phase, recorder: Recorder = recorder,
                         pending: Iterator[User] = pending, stop_at: float = stop_at) -> None:
            api = BookingApi(spec.client(), recorder, concert_id=p["concert_id"])
            try:
                n = index
                while time.monotonic() < stop_at:
                    if phase == "issue":
                        user = next(pending, None)
                        if user is None:
                            return
                        await api.issue_token(user)
                        issued.append(user)
                    elif phase == "poll":
                        await api.poll_token(issued[n % len(issued)])
                        n += p["concurrency"]
                    else:
                        await api.live()
            except Unexpected:
                recorder.count("stopped workers")
            finally:
                api.client.close()

        await asyncio.gather(window(recorder, p), *(worker(i) for i in range(p["concurrency"])))
        results[phase] = recorder.as_json()
    return results


async def hello(raw: dict[str, Any]) -> dict[str, Any]:
    """A closed loop on one cheap route: the baseline the load gate compares against."""
    spec = Spec(raw)
    p = spec.params
    recorder = spec.recorder()
    stop_at = time.monotonic() + p["warmup"] + p["duration"]

    async def worker() -> None:
        client = spec.client()
        try:
            while time.monotonic() < stop_at:
                await recorder.call(p.get("kind", "GET " + p["path"]), client, "GET", p["path"])
        finally:
            client.close()

    await asyncio.gather(window(recorder, p), *(worker() for _ in range(p["concurrency"])))
    return recorder.as_json()


async def _prepare_tokens(spec: Spec, users: list[User], concurrency: int = 50) -> None:
    """Setup, not measured: an ACTIVE queue token for every user. All take their places
    first, then each is polled until admitted, so nobody waits out a Retry-After alone."""
    recorder = Recorder()

    async def each(step: Callable[[BookingApi, User], Coroutine[Any, Any, Any]]) -> None:
        pending = iter(users)

        async def worker() -> None:
            api = BookingApi(spec.client(), recorder, concert_id=spec.params["concert_id"])
            try:
                for user in pending:
                    await step(api, user)
            finally:
                api.client.close()

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(users)))))

    async def until_active(api: BookingApi, user: User) -> None:
        ticket = await api.poll_token(user)
        while ticket["status"] != "ACTIVE":
            await asyncio.sleep(0.05)
            ticket = await api.poll_token(user)

    await each(BookingApi.issue_token)
    await each(until_active)


async def holdpay(raw: dict[str, Any]) -> dict[str, Any]:
    """Hold + pay by prepared users (points and an ACTIVE token each, made beforehand):
    `concurrency` connections, each taking the next user, who holds a seat and pays once."""
    spec = Spec(raw)
    p = spec.params
    users = spec.users(p["prefix"], p["users"])
    await _prepare_tokens(spec, users)
    recorder = spec.recorder()
    failures: Counter[str] = Counter()
    pending = iter(enumerate(users))
    seats = p["seats_per_schedule"]
    stop_at = time.monotonic() + p["warmup"] + p["duration"]

    async def connection() -> None:
        api = BookingApi(spec.client(), recorder, concert_id=p["concert_id"])
        try:
            for index, user in pending:
                if time.monotonic() >= stop_at:
                    return
                schedule_id, seat_no = p["schedules"][index // seats], index % seats + 1
                status, held = await api.hold(user, schedule_id, seat_no)
                if status != 201:
                    failures[f"hold {status}"] += 1
                    continue
                status, _ = await api.pay(user, held["id"])
                if status != 201:
                    failures[f"pay {status}"] += 1
                    continue
                recorder.count("payments")
        finally:
            api.client.close()

    await asyncio.gather(window(recorder, p), *(connection() for _ in range(p["concurrency"])))
    return {**recorder.as_json(), "failures": dict(failures),
            "users_left": sum(1 for _ in pending)}


FLOWS: dict[str, Flow] = {"payment": payment, "rush": rush, "queue": queue, "hello": hello,
                          "holdpay": holdpay}
