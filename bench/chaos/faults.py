"""The faults a chaos run injects, each an action against processes, servers or providers.

Every fault is named, so a short run (tests/e2e/test_chaos.py) can take a subset. A
fault's action returns once it is injected; what undoes it later (a restart, a thaw)
runs in the background, so the customers keep arriving on a process that is down or a
server that is frozen. `Faults.pending` holds those tasks; the run waits for them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.client import Customers
from bench.chaos.ledger import database_facts
from bench.chaos.system import CONSUMERS, WORKERS, System
from services.common.kafka import KafkaSettings, ensure_topics, system_topics

Action = Callable[[], Awaitable[None]]
Say = Callable[[str], None]
# The API's seat-lock lease (services/booking/adapters/seat_locks.py): Redis frozen longer
# than this lets a lock run out under a hold still being written.
SEAT_LOCK_LEASE_SECONDS = 10.0


@dataclass(frozen=True)
class Fault:
    name: str
    at: float  # share of the booking window
    what: str
    action: Action
    ready: Callable[[], bool] = lambda: True  # waited for (briefly) before the injection


@dataclass
class Faults:
    system: System
    customers: Customers
    say: Say
    elapsed: Callable[[], float]
    busy_timeout: float = 10.0
    refused_seats: list[int] = field(default_factory=list)
    pending: list[asyncio.Task[None]] = field(default_factory=list)
    republished: int = 0
    before_broker_restart: dict[str, int] = field(default_factory=dict)  # database facts
    recovered: dict[str, float] = field(default_factory=dict)  # server -> seconds to answer again
    paying_at_kill: dict[str, int] = field(default_factory=dict)  # API part -> payments it had

    def timeline(self) -> list[Fault]:
        first = {kind: self.system.of_kind(kind)[0].name for kind in ("api", "relay", *WORKERS)}
        last = {kind: self.system.of_kind(kind)[-1].name for kind in ("api", "relay", *WORKERS)}
        workers = ("relay", *WORKERS)
        lease = SEAT_LOCK_LEASE_SECONDS
        return [
            Fault("kakao-down", 0.04, "Kakao answers 503 (SMS takes over)",
                  self.provider("kakao", mode="error", status=503)),
            Fault("relay-kill", 0.07, "SIGKILL relay", self.kill([first["relay"]])),
            Fault("venue-down", 0.10, "venue answers 503 to everyone",
                  self.provider("venue", mode="error", status=503)),
            self.kill_api_paying("api-kill", 0.13, first["api"]),
            Fault("venue-back", 0.16, "venue back (still refusing a few seats)", self.refuse_some_seats),
            Fault("kakao-back", 0.19, "Kakao back", self.provider("kakao", mode="ok")),
            Fault("broker-restart", 0.22, "restart the broker (memory-only: everything on it is lost)",
                  self.restart_broker),
            Fault("postgres-crash", 0.28, "SIGKILL PostgreSQL and every backend, restart: crash recovery",
                  self.crash_postgres),
            Fault("providers-down", 0.32, "Kakao and SMS answer 503: no channel left",
                  self.providers(mode="error", status=503)),
            Fault("postgres-freeze", 0.36, "freeze PostgreSQL (SIGSTOP) 12 s: pools run dry, then SIGCONT",
                  self.freeze("postgres", 12.0)),
            Fault("providers-up", 0.42, "Kakao and SMS back", self.providers(mode="ok")),
            Fault("kakao-slow", 0.45, "Kakao answers after 3 s, past its 2 s timeout",
                  self.provider("kakao", mode="ok", delay_seconds=3.0)),
            Fault("redis-restart", 0.50, "restart Redis (the waiting room is lost)", self.restart_redis),
            Fault("kakao-fast", 0.54, "Kakao answers at once again", self.provider("kakao", mode="ok")),
            Fault("workers-kill", 0.57, "SIGKILL saga, notifier, token-expiry",
                  self.kill([first[kind] for kind in WORKERS])),
            Fault("redis-freeze", 0.61,
                  f"freeze Redis {lease + 4:.0f} s, past the {lease:.0f} s seat-lock lease",
                  self.freeze("redis", lease + 4)),
            Fault("broker-freeze", 0.70, "freeze the broker 8 s", self.freeze("broker", 8.0)),
            Fault("all-kill", 0.77, "SIGKILL relay, saga, notifier, token-expiry",
                  self.kill([last[kind] for kind in workers])),
            self.kill_api_paying("api-kill-again", 0.82, last["api"]),
            Fault("relay-kill-again", 0.88, "SIGKILL relay", self.kill([first["relay"]])),
        ]

    def later(self, after: float, what: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(after)
            await what()

        self.pending.append(asyncio.create_task(run()))

    # --- processes ---------------------------------------------------------------

    def kill(self, names: list[str], down_for: float = 3.0) -> Action:
        async def act() -> None:
            for name in names:
                self.system.parts[name].kill()

            async def come_back() -> None:
                for name in names:
                    self.system.parts[name].start()
                self.say(f"restarted {', '.join(names)}")

            self.later(down_for, come_back)

        return act

    def kill_api_paying(self, fault: str, at: float, name: str) -> Fault:
        """SIGKILL one API process while it serves payments. PostgreSQL is frozen under a
        payment in flight: one still unanswered half a second later is surely inside the
        API (answered and unread, it would test nothing), and one whose COMMIT is on its
        way commits after the API is gone: the client's retry must find it and get it
        back. A payment answered before the freeze took hold: thaw, and try again."""
        part = self.system.parts[name]
        url = f"http://127.0.0.1:{part.env['BOOKING_PORT']}"
        postgres, kill = self.system.servers["postgres"], self.kill([name])

        def paying() -> int:
            return self.customers.in_flight("pay", url)

        # PostgreSQL's processes are read before the payment is awaited: its transaction
        # takes milliseconds, reading /proc as many on a busy machine.
        aim: dict[str, Any] = {}

        def fresh_payment() -> bool:
            """A payment sent since PostgreSQL's processes were read, and not answered yet."""
            if not aim:
                aim.update(pids=postgres.pids(), started=self.customers.started["pay", url])
            return self.customers.started["pay", url] > aim["started"] and paying() > 0

        async def act() -> None:
            deadline = time.monotonic() + self.busy_timeout
            while True:
                await until(fresh_payment, max(0.0, deadline - time.monotonic()), interval=0)
                postgres.send(signal.SIGSTOP, aim["pids"])
                postgres.send(signal.SIGSTOP)  # and any backend started since
                aim.clear()
                try:
                    await asyncio.sleep(0.5)  # a request on the wire reaches the API meanwhile
                    if paying() > 0 or time.monotonic() > deadline:
                        self.paying_at_kill[name] = paying()
                        self.say(f"{paying()} payments in flight on {name}, PostgreSQL frozen")
                        await kill()
                        return
                finally:
                    postgres.send(signal.SIGCONT)

        return Fault(fault, at, f"SIGKILL {name} mid-payment (clients retry, same key)", act,
                     ready=fresh_payment)

    # --- servers -------------------------------------------------------------------

    def freeze(self, server: str, seconds: float) -> Action:
        """SIGSTOP the server's processes: connections stay open and nothing answers."""
        async def act() -> None:
            self.system.servers[server].send(signal.SIGSTOP)

            async def thaw() -> None:
                self.system.servers[server].send(signal.SIGCONT)
                self.say(f"{server} thawed after {seconds:.0f}s")

            self.later(seconds, thaw)

        return act

    async def crash_postgres(self, down_for: float = 2.0) -> None:
        """SIGKILL as the kernel's OOM killer would: no checkpoint, recovery from the WAL."""
        server = self.system.servers["postgres"]
        server.kill()

        async def come_back() -> None:
            began = time.monotonic()
            server.launch()
            if not await until(lambda: asyncio.to_thread(server.answers), 60.0):
                raise RuntimeError(f"PostgreSQL did not recover: see {server.log_path}")
            self.recovered["postgres"] = time.monotonic() - began
            self.say(f"PostgreSQL recovered and answers after {self.recovered['postgres']:.1f}s")

        self.later(down_for, come_back)

    async def restart_redis(self) -> None:
        self.system.restart_server("redis")

    async def restart_broker(self) -> None:
        """What an operator does after the broker lost its log (see docs/RUNBOOK.md): the
        broker's clients stopped, topics created, the clients started again, then republish
        what was published meanwhile."""
        system = self.system
        facts, _ = await database_facts(system.env["DATABASE_URL"])
        self.before_broker_restart = {name: facts[name] for name in ("published", "saga_consumed")}
        # A running client's metadata request auto-creates a topic it names, with the
        # broker's default partition count (a consumer asks again and again while its
        # broker is away), and a consumer skips offsets below those it read before.
        clients = [part for kind in ("relay", *CONSUMERS) for part in system.of_kind(kind) if part.alive()]
        for part in clients:
            part.kill()
        system.restart_server("broker")
        settings = KafkaSettings(kafka_bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"])
        await ensure_topics(settings, system_topics())
        for part in clients:
            part.start()
        await self.until_ready([part.name for part in clients])
        window = int(self.elapsed()) + 60
        done = await asyncio.to_thread(system.command, "workers.outbox_relay", "republish",
                                       "--since", f"{window}s", "--json")
        assert done.returncode == 0, done.stderr
        self.republished += json.loads(done.stdout)["total"]
        self.say(f"consumers back; booking-relay republish --since {window}s re-queued "
                 f"{self.republished} events")

    async def until_ready(self, names: list[str], within: float = 90.0) -> None:
        if not await until(lambda: all(self.system.parts[name].ready() for name in names), within):
            raise RuntimeError(f"not ready after {within:.0f}s: {names}")

    # --- providers -----------------------------------------------------------------

    def provider(self, name: str, **behaviour: Any) -> Action:
        async def act() -> None:
            self.system.behave(name, **behaviour)

        return act

    def providers(self, **behaviour: Any) -> Action:
        async def act() -> None:
            for name in ("kakao", "sms"):
                self.system.behave(name, **behaviour)

        return act

    async def refuse_some_seats(self) -> None:
        self.system.behave("venue", mode="error", status=422, code="UNKNOWN_SEAT",
                           for_seats=self.refused_seats)


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float,
                interval: float = 0.1) -> bool:
    """Poll `condition` until it holds (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
