"""The chaos run: book tickets while parts die and dependencies fail, recover, count.

Customers arrive evenly over the booking window, every `rival_every`th seat wanted by
two of them at once; faults (bench/chaos/faults.py) land at fixed fractions of it,
each on at least `min_in_flight` bookings in flight. The window's clock stops while a
fault is being injected (bench/chaos/timeline.py), so a slow injection delays the
customers after it too. Among the faults:
- SIGKILL of the relay, of every consumer worker and of an API process mid-payment
  (restarted a few seconds later; the clients retry with the same Idempotency-Key);
- PostgreSQL SIGKILLed with every backend and restarted (crash recovery), and frozen
  (SIGSTOP) long enough for the pools to run dry; Redis frozen past the seat-lock lease
  (the database alone keeps each seat sold once); the broker frozen;
- Kakao answering 5xx (its breaker opens, SMS delivers), or slower than its timeout
  (the notifier settles with Kakao before it tries SMS: no second message), later
  Kakao and SMS both down (notifications are parked in the DLQ);
- the venue answering 5xx for everyone for a while (sagas refund), and 4xx for a few
  seats all along (the venue refuses them: compensation);
- Redis restarted empty (the waiting room is gone: clients queue again);
- the broker restarted: Tansu keeps nothing, so every topic, offset and dead letter is
  gone. The consumers are restarted and `booking-relay republish` re-queues the rows
  published during the run; idempotent consumers absorb the repeats.
Then the providers recover, the system settles, `booking-dlq replay --all` re-drives
what was parked, the system settles again, and the ledger is built.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console

from bench.chaos.client import Customers, Purchase
from bench.chaos.faults import Fault, Faults, until
from bench.chaos.ledger import (
    Evidence,
    Ledger,
    build,
    consumer_offsets,
    database_facts,
    payments_by_user,
)
from bench.chaos.system import CONSUMERS, System
from bench.chaos.timeline import Clock, Landing, Traffic
from services.common import topics

TOPICS = {"saga": topics.PAYMENTS, "notifier": topics.NOTIFICATIONS}


@dataclass
class Plan:
    tickets: int = 2000
    seconds: float = 60.0
    refused_every: int = 25  # the venue refuses (4xx) every Nth seat
    rival_every: int = 10  # every Nth seat is wanted by two customers at once
    settle_timeout: float = 240.0
    busy_timeout: float = 10.0  # how long a fault waits for `min_in_flight` bookings
    min_in_flight: int = 20  # a fault that lands on fewer tested too little
    faults: frozenset[str] | None = None  # names from bench/chaos/faults.py; None: all


@dataclass
class Run:
    system: System
    plan: Plan
    console: Console
    clock: Clock = field(default_factory=Clock)
    traffic: Traffic = field(default_factory=Traffic)
    landings: list[Landing] = field(default_factory=list)
    faults: Faults | None = None  # once the run began: what the faults did

    def elapsed(self, at: float | None = None) -> float:
        """Wall seconds since the run started (until `at`, a monotonic time)."""
        return (time.monotonic() if at is None else at) - self.clock.started

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{self.elapsed():6.1f}s[/] {message}", highlight=False)

    async def execute(self) -> Ledger:
        self.clock = Clock()  # the window opens now, with the system up
        customers = Customers(self.system.api_urls, self.system.env["AUTH_JWT_SECRET"],
                              hold_ttl=float(self.system.env["HOLD_TTL_SECONDS"]))
        try:
            await customers.create_schedule(self.plan.tickets)
            refused = list(range(3, self.plan.tickets + 1, self.plan.refused_every))
            faults = self.faults = Faults(self.system, customers, self.say, self.elapsed,
                                          self.plan.busy_timeout, refused)
            await faults.refuse_some_seats()
            injecting = asyncio.create_task(self.inject_all(faults))
            purchases = await self.book(customers)
            await injecting
            await asyncio.gather(*faults.pending)
        finally:
            customers.close()
        self.say(f"booked: {sum(p.payment is not None for p in purchases)} paid, "
                 f"{len(customers.outbid)} lost their seat to a rival; "
                 f"client retries: {dict(customers.retries)}")
        self.report_landings()
        for purchase in customers.gave_up:
            self.say(f"[bold red]given up[/] seat {purchase.seat_no} ({purchase.user}): {purchase.failure}")
        await faults.providers(mode="ok")()
        await faults.refuse_some_seats()  # and only those, as all along
        await self.settle(allow_parked=True)
        parked, replayed = await self.replay_dead_letters()
        await self.settle(allow_parked=False)
        return build(await self.evidence(purchases, customers, faults, parked, replayed))

    async def book(self, customers: Customers) -> list[Purchase]:
        """Customers arrive evenly over the window (on its clock), each buying one seat;
        on every `rival_every`th seat a rival arrives at the same moment."""
        plan = self.plan
        gap = plan.seconds / plan.tickets

        async def arrive(seat_no: int, rival: bool) -> Purchase:
            await self.clock.until(seat_no * gap)
            deadline = time.monotonic() + plan.seconds + plan.settle_timeout
            return await self.traffic.booking(customers.buy(seat_no, deadline, rival=rival))

        seats = range(1, plan.tickets + 1)
        rivals = [arrive(seat, True) for seat in seats if seat % plan.rival_every == 0]
        self.traffic.coming(len(seats) + len(rivals))
        return list(await asyncio.gather(*(arrive(seat, False) for seat in seats), *rivals))

    async def inject_all(self, faults: Faults) -> None:
        for fault in faults.timeline():
            if self.plan.faults is None or fault.name in self.plan.faults:
                await self.inject(fault)

    async def inject(self, fault: Fault) -> None:
        """At its share of the window, on bookings in flight; the clock stops meanwhile."""
        planned = fault.at * self.plan.seconds
        await self.clock.until(planned)
        await self.traffic.busy(self.plan.min_in_flight, self.plan.busy_timeout)
        # Polled on every turn of the loop: a request in flight is seen before its answer.
        await until(fault.ready, self.plan.busy_timeout, interval=0)
        arrived, in_flight, began = self.traffic.arrived, self.traffic.in_flight, time.monotonic()
        self.say(f"[bold yellow]fault[/] {fault.what} ({arrived}/{self.traffic.expected} customers "
                 f"arrived, {in_flight} bookings in flight)")
        with self.clock.stopped_while():
            await fault.action()
        self.landings.append(Landing(fault.name, fault.what, planned, self.elapsed(began), arrived,
                                     in_flight, time.monotonic() - began, self.traffic.in_flight,
                                     self.plan.min_in_flight))

    def report_landings(self) -> None:
        first, last = self.traffic.first, self.traffic.last
        span = (f"{self.elapsed(first):.1f}s to {self.elapsed(last):.1f}s"
                if first is not None and last is not None else "none")
        self.say(f"fault timing (customers arrived {span}; the window's clock stopped "
                 f"{self.clock.stopped:.1f}s for injections):")
        for landing in self.landings:
            verdict = "" if landing.hit else (f"  [bold red]fewer than {landing.needed} bookings "
                                              "in flight: tested too little[/]")
            self.console.print(
                f"  {landing.at:6.1f}s (window {landing.planned:5.1f}s) {landing.fault}: "
                f"{landing.arrived}/{self.traffic.expected} arrived, {landing.in_flight} in flight; "
                f"injected in {landing.took:.1f}s, {landing.in_flight_after} in flight after{verdict}",
                highlight=False)

    async def settle(self, allow_parked: bool) -> None:
        """Wait until nothing moves: all published, consumed, sagas closed, notifications done,
        spent tokens swept."""
        deadline, calm = time.monotonic() + self.plan.settle_timeout, 0
        while calm < 2:
            facts, _ = await database_facts(self.system.env["DATABASE_URL"])
            offsets = await self.offsets()
            busy = {
                "unpublished": facts["unpublished"], "open sagas": facts["sagas_open"],
                "payments without saga": facts["payments_without_saga"],
                "unconsumed notifications": facts["notifications_unconsumed"],
                "open notifications": 0 if allow_parked else facts["notifications_open"],
                "spent tokens waiting": facts["tokens_waiting"],
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

    async def evidence(self, purchases: list[Purchase], customers: Customers, faults: Faults,
                       parked: int, replayed: int) -> Evidence:
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
            client_paid={p.user: str(p.payment["id"]) for p in purchases if p.payment is not None},
            client_users={p.user for p in purchases}, client_gave_up=len(customers.gave_up),
            client_outbid=len(customers.outbid), rival_seats=self.plan.tickets // self.plan.rival_every,
            db_payments=await payments_by_user(system.env["DATABASE_URL"]),
            payments_retried=customers.payments_retried, republished=faults.republished,
            dlq_parked=parked, dlq_replayed=replayed, dlq_left=await self.dead_letters(),
            reconcile=json.loads(reconcile.stdout or "{}"), faults=self.landings,
        )
