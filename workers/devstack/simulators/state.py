"""What a provider simulator remembers: its behaviour switch, its calls, the ids it accepted.

The state is shared between the server's event loop (in its own thread when run
in-process) and whoever controls it, so every access goes through one lock.
"""

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["accepted", "duplicate", "failed", "unauthorized", "invalid"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "duplicate", "failed", "unauthorized", "invalid")


class Behaviour(BaseModel):
    """How the simulator answers the calls it matches; `times` limits it to the next N."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["ok", "error"] = "ok"
    status: int = Field(default=503, ge=400, le=599)
    code: str | None = None
    delay_seconds: float = Field(default=0.0, ge=0, le=120)
    retry_after: int | None = Field(default=None, ge=0)
    for_recipients: list[str] | None = None
    for_seats: list[int] | None = None
    times: int | None = Field(default=None, ge=1)

    def matches(self, recipient: str | None, seat: int | None) -> bool:
        if self.for_recipients is not None and recipient not in self.for_recipients:
            return False
        return self.for_seats is None or seat in self.for_seats


@dataclass(frozen=True)
class IncomingCall:
    method: str
    path: str
    headers: dict[str, str]
    body: object
    key: str | None
    recipient: str | None = None
    seat: int | None = None
    authorized: bool = True
    invalid: str | None = None


@dataclass(frozen=True)
class CallRecord:
    seq: int
    received_at: str
    method: str
    path: str
    headers: dict[str, str]
    body: object
    key: str | None
    outcome: Outcome
    status: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


def _default_code(status: int) -> str:
    if status == 429:
        return "RATE_LIMITED"
    return "PROVIDER_UNAVAILABLE" if status >= 500 else "REJECTED"


class SimulatorState:
    def __init__(self, *, max_records: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[CallRecord] = deque(maxlen=max_records)
        self._counts: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._seq = 0
        self._behaviour = Behaviour()
        self._remaining: int | None = None

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    def set_behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour
            self._remaining = behaviour.times

    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {outcome: self._counts[outcome] for outcome in OUTCOMES}
        return {**counts, "total": sum(counts.values())}

    def clear(self) -> None:
        """Forget calls, counts and accepted ids (a fresh provider); keep the behaviour."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
            self._seen.clear()

    def answer(self, call: IncomingCall, accepted: tuple[int, str]) -> Reply:
        """Decide the reply to `call` and record it, atomically.

        `accepted` is the provider's (status, label) for a call it takes.
        """
        with self._lock:
            outcome, reply = self._decide(call, accepted)
            self._seq += 1
            self._counts[outcome] += 1
            self._records.append(
                CallRecord(
                    seq=self._seq,
                    received_at=datetime.now(UTC).isoformat(),
                    method=call.method,
                    path=call.path,
                    headers=call.headers,
                    body=call.body,
                    key=call.key,
                    outcome=outcome,
                    status=reply.status,
                )
            )
            return reply

    def _decide(self, call: IncomingCall, accepted: tuple[int, str]) -> tuple[Outcome, Reply]:
        if not call.authorized:
            return "unauthorized", Reply(401, {"code": "UNAUTHORIZED"})
        if call.invalid is not None or call.key is None:
            return "invalid", Reply(400, {"code": "INVALID_REQUEST", "detail": call.invalid})
        behaviour = self._take_behaviour(call)
        delay = behaviour.delay_seconds if behaviour else 0.0
        if behaviour is not None and behaviour.mode == "error":
            headers = {}
            if behaviour.retry_after is not None:
                headers["Retry-After"] = str(behaviour.retry_after)
            body: dict[str, object] = {"code": behaviour.code or _default_code(behaviour.status)}
            return "failed", Reply(behaviour.status, body, headers, delay)
        # A real provider answers a repeated id with success again, without a second effect.
        duplicate = call.key in self._seen
        self._seen.add(call.key)
        accepted_status, label = accepted
        body = {"id": call.key, "status": label, "duplicate": duplicate}
        status = 200 if duplicate else accepted_status
        return ("duplicate" if duplicate else "accepted"), Reply(status, body, {}, delay)

    def _take_behaviour(self, call: IncomingCall) -> Behaviour | None:
        """The behaviour if it applies to this call, consuming one of its `times`."""
        behaviour = self._behaviour
        if behaviour == Behaviour() or not behaviour.matches(call.recipient, call.seat):
            return None
        if self._remaining is not None:
            if self._remaining == 0:
                return None
            self._remaining -= 1
        return behaviour
