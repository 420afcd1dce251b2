"""Replay and purge: what the CLI changes, each change audited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from workers.dlq.kafka_source import DeadLetterTopics
from workers.dlq.model import PARKED, PURGED, QUARANTINED, Parked
from workers.dlq.store import Action, DlqStore


@dataclass
class Report:
    """What a replay or purge did (or, with --dry-run, would do)."""

    dry_run: bool
    done: list[Parked] = field(default_factory=list)
    quarantined: list[Parked] = field(default_factory=list)
    skipped: list[tuple[Parked, str]] = field(default_factory=list)

    def as_json(self, verb: str) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            verb: [item.id for item in self.done],
            "quarantined": [item.id for item in self.quarantined],
            "skipped": [{"id": item.id, "reason": reason} for item, reason in self.skipped],
        }


@dataclass
class Replayer:
    store: DlqStore
    producer: AIOKafkaProducer | None
    actor: str
    max_replays: int
    dry_run: bool = False
    force: bool = False
    rate: float | None = None
    # Set for `replay --all` without narrowing filters: progress goes to the group.
    progress_to: DeadLetterTopics | None = None
    on_step: Callable[[], None] = lambda: None

    async def run(self, items: list[Parked]) -> Report:
        report = Report(self.dry_run)
        started = time.monotonic()
        for index, item in enumerate(items):
            if self.rate:
                await _pace(started, index, self.rate)
            await self._one(item, report)
            if self.progress_to and item.letter and not self.dry_run:
                await self.progress_to.commit(item.letter)
            self.on_step()
        return report

    async def _one(self, item: Parked, report: Report) -> None:
        if item.status in (QUARANTINED, PURGED) and not self.force:
            report.skipped.append((item, item.status))
        elif item.replay_count >= self.max_replays and not self.force:
            if item.status == PARKED and not self.dry_run:
                await self.store.record(self._action(item, "quarantine", item.replay_count))
            report.quarantined.append(item)
        elif self.dry_run or await self._redrive(item):
            report.done.append(item)
        else:
            report.skipped.append((item, "no longer dead"))

    async def _redrive(self, item: Parked) -> bool:
        count = item.replay_count + 1
        action = self._action(item, "replay", count)
        if item.source == "outbox":
            # The relay publishes the row again, in its aggregate's order.
            return await self.store.requeue_row(action)
        assert item.letter is not None and self.producer is not None
        letter = item.letter
        sent = await self.producer.send(
            item.topic, letter.value, key=letter.key, headers=letter.replay_headers(count)
        )
        await sent
        # Audited after the broker's ack: a crash in between replays it once more
        # (at least once), which the idempotent consumers absorb.
        await self.store.record(action)
        return True

    def _action(self, item: Parked, verb: str, count: int) -> Action:
        return Action(item.id, item.event_id, verb, item.topic, count, self.actor)


async def purge(store: DlqStore, items: list[Parked], actor: str, dry_run: bool) -> Report:
    """Drop items for good: a dead outbox row is deleted, a Kafka message is hidden."""
    report = Report(dry_run)
    for item in items:
        if item.status == PURGED:
            report.skipped.append((item, PURGED))
            continue
        if not dry_run:
            action = Action(item.id, item.event_id, "purge", item.topic, item.replay_count, actor)
            if item.source == "outbox" and not await store.delete_row(action):
                report.skipped.append((item, "no longer dead"))
                continue
            if item.source == "kafka":
                # Kafka cannot delete one record; the audit hides it from list and replay.
                await store.record(action)
        report.done.append(item)
    return report


async def _pace(started: float, index: int, rate: float) -> None:
    delay = started + index / rate - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
