"""Gather what is parked, from both sources, with its status and replay count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from workers.common.command_line import CliError
from workers.common.dead_letters import DeadLetter
from workers.dlq.kafka_source import DeadLetterTopics
from workers.dlq.model import (
    PARKED,
    QUARANTINED,
    STATUS_AFTER,
    STATUSES,
    Filters,
    Parked,
)
from workers.dlq.store import DlqStore, as_uuid


def from_letter(letter: DeadLetter) -> Parked:
    return Parked(
        id=letter.message_id, source="kafka", topic=letter.original_topic,
        event_type=letter.event_type, event_id=letter.event_id,
        aggregate_id=letter.key.decode(errors="replace") if letter.key is not None else None,
        error_class=letter.error_class, error_message=letter.error_message,
        attempts=letter.attempts, failed_at=letter.failed_at, consumer=letter.consumer,
        replay_count=letter.replay_count, letter=letter,
    )


async def gather(
    store: DlqStore,
    reader: DeadLetterTopics,
    filters: Filters,
    *,
    from_committed: bool = False,
) -> list[Parked]:
    """Everything parked that matches `filters`, Kafka messages first, in log order."""
    letters = await reader.read(await reader.topics(filters.topics), from_committed)
    items = [from_letter(letter) for letter in letters] + await store.dead_rows()
    items = await with_audit(store, items)
    now = datetime.now(UTC)
    return [item for item in items if filters.matches(item, now)]


async def find(store: DlqStore, reader: DeadLetterTopics, ids: list[str]) -> list[Parked]:
    """The items named by `ids`, in that order; CliError when one does not exist."""
    topics = sorted({message_id.split(":")[0].removesuffix(".dlq")
                     for message_id in ids if not message_id.startswith("outbox:")})
    found: dict[str, Parked] = {}
    if topics:
        for item in await gather(store, reader, Filters(topics=tuple(topics), statuses=STATUSES)):
            found[item.id] = item
    if any(message_id.startswith("outbox:") for message_id in ids):
        rows = await with_audit(store, await store.dead_rows())
        found.update((row.id, row) for row in rows)
    unknown = [message_id for message_id in ids if message_id not in found]
    if unknown:
        raise CliError(f"unknown dead letter id {', '.join(unknown)}")
    return [found[message_id] for message_id in ids]


async def with_audit(store: DlqStore, items: list[Parked]) -> list[Parked]:
    """Set each item's status and replay count from the audit table."""
    if not items:
        return items
    ids = [item.id for item in items]
    actions = await store.last_actions(ids)
    counts = await store.replay_counts(ids, [item.event_id for item in items if item.event_id])
    return [_audited(item, actions.get(item.id), counts) for item in items]


def _audited(
    item: Parked, last: tuple[str, str | None] | None, counts: dict[str, int]
) -> Parked:
    # The event id links the copies of one event: parked, replayed, parked again.
    replays = max(item.replay_count, counts.get(item.id, 0),
                  counts.get(as_uuid(item.event_id) or "", 0))
    if item.source == "outbox":
        # A dead row is parked even if it was replayed before: it died again.
        status = QUARANTINED if last and last[0] == "quarantine" else PARKED
        return replace(item, status=status, replay_count=replays)
    # Offsets restart when a memory-only broker restarts: an audit entry speaks
    # for this message only if it names the same event.
    same_event = last is not None and last[1] == as_uuid(item.event_id)
    status = STATUS_AFTER[last[0]] if last and same_event else PARKED
    return replace(item, status=status, replay_count=replays)
