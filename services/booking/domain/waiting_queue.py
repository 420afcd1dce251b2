"""Waiting-room arithmetic: where a token stands and when it gets in."""

import math
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class QueueTicket:
    token: str
    concert_id: UUID
    status: str  # PRE_QUEUE | WAITING | ACTIVE
    position: int | None  # 1-based while WAITING, 0 when ACTIVE, None in the pre-queue
    eta_seconds: int | None
    expires_at: datetime | None


def eta_seconds(position: int | None, admit_per_second: int) -> int | None:
    """Seconds until admission at the capped rate, the head of the line counting as next."""
    if position is None:
        return None
    if position <= 0:
        return 0
    return math.ceil(position / admit_per_second)


MIN_RETRY_SECONDS = 1
MAX_RETRY_SECONDS = 30


def retry_after_seconds(position: int, admit_per_second: int, jitter: float) -> int:
    """Whole seconds a WAITING client should wait before asking again.

    Half the ETA: a client far back asks rarely, one near the head often, so the crowd's
    polls grow with the admission rate, not with its size. `jitter` (0.8-1.2 drawn per
    answer) spreads clients that joined together, so they do not come back as one wave.
    """
    wait = math.ceil(math.ceil(position / admit_per_second) / 2 * jitter)
    return min(max(wait, MIN_RETRY_SECONDS), MAX_RETRY_SECONDS)
