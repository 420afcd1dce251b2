"""Every concert's waiting room in Redis: each state change is one atomic Lua script.

A room's keys share the hash tag {room:<concert id>}, so on Redis Cluster each room lives
in one slot (its scripts stay on one node) and the rooms spread over the nodes.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from services.booking.adapters.metrics import RedisTimer
from services.booking.domain.errors import QueueNotOpen
from services.booking.domain.waiting_queue import QueueTicket, eta_seconds
from services.booking.domain.waiting_room import Lifetimes, Room, concert_of_token, new_token
from services.common.redis_client import RedisClient, Script

LUA = Path(__file__).parent / "lua"


class RoomUnknown(Exception):
    """Redis holds no policy for this room (never published, or Redis lost it)."""


@dataclass(frozen=True)
class RoomKeys:
    namespace: str
    concert_id: UUID

    def key(self, name: str) -> str:
        return f"queue:{self.namespace}:{{room:{self.concert_id}}}:{name}"

    @property
    def token_prefix(self) -> str:
        return self.key("token:")

    @property
    def user_prefix(self) -> str:
        return self.key("user:")


@dataclass(frozen=True)
class TokenState:
    user_id: str
    concert_id: UUID
    ticket: QueueTicket
    admit_per_second: int  # the room's rate now, which paces the holder's polls


@dataclass(frozen=True)
class Issued:
    ticket: QueueTicket
    created: bool  # False: the user's live token, again
    admit_per_second: int


@dataclass(frozen=True)
class AdmissionStep:
    admitted: int
    expired: int
    abandoned: int
    active: int
    waiting: int
    released: int  # pre-queue tokens given their random places in this step
    max_active: int


@dataclass(frozen=True)
class RoomCounts:
    waiting: int
    active: int


TIMED_ISSUE = RedisTimer("queue_issue")
TIMED_STATUS = RedisTimer("queue_status")
TIMED_ADMIT = RedisTimer("queue_admit")
TIMED_EXPIRE = RedisTimer("queue_expire")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(moment: datetime | None) -> int | str:
    return int(moment.timestamp() * 1000) if moment is not None else ""


def _expiry(score: Any) -> datetime | None:
    return datetime.fromtimestamp(int(float(score)) / 1000, UTC) if score else None


def _ticket(token: str, concert_id: UUID, status: str, position: Any, expires: Any,
            rate: Any) -> QueueTicket:
    place = int(position)
    at = None if place < 0 else place
    return QueueTicket(token=token, concert_id=str(concert_id), status=status, position=at,
                       eta_seconds=eta_seconds(at, int(rate)), expires_at=_expiry(expires))


class WaitingRooms:
    def __init__(self, redis: RedisClient, lifetimes: Lifetimes, namespace: str = "main") -> None:
        self._redis = redis
        self._lifetimes = lifetimes
        self._namespace = namespace
        self._pending = f"queue:{namespace}:rooms-waiting"
        self._scripts: dict[str, Script] = {
            name: redis.register_script((LUA / f"{name}.lua").read_text())
            for name in ("put_room", "issue_token", "token_status", "admit", "expire_token", "room_counts")}

    def keys(self, concert_id: UUID) -> RoomKeys:
        return RoomKeys(self._namespace, concert_id)

    async def publish(self, room: Room) -> None:
        """Install the room's policy, unless Redis already has a newer version of it."""
        policy, keys = room.policy, self.keys(room.concert_id)
        await self._scripts["put_room"](keys=[keys.key("config")], args=[
            room.version, policy.admit_per_second, policy.max_active,
            _ms(policy.queue_opens_at), _ms(policy.sale_opens_at), int(policy.paused)])

    async def issue(self, concert_id: UUID, user_id: str) -> Issued:
        """The user's live token in this room (created=False) or a new one (created=True)."""
        keys = self.keys(concert_id)
        found = await TIMED_ISSUE.time(self._scripts["issue_token"](
            keys=[keys.key("config"), keys.key("seq"), keys.key("waiting"), keys.key("seen"),
                  keys.key("active"), keys.key("prequeue"), keys.user_prefix + user_id],
            args=[new_token(concert_id), user_id, _now_ms(), keys.token_prefix, self._lifetimes.keep_ms],
        ))
        if found[0] == "NO_ROOM":
            raise RoomUnknown(concert_id)
        if found[0] == "CLOSED":
            raise QueueNotOpen(f"the waiting room of concert {concert_id} is not open yet")
        token, status, position, expires, created, rate = found
        if created:
            # After the script, never before: admission drops a room from this set only
            # after seeing it empty, and then looks again (see rooms_with_waiters).
            await self._redis.execute("SADD", self._pending, str(concert_id))
        return Issued(_ticket(token, concert_id, status, position, expires, rate), bool(created), int(rate))

    async def state(self, token: str, *, touch: bool = True) -> TokenState | None:
        concert_id = concert_of_token(token)
        if concert_id is None:
            return None
        keys = self.keys(concert_id)
        found = await TIMED_STATUS.time(self._scripts["token_status"](
            keys=[keys.key("config"), keys.key("waiting"), keys.key("seen"), keys.key("active"),
                  keys.key("prequeue")],
            args=[token, _now_ms(), keys.token_prefix, int(touch), self._lifetimes.keep_ms,
                  keys.user_prefix],
        ))
        if not found:
            return None
        user_id, status, position, expires, rate = found
        ticket = _ticket(token, concert_id, status, position, expires, rate)
        return TokenState(user_id, concert_id, ticket, int(rate))

    async def admit(self, concert_id: UUID, seed: int, batch: int = 1000) -> AdmissionStep | None:
        """One admission step of one room; None when Redis holds no policy for it."""
        keys, lifetimes = self.keys(concert_id), self._lifetimes
        result = await TIMED_ADMIT.time(self._scripts["admit"](
            keys=[keys.key("config"), keys.key("waiting"), keys.key("seen"), keys.key("active"),
                  keys.key("prequeue"), keys.key("bucket")],
            args=[_now_ms(), lifetimes.active_ttl_seconds * 1000, lifetimes.grace_seconds * 1000,
                  keys.token_prefix, keys.user_prefix, batch, seed, lifetimes.keep_ms],
        ))
        return AdmissionStep(*(int(value) for value in result)) if result else None

    async def expire(self, token: str) -> None:
        concert_id = concert_of_token(token)
        if concert_id is None:
            return
        keys = self.keys(concert_id)
        await TIMED_EXPIRE.time(self._scripts["expire_token"](
            keys=[keys.key("waiting"), keys.key("seen"), keys.key("active"), keys.key("prequeue")],
            args=[token, keys.token_prefix, keys.user_prefix]))

    async def counts(self, concert_id: UUID) -> RoomCounts:
        keys = self.keys(concert_id)
        waiting, active = await self._scripts["room_counts"](
            keys=[keys.key("waiting"), keys.key("prequeue"), keys.key("active")], args=[_now_ms()])
        return RoomCounts(int(waiting), int(active))

    async def rooms_with_waiters(self) -> list[UUID]:
        return [UUID(member) for member in await self._redis.execute("SMEMBERS", self._pending)]

    async def forget_if_empty(self, concert_id: UUID) -> None:
        """Drop an empty room from the admission round; a token issued meanwhile brings it back."""
        await self._redis.execute("SREM", self._pending, str(concert_id))
        if (await self.counts(concert_id)).waiting:
            await self._redis.execute("SADD", self._pending, str(concert_id))
