"""`booking-relay republish --since DURATION`: publish again what the broker may have lost.

The outbox says "published" once the broker acknowledged a row. A broker that then
loses its log (a memory-only broker restarted, an unclean leader election with
`unclean.leader.election.enable`, a topic deleted by hand) drops events that were
acknowledged but not yet consumed. This command marks the rows published within
the window as unpublished again, and the running relays send them once more, in
per-aggregate order. Consumers are idempotent (processed events, the delivery log,
provider message ids), so the events they had already handled change nothing.

Rows older than RELAY_RETENTION_SECONDS are purged and cannot be re-queued: choose
a window that starts before the outage. Settings: DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.booking.adapters import outbox
from services.common.settings import InvalidSettings, load_settings
from services.common.settings_types import DatabaseSettings, asyncpg_dsn
from workers.common.command_line import CliError, parse_duration


async def republish(
    database_url: str, since_seconds: float, topics: Sequence[str], dry_run: bool
) -> dict[str, int]:
    """Re-queue the rows published in the last `since_seconds`; the count per topic."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        async with connection.transaction():
            counts = await outbox.requeue_published(connection, since_seconds, topics, dry_run=dry_run)
            if not dry_run:
                await outbox.wake_relays(connection)
    finally:
        await connection.close()
    return counts


app = typer.Typer(add_completion=False)


@app.command(help="Publish again the outbox rows published within --since (the broker lost them).")
def command(
    since: Annotated[str, typer.Option(help="How far back, e.g. 15m, 2h, 1h30m.")],
    topic: Annotated[list[str], typer.Option("--topic", help="Only this topic (repeatable).")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the rows; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    err = Console(stderr=True, highlight=False)
    try:
        window = parse_duration(since)
        settings = load_settings(DatabaseSettings)
        counts = asyncio.run(republish(str(settings.database_url), window.total_seconds(), topic, dry_run))
    except (CliError, InvalidSettings) as error:
        err.print(f"error: {error}", markup=False)
        raise typer.Exit(getattr(error, "code", 2)) from None
    except (OSError, asyncpg.PostgresError) as error:
        err.print(f"error: PostgreSQL: {type(error).__name__}: {error}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps({"dry_run": dry_run, "since": since, "topics": counts,
                                     "total": sum(counts.values())}) + "\n")
        return
    verb = "would re-queue" if dry_run else "re-queued"
    table = Table(title=f"outbox rows published in the last {since}: {verb}", title_justify="left")
    table.add_column("topic")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, str(rows))
    table.add_row("total", str(sum(counts.values())), style="bold")
    Console(highlight=False).print(table)


def main(argv: Sequence[str]) -> None:
    app(args=list(argv), prog_name="booking-relay republish")
