"""The chaos run: book tickets while parts die and dependencies fail, recover, count.

Customers arrive evenly over the booking window; faults land at fixed fractions of it,
each on bookings in flight. The window's clock stops while a fault is being injected
(bench/chaos/timeline.py), so a slow injection delays the customers after it too. The
faults:
- SIGKILL of the relay and of every consumer worker (restarted a few seconds later);
- Kakao answering 5xx (its breaker opens, SMS delivers), later Kakao and SMS both
  (notifications are parked in the DLQ);
- the venue answering 5xx for everyone for a while (sagas refund), and 4xx for a few
  seats all along (the venue refuses them: compensation);
- Redis restarted empty (the waiting room is gone: clients queue again);
- the broker restarted: Tansu keeps nothing, so every topic, offset and dead letter is
  gone. The consumers are restarted (faust drops messages below the offsets it read
  before, which a new, empty log starts again from 0), and `booking-relay republish`
  re-queues the rows published during the run; idempotent consumers absorb the repeats.
Then the providers recover, the system settles, `booking-dlq replay --all` re-drives
what was parked, the system settles again, and the ledger is built.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from bench.chaos.client import Customers, Purchase
from bench.chaos.ledger import Evidence, Ledger, build, consumer_offsets, database_facts
from bench.chaos.system import CONSUMERS, System
from bench.chaos.timeline import Clock, Landing, Traffic
from services.common import topics
from workers.common.kafka import KafkaSettings, ensure_topics, system_topics

TOPICS = {"saga": topics.PAYMENTS, "notifier": topics.NOTIFICATIONS,
          "token-expiry": topics.QUEUE_TOKENS}
Action = Callable[[], Awaitable[None]]


@dataclass
class Plan:
    tickets: int = 200
    seconds: float = 60.0
    refused_every: int = 25  # the venue refuses (4xx) every Nth seat
    settle_timeout: float = 240.0
    busy_timeout: float = 10.0  # how long a fault waits for a booking in flight


@dataclass
class Run:
    system: System
    plan: Plan
    console: Console
    clock: Clock = field(default_factory=Clock)
    traffic: Traffic = field(default_factory=Traffic)
    landings: list[Landing] = field(default_factory=list)
    republished: int = 0
    restarts: list[asyncio.Task[None]] = field(default_factory=list)

    def elapsed(self, at: float | None = None) -> float:
        """Wall seconds since the run started (until `at`, a monotonic time)."""
        return (time.monotonic() if at is None else at) - self.clock.started

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{self.elapsed():6.1f}s[/] {message}", highlight=False)

    async def execute(self) -> Ledger:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
            customers = Customers(http, self.system.api_urls, self.system.env["AUTH_JWT_SECRET"])
            await customers.create_schedule(self.plan.tickets)
            self.refuse_some_seats()
            faults = asyncio.create_task(self.inject_faults())
            purchases = await self.book(customers)
            await faults
            await asyncio.gather(*self.restarts)
        self.say(f"booked: {sum(p.payment is not None for p in purchases)} paid; "
                 f"client retries: {dict(customers.retries)}")
        self.report_landings()
        for purchase in customers.gave_up:
            self.say(f"[bold red]given up[/] seat {purchase.seat_no} ({purchase.user}): {purchase.failure}")
        for provider in ("kakao", "sms", "venue"):
            self.system.behave(provider, mode="ok")
        await self.settle(allow_parked=True)
        parked, replayed = await self.replay_dead_letters()
        await self.settle(allow_parked=False)
        return build(await self.evidence(purchases, customers, parked, replayed))

    async def book(self, customers: Customers) -> list[Purchase]:
        """Customers arrive evenly over the window (on its clock), each buying one seat."""
        plan = self.plan
        gap = plan.seconds / plan.tickets

        async def arrive(seat_no: int) -> Purchase:
            await self.clock.until(seat_no * gap)
            deadline = time.monotonic() + plan.seconds + plan.settle_timeout
            return await self.traffic.booking(customers.buy(seat_no, deadline))

        return list(await asyncio.gather(*(arrive(seat) for seat in range(1, plan.tickets + 1))))

    def refuse_some_seats(self) -> None:
        seats = list(range(3, self.plan.tickets + 1, self.plan.refused_every))
        self.system.behave("venue", mode="error", status=422, code="UNKNOWN_SEAT", for_seats=seats)

    async def inject_faults(self) -> None:
        last = {kind: self.system.of_kind(kind)[-1].name for kind in ("relay", *CONSUMERS)}
        first = {kind: self.system.of_kind(kind)[0].name for kind in ("relay", *CONSUMERS)}
        both = ("relay", *CONSUMERS)
        timeline: list[tuple[float, str, Action]] = [
            (0.04, "Kakao answers 503 (SMS takes over)", self.provider("kakao", mode="error", status=503)),
            (0.07, "SIGKILL relay", self.kill([first["relay"]])),
            (0.10, "venue answers 503 to everyone", self.provider("venue", mode="error", status=503)),
            (0.16, "venue back (still refusing a few seats)", self.venue_back),
            (0.20, "Kakao back", self.provider("kakao", mode="ok")),
            (0.22, "restart the broker (memory-only: everything on it is lost)", self.restart_broker),
            (0.30, "Kakao and SMS answer 503: no channel left", self.providers_down),
            (0.42, "Kakao and SMS back", self.providers_up),
            (0.48, "restart Redis (the waiting room is lost)", self.restart_redis),
            (0.55, "SIGKILL saga, notifier, token-expiry", self.kill([first[k] for k in CONSUMERS])),
            (0.72, "SIGKILL relay, saga, notifier, token-expiry", self.kill([last[k] for k in both])),
            (0.85, "SIGKILL relay", self.kill([first["relay"]])),
        ]
        for at, what, action in timeline:
            await self.inject(at * self.plan.seconds, what, action)

    async def inject(self, planned: float, what: str, action: Action) -> None:
        """At `planned` seconds of the window, on bookings in flight; the clock stops meanwhile."""
        await self.clock.until(planned)
        await self.traffic.busy(self.plan.busy_timeout)
        arrived, in_flight, began = self.traffic.arrived, self.traffic.in_flight, time.monotonic()
        self.say(f"[bold yellow]fault[/] {what} ({arrived}/{self.plan.tickets} customers arrived, "
                 f"{in_flight} bookings in flight)")
        with self.clock.stopped_while():
            await action()
        self.landings.append(Landing(what, planned, self.elapsed(began), arrived, in_flight,
                                     time.monotonic() - began, self.traffic.in_flight))

    def report_landings(self) -> None:
        first, last = self.traffic.first, self.traffic.last
        span = (f"{self.elapsed(first):.1f}s to {self.elapsed(last):.1f}s"
                if first is not None and last is not None else "none")
        self.say(f"fault timing (customers arrived {span}; the window's clock stopped "
                 f"{self.clock.stopped:.1f}s for injections):")
        for landing in self.landings:
            verdict = "" if landing.hit else "  [bold red]no booking in flight: tested nothing[/]"
            self.console.print(
                f"  {landing.at:6.1f}s (window {landing.planned:5.1f}s) {landing.fault}: "
                f"{landing.arrived}/{self.plan.tickets} arrived, {landing.in_flight} in flight; "
                f"injected in {landing.took:.1f}s, {landing.in_flight_after} in flight after{verdict}",
                highlight=False)

    def kill(self, names: list[str], down_for: float = 3.0) -> Action:
        async def act() -> None:
            for name in names:
                self.system.parts[name].kill()

            async def come_back() -> None:
                await asyncio.sleep(down_for)
                for name in names:
                    self.system.parts[name].start()
                self.say(f"restarted {', '.join(names)}")

            self.restarts.append(asyncio.create_task(come_back()))

        return act

    def provider(self, name: str, **behaviour: Any) -> Action:
        async def act() -> None:
            self.system.behave(name, **behaviour)

        return act

    async def providers_down(self) -> None:
        for name in ("kakao", "sms"):
            self.system.behave(name, mode="error", status=503)

    async def providers_up(self) -> None:
        for name in ("kakao", "sms"):
            self.system.behave(name, mode="ok")

    async def venue_back(self) -> None:
        self.refuse_some_seats()

    async def restart_redis(self) -> None:
        self.system.restart_server("redis")

    async def restart_broker(self) -> None:
        """What an operator does after the broker lost its log (see docs/RUNBOOK.md):
        topics first, then the consumers, then republish what was published meanwhile."""
        system = self.system
        system.restart_server("broker")
        # Before any client's metadata request auto-creates a topic with the broker's
        # default partition count (Tansu later replaces such a topic, and its messages).
        settings = KafkaSettings(kafka_bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"])
        await ensure_topics(settings, system_topics())
        # faust skips offsets below those it read before; a new, empty log starts at 0 again.
        consumers = [part for kind in CONSUMERS for part in system.of_kind(kind) if part.alive()]
        for part in consumers:
            part.kill()
            part.start()
        await self.until_ready([part.name for part in consumers])
        window = int(self.elapsed()) + 60
        done = await asyncio.to_thread(system.command, "workers.outbox_relay", "republish",
                                       "--since", f"{window}s", "--json")
        assert done.returncode == 0, done.stderr
        self.republished += json.loads(done.stdout)["total"]
        self.say(f"consumers back; booking-relay republish --since {window}s re-queued "
                 f"{self.republished} events")

    async def until_ready(self, names: list[str], within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        while not all(self.system.parts[name].ready() for name in names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {within:.0f}s: {names}")
            await asyncio.sleep(0.2)

    async def settle(self, allow_parked: bool) -> None:
        """Wait until nothing moves: all published, consumed, sagas closed, notifications done."""
        deadline, calm = time.monotonic() + self.plan.settle_timeout, 0
        while calm < 2:
            facts, _ = await database_facts(self.system.env["DATABASE_URL"])
            offsets = await self.offsets()
            busy = {
                "unpublished": facts["unpublished"], "open sagas": facts["sagas_open"],
                "payments without saga": facts["payments_without_saga"],
                "unconsumed notifications": facts["notifications_unconsumed"],
                "open notifications": 0 if allow_parked else facts["notifications_open"],
                **{f"{kind} lag": lag for kind, (_, lag) in offsets.items()},
            }
            busy = {name: count for name, count in busy.items() if count}
            calm = 0 if busy else calm + 1
            if time.monotonic() > deadline:
                self.say(f"[bold red]not settled after {self.plan.settle_timeout:.0f}s:[/] {busy}")
                return
            await asyncio.sleep(2.0)
        self.say("settled")

    async def offsets(self) -> dict[str, tuple[int, int]]:
        groups = {kind: (f"chaos-{part}", TOPICS[kind]) for kind, part in CONSUMERS.items()}
        return await consumer_offsets(self.system.env["KAFKA_BOOTSTRAP_SERVERS"], groups)

    async def replay_dead_letters(self) -> tuple[int, int]:
        await asyncio.sleep(3)  # the breakers' reset time: they let calls through again
        parked = await self.dead_letters()
        done = await asyncio.to_thread(self.system.command, "workers.dlq.cli", "replay", "--all", "--json")
        assert done.returncode == 0, done.stderr
        replayed = len(json.loads(done.stdout)["replayed"])
        self.say(f"booking-dlq replay --all: {parked} parked, {replayed} replayed")
        return parked, replayed

    async def dead_letters(self) -> int:
        done = await asyncio.to_thread(self.system.command, "workers.dlq.cli", "list", "--json")
        assert done.returncode == 0, done.stderr
        return len(json.loads(done.stdout)["messages"])

    async def evidence(self, purchases: list[Purchase], customers: Customers, parked: int,
                       replayed: int) -> Evidence:
        system = self.system
        facts, ids = await database_facts(system.env["DATABASE_URL"])
        offsets = await self.offsets()
        reconcile = await asyncio.to_thread(
            system.command, "services.booking.entrypoints.reconcile", "--json", "--grace", "0")
        return Evidence(
            facts=facts, ids=ids,
            calls={p: system.simulator(p, "calls")["items"] for p in ("venue", "kakao", "sms")},
            lag={kind: lag for kind, (_, lag) in offsets.items()},
            consumed={kind: committed for kind, (committed, _) in offsets.items()},
            outcomes={kind: Counter(str(r["outcome"]) for part in system.of_kind(kind)
                                    for r in part.records() if "outcome" in r)
                      for kind in ("saga", "notifier")},
            client_paid={str(p.payment["id"]) for p in purchases if p.payment is not None},
            client_gave_up=len(customers.gave_up), republished=self.republished,
            dlq_parked=parked, dlq_replayed=replayed, dlq_left=await self.dead_letters(),
            reconcile=json.loads(reconcile.stdout or "{}"), faults=self.landings,
        )
