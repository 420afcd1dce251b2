"""How the CLI prints: rich tables for people, JSON for scripts.

What a dead letter carries is data, never markup: every cell is a plain Text, so a
`[/x]` in an error or a payload prints as it is. Phone numbers and queue tokens are
masked (services/common/redaction.py) unless the operator asks `show --reveal`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.common.envelope import InvalidEnvelope, decode
from services.common.redaction import redact, redact_text
from workers.dlq.actions import Report
from workers.dlq.model import Parked

out = Console()
err = Console(stderr=True)
ERROR_WIDTH = 60
BAR_WIDTH = 30
# Piped output has no terminal width; a table squeezed into 80 columns is unreadable.
PIPE_WIDTH = 200


def print_json(document: Any) -> None:
    out.print_json(orjson.dumps(document).decode())


def histogram(items: list[Parked]) -> list[tuple[str, int]]:
    """Failure reasons (error class) by how many parked items they account for."""
    return Counter(item.error_class for item in items).most_common()


def listing(items: list[Parked], as_json: bool) -> None:
    now = datetime.now(UTC)
    reasons = histogram(items)
    if as_json:
        print_json({
            "messages": [redact(item.summary(now)) for item in items],
            "reasons": [{"error_class": reason, "count": count} for reason, count in reasons],
        })
        return
    table = Table(title=f"{len(items)} dead letters")
    for column in ("ID", "TOPIC", "EVENT TYPE", "ERROR", "ATTEMPTS", "REPLAYS", "AGE", "STATUS"):
        table.add_column(column, no_wrap=column != "ERROR", min_width=len(column))
    for item in items:
        error = redact_text(f"{item.error_class}: {item.error_message}")
        table.add_row(*map(Text, (
            item.id, item.topic, item.event_type or "-", _clip(error, ERROR_WIDTH),
            str(item.attempts), str(item.replay_count), age(now - item.failed_at), item.status,
        )))
    _print_wide(table)
    _print_histogram(reasons)


def details(item: Parked, history: list[dict[str, Any]], as_json: bool, reveal: bool = False) -> None:
    """One dead letter whole; phone numbers and tokens masked unless `reveal`."""
    document = {**item.summary(datetime.now(UTC)), "history": history}
    if item.letter is not None:
        document["headers"] = {k: v.decode(errors="replace") for k, v in item.letter.headers}
        document["key"] = item.letter.key.decode(errors="replace") if item.letter.key else None
        document["value"] = _value(item.letter.value)
    else:
        document["payload"] = item.payload
    if not reveal:
        document = redact(document)
    if as_json:
        print_json(document)
        return
    table = Table(show_header=False, title=Text(item.id))
    for name, value in document.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        table.add_row(Text(name), Text(shown, overflow="fold"))  # long JSON wraps, never cropped
    _print_wide(table)


def report(verb: str, result: Report, as_json: bool) -> None:
    if as_json:
        print_json(result.as_json(verb))
        return
    prefix = "would have " if result.dry_run else ""
    for item in result.done:
        out.print(Text(f"{prefix}{verb} {item.id} → {item.topic}"))
    for item in result.quarantined:
        out.print(Text(f"{prefix}quarantined {item.id}: replayed {item.replay_count} times already"))
    for item, reason in result.skipped:
        out.print(Text(f"skipped {item.id}: {redact_text(reason)}"))
    out.print(
        f"{prefix}{verb} {len(result.done)}, quarantined {len(result.quarantined)}, "
        f"skipped {len(result.skipped)}"
    )


def age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _print_histogram(reasons: list[tuple[str, int]]) -> None:
    if not reasons:
        return
    table = Table(title="failure reasons")
    table.add_column("ERROR CLASS", no_wrap=True)
    table.add_column("COUNT", justify="right")
    table.add_column("")
    top = reasons[0][1]
    for reason, count in reasons:
        table.add_row(Text(reason), str(count), "█" * max(1, round(BAR_WIDTH * count / top)))
    _print_wide(table)


def _value(value: bytes | None) -> dict[str, Any] | None:
    """The parked value for `show`: its JSON when it parses, and why it is no envelope."""
    if value is None:
        return None
    try:
        decode(value)
        problem = None
    except InvalidEnvelope as error:
        problem = str(error)
    try:
        return {"envelope_problem": problem, "json": orjson.loads(value)}
    except orjson.JSONDecodeError:
        return {"envelope_problem": problem, "raw": value[:2000].decode(errors="replace")}


def _print_wide(table: Table) -> None:
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    out.print(table)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
