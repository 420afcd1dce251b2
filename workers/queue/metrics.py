"""Prometheus metrics of the waiting room, fed by each admission step."""

from prometheus_client import Counter, Gauge

from services.booking.adapters.waiting_room import AdmissionStep

WAITING = Gauge("queue_waiting_tokens", "Tokens waiting in line")
ACTIVE = Gauge("queue_active_tokens", "Tokens admitted and not yet expired")
ACTIVE_LIMIT = Gauge("queue_active_tokens_limit", "QUEUE_MAX_ACTIVE")
ADMITTED = Counter("queue_admitted", "Tokens moved from the line to ACTIVE")
EXPIRED = Counter("queue_expired", "ACTIVE tokens that ran out their time")
ABANDONED = Counter("queue_abandoned", "WAITING tokens dropped for not polling")


def observe(step: AdmissionStep, max_active: int) -> None:
    WAITING.set(step.waiting)
    ACTIVE.set(step.active)
    ACTIVE_LIMIT.set(max_active)
    ADMITTED.inc(step.admitted)
    EXPIRED.inc(step.expired)
    ABANDONED.inc(step.abandoned)
