"""Prometheus metrics of the waiting rooms, fed by each admission step."""

import contextlib
from uuid import UUID

from prometheus_client import Counter, Gauge

from services.booking.adapters.waiting_room import AdmissionStep

# One series per room with people waiting; a room that empties takes its series with it.
WAITING = Gauge("queue_waiting_tokens", "Tokens waiting in a room's line or pre-queue", ["concert"])
ACTIVE = Gauge("queue_active_tokens", "Tokens admitted and not yet expired", ["concert"])
ACTIVE_LIMIT = Gauge("queue_active_tokens_limit", "The room's max_active", ["concert"])
ADMITTING = Gauge("queue_room_admitting", "1 while the room's sale is open and it is not paused",
                  ["concert"])
ROOMS = Gauge("queue_rooms_waiting", "Waiting rooms with someone in line or in the pre-queue")
ADMITTED = Counter("queue_admitted", "Tokens moved from a line to ACTIVE")
EXPIRED = Counter("queue_expired", "ACTIVE tokens that ran out their time")
ABANDONED = Counter("queue_abandoned", "WAITING tokens dropped for not polling")
RELEASED = Counter("queue_prequeue_released", "Pre-queue tokens given their random places")
PER_ROOM = (WAITING, ACTIVE, ACTIVE_LIMIT, ADMITTING)


def observe(concert_id: UUID, step: AdmissionStep) -> None:
    room = str(concert_id)
    WAITING.labels(room).set(step.waiting)
    ACTIVE.labels(room).set(step.active)
    ACTIVE_LIMIT.labels(room).set(step.max_active)
    ADMITTING.labels(room).set(step.admitting)
    ADMITTED.inc(step.admitted)
    EXPIRED.inc(step.expired)
    ABANDONED.inc(step.abandoned)
    RELEASED.inc(step.released)


def forget(concert_id: UUID) -> None:
    for gauge in PER_ROOM:
        with contextlib.suppress(KeyError):  # never observed in this process
            gauge.remove(str(concert_id))
