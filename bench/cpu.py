"""CPU used by each part of the system: on a shared machine, CPU per request drifts far
less than requests per second, so it is the figure to compare between commits."""

from __future__ import annotations

import psutil


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process tree, children included."""
    totals: dict[str, float] = {}
    for name, pid in roots.items():
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        total = 0.0
        for process in tree:
            try:
                times = process.cpu_times()
            except psutil.Error:  # a backend that ended between listing and reading
                continue
            # children_*: CPU of children that ended and were reaped (PostgreSQL backends
            # closed by the pool), without which a tree's total could go down.
            total += times.user + times.system + times.children_user + times.children_system
        totals[name] = total
    return totals


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores each tree kept busy between two readings."""
    return {name: max(0.0, after[name] - before.get(name, after[name])) / seconds
            for name in after if seconds > 0}
