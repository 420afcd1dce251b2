"""A concert's waiting room: its policy, its status, and the tokens bound to it."""

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

RoomStatus = Literal["CLOSED", "PRE_QUEUE", "OPEN", "PAUSED"]
TOKEN_RANDOM_BYTES = 24  # 192 bits: unguessable


@dataclass(frozen=True)
class RoomPolicy:
    """What an admin decides about a room: its pace, its capacity and its hours."""

    admit_per_second: int
    max_active: int
    queue_opens_at: datetime | None = None  # None: open from the concert's creation
    sale_opens_at: datetime | None = None  # None: no pre-queue
    paused: bool = False

    def changed(self, admit_per_second: int | None = None, max_active: int | None = None,
                paused: bool | None = None) -> "RoomPolicy":
        """This policy with the given fields replaced (None: kept)."""
        return replace(
            self,
            admit_per_second=self.admit_per_second if admit_per_second is None else admit_per_second,
            max_active=self.max_active if max_active is None else max_active,
            paused=self.paused if paused is None else paused,
        )


@dataclass(frozen=True)
class Room:
    concert_id: UUID
    policy: RoomPolicy
    version: int  # grows with every change, so a stale copy never overwrites a newer one


@dataclass(frozen=True)
class Lifetimes:
    """How long tokens live: ACTIVE ones, and WAITING ones that stop polling."""

    active_ttl_seconds: int
    grace_seconds: int

    @property
    def keep_ms(self) -> int:
        """How long a waiting token's keys outlive its last poll: past any use, bounded."""
        return (self.grace_seconds + self.active_ttl_seconds) * 1000


def room_status(policy: RoomPolicy, now: datetime) -> RoomStatus:
    """CLOSED before the queue opens, PRE_QUEUE until the sale opens, then OPEN or PAUSED."""
    if policy.queue_opens_at is not None and now < policy.queue_opens_at:
        return "CLOSED"
    if policy.sale_opens_at is not None and now < policy.sale_opens_at:
        return "PRE_QUEUE"
    return "PAUSED" if policy.paused else "OPEN"


def new_token(concert_id: UUID) -> str:
    """A token naming its concert (so one lookup finds its room) and 192 random bits."""
    return f"{concert_id.hex}.{secrets.token_urlsafe(TOKEN_RANDOM_BYTES)}"


def concert_of_token(token: str) -> UUID | None:
    """The concert a token was issued for, or None when it cannot be one of ours."""
    prefix, dot, rest = token.partition(".")
    if not dot or not rest or len(prefix) != 32:
        return None
    try:
        return UUID(hex=prefix)
    except ValueError:
        return None
