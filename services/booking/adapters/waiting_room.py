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
KNOWN_ROOMS = 10_000  # rooms whose key names are kept


class RoomUnknown(Exception):
    """Redis holds no policy for this room (never published, or Redis lost it)."""


class RoomKeys:
    """The names of one room's keys, made once per room: every poll needs five of them."""

    def __init__(self, namespace: str, concert_id: UUID) -> None:
        self.namespace, self.concert_id = namespace, concert_id
        self.config, self.seq, self.waiting, self.seen, self.active, self.prequeue, self.bucket = (
            self.key(name) for name in ("config", "seq", "waiting", "seen", "active", "prequeue", "bucket"))
        self.token_prefix, self.user_prefix = self.key("token:"), self.key("user:")
        self.line = [self.waiting, self.seen, self.active, self.prequeue]

    def key(self, name: str) -> str:
        return f"queue:{self.namespace}:{{room:{self.concert_id}}}:{name}"


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
    admitting: int  # 1 when the sale is open and the room not paused, else 0


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
    return QueueTicket(token=token, concert_id=concert_id, status=status, position=at,
                       eta_seconds=eta_seconds(at, int(rate)), expires_at=_expiry(expires))


class WaitingRooms:
    def __init__(self, redis: RedisClient, lifetimes: Lifetimes, namespace: str = "main") -> None:
        self._redis = redis
        self._lifetimes = lifetimes
        self._namespace = namespace
        self._pending = f"queue:{namespace}:rooms-waiting"
        self._known: dict[str, RoomKeys] = {}  # by the concert id's hex, as tokens begin
        self._scripts: dict[str, Script] = {
            name: redis.register_script((LUA / f"{name}.lua").read_text())
            for name in ("put_room", "issue_token", "token_status", "admit", "expire_token", "room_counts")}

    def keys(self, concert_id: UUID) -> RoomKeys:
        found = self._known.get(concert_id.hex)
        if found is None:
            if len(self._known) >= KNOWN_ROOMS:
                self._known.clear()
            found = self._known[concert_id.hex] = RoomKeys(self._namespace, concert_id)
        return found

    def _keys_of_token(self, token: str) -> RoomKeys | None:
        """The room a token names (looked up by its concert prefix), None when it names none."""
        found = self._known.get(token[:32])
        if found is not None and token[32:33] == "." and len(token) > 33:
            return found
        concert_id = concert_of_token(token)
        return None if concert_id is None else self.keys(concert_id)

    async def publish(self, room: Room) -> None:
        """Install the room's policy, unless Redis already has a newer version of it."""
        policy, keys = room.policy, self.keys(room.concert_id)
        await self._scripts["put_room"](keys=[keys.config], args=[
            room.version, policy.admit_per_second, policy.max_active,
            _ms(policy.queue_opens_at), _ms(policy.sale_opens_at), int(policy.paused)])

    async def issue(self, concert_id: UUID, user_id: str) -> Issued:
        """The user's live token in this room (created=False) or a new one (created=True)."""
        keys = self.keys(concert_id)
        found = await TIMED_ISSUE.time(self._scripts["issue_token"](
            keys=[keys.config, keys.seq, keys.waiting, keys.seen, keys.active, keys.prequeue,
                  keys.user_prefix + user_id],
            args=[new_token(concert_id), user_id, _now_ms(), keys.token_prefix, self._lifetimes.keep_ms],
        ))
        if found[0] == "NO_ROOM":
            raise RoomUnknown(concert_id)
        if found[0] == "CLOSED":
            raise QueueNotOpen(f"the waiting room of concert {concert_id} is not open yet")
        token, status, position, expires, created, rate, first = found
        if first:
            # Only the first to wait in an empty room, after the script: admission drops a
            # room from this set only after a step found it empty, then looks again
            # (forget_if_empty), so a room with someone waiting is never left out.
            await self._redis.execute("SADD", self._pending, str(concert_id))
        return Issued(_ticket(token, concert_id, status, position, expires, rate), bool(created), int(rate))

    async def state(self, token: str, *, touch: bool = True) -> TokenState | None:
        keys = self._keys_of_token(token)
        if keys is None:
            return None
        found = await TIMED_STATUS.time(self._scripts["token_status"](
            keys=[keys.config, keys.waiting, keys.seen, keys.active, keys.prequeue],
            args=[token, _now_ms(), keys.token_prefix, int(touch), self._lifetimes.keep_ms,
                  keys.user_prefix],
        ))
        if not found:
            return None
        user_id, status, position, expires, rate = found
        ticket = _ticket(token, keys.concert_id, status, position, expires, rate)
        return TokenState(user_id, keys.concert_id, ticket, int(rate))

    async def admit(self, concert_id: UUID, seed: int, batch: int = 1000) -> AdmissionStep | None:
        """One admission step of one room; None when Redis holds no policy for it."""
        keys, lifetimes = self.keys(concert_id), self._lifetimes
        result = await TIMED_ADMIT.time(self._scripts["admit"](
            keys=[keys.config, keys.waiting, keys.seen, keys.active, keys.prequeue, keys.bucket],
            args=[_now_ms(), lifetimes.active_ttl_seconds * 1000, lifetimes.grace_seconds * 1000,
                  keys.token_prefix, keys.user_prefix, batch, seed, lifetimes.keep_ms],
        ))
        return AdmissionStep(*(int(value) for value in result)) if result else None

    async def expire(self, token: str) -> None:
        keys = self._keys_of_token(token)
        if keys is None:
            return
        await TIMED_EXPIRE.time(self._scripts["expire_token"](
            keys=keys.line,
            args=[token, keys.token_prefix, keys.user_prefix]))

    async def counts(self, concert_id: UUID) -> RoomCounts:
        keys = self.keys(concert_id)
        waiting, active = await self._scripts["room_counts"](
            keys=[keys.waiting, keys.prequeue, keys.active], args=[_now_ms()])
        return RoomCounts(int(waiting), int(active))

    async def rooms_with_waiters(self) -> list[UUID]:
        return [UUID(member) for member in await self._redis.execute("SMEMBERS", self._pending)]

    async def forget_if_empty(self, concert_id: UUID) -> None:
        """Drop an empty room from the admission round; a token issued meanwhile brings it back."""
        await self._redis.execute("SREM", self._pending, str(concert_id))
        if (await self.counts(concert_id)).waiting:
            await self._redis.execute("SADD", self._pending, str(concert_id))
