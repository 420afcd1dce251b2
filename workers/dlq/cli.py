"""`booking-dlq`: inspect, replay and purge dead letters (API.md §5).

Dead letters are messages parked in `<topic>.dlq` by the consumers and outbox rows
the relay marked dead. Ids: `<dlq topic>:<partition>:<offset>` or `outbox:<row id>`.
Exit status 0 on success, 1 with one line on stderr when something is unreachable
or unknown, 2 for bad arguments.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, ParamSpec

import typer
from rich.progress import Progress

from services.common.settings import InvalidSettings, load_settings
from workers.common.command_line import CliError
from workers.common.command_line import parse_duration as duration
from workers.dlq import render
from workers.dlq.actions import Replayer, purge
from workers.dlq.config import Settings
from workers.dlq.inventory import find, gather
from workers.dlq.kafka_source import DeadLetterTopics, dead_letter_topics, replay_producer
from workers.dlq.model import PARKED, STATUSES, Filters, check_id, original_topic
from workers.dlq.store import DlqStore, connect

P = ParamSpec("P")
app = typer.Typer(
    help="Inspect, replay and purge dead letters: messages parked in <topic>.dlq and outbox "
    "rows the relay marked dead. Ids look like booking.payments.dlq:0:42 or outbox:17.",
    no_args_is_help=True, add_completion=False,
)

Topic = Annotated[list[str], typer.Option("--topic", help="Original topic (repeatable).")]
EventType = Annotated[list[str], typer.Option("--type", help="Event type (repeatable).")]
Aggregate = Annotated[list[str], typer.Option("--aggregate", help="Aggregate id (repeatable).")]
OlderThan = Annotated[str | None, typer.Option(help="Only those parked longer ago, e.g. 2h.")]
NewerThan = Annotated[str | None, typer.Option(help="Only those parked more recently, e.g. 15m.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
Reveal = Annotated[bool, typer.Option(
    "--reveal", help="Print phone numbers and queue tokens in full (masked by default).")]
Actor = Annotated[str | None, typer.Option(help="Who to record in the audit (default user@host).")]


@asynccontextmanager
async def sources(settings: Settings) -> AsyncIterator[tuple[DlqStore, DeadLetterTopics]]:
    async with connect(settings.database_dsn) as store, dead_letter_topics(settings) as reader:
        yield store, reader


def run(work: Callable[[Settings], Coroutine[Any, Any, None]]) -> None:
    """Load the settings and run one command's async work."""
    # aiokafka logs each failed connection attempt; the command reports it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = load_settings(Settings)
    except InvalidSettings as error:
        raise CliError(str(error), code=2) from None
    asyncio.run(work(settings))


