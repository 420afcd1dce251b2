"""Waiting-room arithmetic: where a token stands and when it gets in."""

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class QueueTicket:
    token: str
    status: str  # WAITING | ACTIVE
    position: int  # 1-based while WAITING, 0 when ACTIVE
    eta_seconds: int
    expires_at: datetime | None


def eta_seconds(position: int, admit_per_second: int) -> int:
    """Seconds until admission at the capped rate, the head of the line counting as next."""
    if position <= 0:
        return 0
    return math.ceil(position / admit_per_second)
