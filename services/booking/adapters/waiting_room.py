"""The waiting queue in Redis: every state change is one atomic Lua script."""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.booking.adapters.metrics import SEAT_LOCK_ACQUIRED, SEAT_LOCK_CONTENDED, RedisTimer
from services.booking.domain.waiting_queue import QueueTicket, eta_seconds
from services.common.redis_multiplex import MultiplexedRedis, Script

LUA = Path(__file__).parent / "lua"


@dataclass(frozen=True)
class QueueKeys:
    """Every key of one queue shares a hash tag, so Redis Cluster keeps it in one slot."""

    namespace: str

    def key(self, name: str) -> str:
        return f"queue:{{{self.namespace}}}:{name}"

    @property
    def line(self) -> list[str]:
        return [self.key("waiting"), self.key("seen"), self.key("active")]


@dataclass(frozen=True)
class TokenState:
    user_id: str
    ticket: QueueTicket


@dataclass(frozen=True)
class AdmissionStep:
    admitted: int
    expired: int
    abandoned: int
    active: int
    waiting: int


def _script(redis: MultiplexedRedis, name: str) -> Script:
    return redis.register_script((LUA / f"{name}.lua").read_text())


TIMED_ISSUE = RedisTimer("queue_issue")
TIMED_STATUS = RedisTimer("queue_status")
TIMED_ADMIT = RedisTimer("queue_admit")
TIMED_EXPIRE = RedisTimer("queue_expire")
TIMED_LOCK = RedisTimer("seat_lock_acquire")
TIMED_UNLOCK = RedisTimer("seat_lock_release")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _expiry(score: Any) -> datetime | None:
    return datetime.fromtimestamp(int(float(score)) / 1000, UTC) if score else None


class WaitingRoom:
    def __init__(self, redis: MultiplexedRedis, admit_per_second: int, namespace: str = "main") -> None:
        self._redis = redis
        self._admit_per_second = admit_per_second
        self._keys = QueueKeys(namespace)
        self._token_prefix = self._keys.key("token:")
        self._user_prefix = self._keys.key("user:")
        self._issue = _script(redis, "issue_token")
        self._status = _script(redis, "token_status")
        self._admit = _script(redis, "admit")
        self._expire = _script(redis, "expire_token")

    def _ticket(self, token: str, status: str, position: int, expires: Any) -> QueueTicket:
        return QueueTicket(
            token=token, status=status, position=position,
            eta_seconds=eta_seconds(position, self._admit_per_second),
            expires_at=_expiry(expires),
        )

    async def issue(self, user_id: str) -> tuple[QueueTicket, bool]:
        """The user's live token (created=False) or a new one at the back (created=True)."""
        token, status, position, expires, created = await TIMED_ISSUE.time(self._issue(
            keys=[self._keys.key("seq"), *self._keys.line, self._user_prefix + user_id],
            args=[secrets.token_urlsafe(24), user_id, _now_ms(), self._token_prefix],
        ))
        return self._ticket(token, status, int(position), expires), bool(created)

    async def state(self, token: str, *, touch: bool = True) -> TokenState | None:
        found = await TIMED_STATUS.time(self._status(
            keys=self._keys.line, args=[token, _now_ms(), self._token_prefix, int(touch)]
        ))
        if not found:
            return None
        user_id, status, position, expires = found
        return TokenState(user_id, self._ticket(token, status, int(position), expires))

    async def admit(
        self, max_active: int, active_ttl_seconds: int, grace_seconds: int, batch: int = 1000
    ) -> AdmissionStep:
        result = await TIMED_ADMIT.time(self._admit(
            keys=[*self._keys.line, self._keys.key("bucket")],
            args=[_now_ms(), max_active, self._admit_per_second, active_ttl_seconds * 1000,
                  grace_seconds * 1000, self._token_prefix, self._user_prefix, batch],
        ))
        return AdmissionStep(*(int(value) for value in result))

    async def expire(self, token: str) -> None:
        await TIMED_EXPIRE.time(
            self._expire(keys=self._keys.line, args=[token, self._token_prefix, self._user_prefix]))

    async def active_count(self) -> int:
        return int(await self._redis.execute("ZCOUNT", self._keys.key("active"), _now_ms(), "+inf"))


class SeatLocks:
    """Per-seat Redis locks that turn away a crowd early; the database still decides."""

    def __init__(self, redis: MultiplexedRedis, lease_ms: int = 10_000) -> None:
        self._redis = redis
        self._lease_ms = lease_ms
        self._release = _script(redis, "release_lock")

    @staticmethod
    def key(schedule_id: object, seat_no: int) -> str:
        return f"seatlock:{{{schedule_id}}}:{seat_no}"

    async def acquire(self, key: str) -> str | None:
        owner = secrets.token_hex(8)
        acquired = await TIMED_LOCK.time(self._redis.execute("SET", key, owner, "NX", "PX", self._lease_ms))
        (SEAT_LOCK_ACQUIRED if acquired else SEAT_LOCK_CONTENDED).inc()
        return owner if acquired else None

    async def release(self, key: str, owner: str) -> None:
        await TIMED_UNLOCK.time(self._release(keys=[key], args=[owner]))