def reported(command: Callable[P, None]) -> Callable[P, None]:
    """Turn an expected failure into one line on stderr and its exit status."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CliError as error:
            render.err.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(error.code) from None

    return wrapper


def filters(
    topic: list[str], event_type: list[str], aggregate: list[str],
    older_than: str | None, newer_than: str | None, statuses: tuple[str, ...],
) -> Filters:
    return Filters(
        topics=tuple(original_topic(name) for name in topic), event_types=tuple(event_type),
        aggregate_ids=tuple(aggregate),
        older_than=duration(older_than) if older_than else None,
        newer_than=duration(newer_than) if newer_than else None, statuses=statuses,
    )


@app.command("list")
@reported
def list_(
    topic: Topic = [],  # noqa: B006 - typer reads the default, never mutates it
    event_type: EventType = [],  # noqa: B006
    aggregate: Aggregate = [],  # noqa: B006
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    status: Annotated[list[str], typer.Option(help=f"Any of {', '.join(STATUSES)}.")] = [],  # noqa: B006
    as_json: Json = False,
) -> None:
    """List dead letters, with a histogram of failure reasons."""
    unknown = set(status) - set(STATUSES)
    if unknown:
        raise CliError(f"unknown status {', '.join(sorted(unknown))}", code=2)
    chosen = filters(topic, event_type, aggregate, older_than, newer_than,
                     tuple(status) or ("parked", "quarantined"))

    async def work(settings: Settings) -> None:
        async with sources(settings) as (store, reader):
            render.listing(await gather(store, reader, chosen), as_json)

    run(work)


@app.command()
@reported
def show(message_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False,
         reveal: Reveal = False) -> None:
    """Show one dead letter: facts, headers, value and audit history."""
    check_id(message_id)

    async def work(settings: Settings) -> None:
        async with sources(settings) as (store, reader):
            (item,) = await find(store, reader, [message_id])
            render.details(item, await store.history(item.id), as_json, reveal)

    run(work)


@app.command()
@reported
def replay(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every parked letter not yet replayed.")] = False,
    dry_run: DryRun = False,
    rate: Annotated[float | None, typer.Option(help="At most N per second.")] = None,
    force: Annotated[bool, typer.Option(help="Replay even past the replay limit.")] = False,
    topic: Topic = [],  # noqa: B006
    event_type: EventType = [],  # noqa: B006
    aggregate: Aggregate = [],  # noqa: B006
    older_than: OlderThan = None,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Re-drive dead letters to their original topic (outbox rows back to the relay)."""
    ids = [check_id(message_id) for message_id in ids or []]
    if bool(ids) == all_:
        raise CliError("give dead letter ids or --all, not both and not neither", code=2)
    if rate is not None and rate <= 0:
        raise CliError("--rate must be a positive number of messages per second", code=2)
    chosen = filters(topic, event_type, aggregate, older_than, None, (PARKED,))

    async def work(settings: Settings) -> None:
        async with sources(settings) as (store, reader), replay_producer(settings) as producer:
            if ids:
                items = await find(store, reader, ids)
            else:
                # Without narrowing filters the replay group's offsets skip what earlier
                # runs finished, and this run's progress is committed message by message.
                items = await gather(store, reader, chosen,
                                     from_committed=not chosen.narrows_messages)
            replayer = Replayer(
                store, producer, actor or default_actor(), settings.dlq_max_replays,
                dry_run=dry_run, force=force, rate=rate,
                progress_to=reader if all_ and not chosen.narrows_messages else None,
            )
            with _progress(len(items)) as step:
                replayer.on_step = step
                result = await replayer.run(items)
            render.report("replayed", result, as_json)

    run(work)


@app.command("purge")
@reported
def purge_(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...")] = None,
    older_than: OlderThan = None,
    topic: Topic = [],  # noqa: B006
    dry_run: DryRun = False,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Drop dead letters for good: by id, or all parked longer ago than --older-than."""
    ids = [check_id(message_id) for message_id in ids or []]
    if bool(ids) == bool(older_than):
        raise CliError("give dead letter ids or --older-than, not both and not neither", code=2)
    chosen = filters(topic, [], [], older_than, None, ("parked", "quarantined", "replayed"))

    async def work(settings: Settings) -> None:
        async with sources(settings) as (store, reader):
            items = await find(store, reader, ids) if ids else await gather(store, reader, chosen)
            result = await purge(store, items, actor or default_actor(), dry_run)
            render.report("purged", result, as_json)

    run(work)


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    # A bar only helps a person watching a long replay; scripts get plain output.
    disable = total < 20 or not render.err.is_terminal
    with Progress(console=render.err, transient=True, disable=disable) as progress:
        task = progress.add_task("replaying", total=total)
        yield lambda: progress.advance(task)


# click's UsageError, whether typer bundles click or depends on it.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


def main(argv: list[str] | None = None) -> None:
    """Entry point of `booking-dlq`: usage errors too are one line, exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args or ["--help"], prog_name="booking-dlq", standalone_mode=False)
    except UsageError as error:
        message = error.format_message()  # type: ignore[attr-defined]
        render.err.print(f"error: {message}", markup=False, highlight=False)
        code = 2
    raise SystemExit(code or 0)


if __name__ == "__main__":
    main()
