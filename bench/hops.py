"""The end-to-end chain of one paid ticket, point by point, and the delay of each hop.

A point is a moment on the one clock every process here shares (epoch seconds), or
None when the ticket has not reached it. A hop is measured only where both of its
ends were reached, so a ticket stuck halfway still counts in the hops it passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise

# The chain in order: (key, label). The keys name the columns the e2e scenario reads.
POINTS: tuple[tuple[str, str], ...] = (
    ("paid", "payment 201"),
    ("payment_published", "relay publish (payment)"),
    ("saga_started", "saga consume"),
    ("venue_called", "venue call"),
    ("saga_confirmed", "confirm commit"),
    ("notification_published", "relay publish (notification)"),
    ("notifier_consumed", "notifier consume"),
    ("provider_accepted", "provider accepted"),
)
HOPS: tuple[tuple[str, str], ...] = tuple(pairwise(key for key, _ in POINTS))
WHOLE = (POINTS[0][0], POINTS[-1][0])
LABELS = dict(POINTS)

Times = Mapping[str, float | None]


def label(hop: tuple[str, str]) -> str:
    return f"{LABELS[hop[0]]} → {LABELS[hop[1]]}"


def deltas(times: Times) -> dict[str, float]:
    """Milliseconds of each hop, and of the whole chain, whose two ends were reached."""
    found: dict[str, float] = {}
    for start, end in (*HOPS, WHOLE):
        began, ended = times.get(start), times.get(end)
        if began is not None and ended is not None:
            found[label((start, end))] = (ended - began) * 1000
    return found


def by_hop(tickets: Iterable[Times]) -> dict[str, list[float]]:
    """Every ticket's delay per hop label, the hops in chain order and the whole last."""
    found: dict[str, list[float]] = {label(hop): [] for hop in (*HOPS, WHOLE)}
    for times in tickets:
        for name, milliseconds in deltas(times).items():
            found[name].append(milliseconds)
    return found


def notified_once(times: Times, deliveries: int) -> bool:
    """The buyer heard of the confirmation exactly once: recorded as accepted, and one
    message (not zero, not two) reached a provider."""
    return times.get(WHOLE[1]) is not None and deliveries == 1
