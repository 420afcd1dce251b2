"""`booking-reconcile [--json]`: check the system's invariants (API.md §5).

Exit 0 when every invariant holds, 1 with the violations and the ids involved, 2 on
a bad setting or when PostgreSQL or Redis cannot be asked (one line on stderr).
Settings: DATABASE_URL, REDIS_URL, QUEUE_NAMESPACE, QUEUE_ACTIVE_TTL_SECONDS and
QUEUE_WAIT_GRACE_SECONDS (API.md §4), the part of the API's settings it reads.
"""

import asyncio
import json
import sys
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from services.booking.adapters.invariants import Scope
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.config import StoreSettings, queue_lifetimes
from services.booking.service_layer.reconcile import CheckResult, check_active_tokens, check_database
from services.common.engines import create_private_engine
from services.common.redis_client import connect_redis
from services.common.settings import load_settings_or_exit

STYLES = {"ok": "green", "violated": "bold red", "not checked": "yellow"}
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class Unreachable(Exception):
    """A store could not be asked; the message is one line for the operator."""


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


async def run_checks(
    settings: StoreSettings, scope: Scope, grace_seconds: float, max_ids: int
) -> list[CheckResult]:
    """Every invariant against the stores the settings name."""
    engine = create_private_engine(
        settings.database_dsn, pool_size=1, max_overflow=0,
        connect_args={"timeout": 5, "server_settings": {"application_name": "booking-reconcile"}},
    )
    redis = connect_redis(str(settings.redis_url), timeout=5, connect_timeout=5)
    try:
        try:
            results = await check_database(engine, scope, grace_seconds, max_ids)
        except (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise Unreachable(f"PostgreSQL: {_first_line(error)}") from None
        rooms = WaitingRooms(redis, queue_lifetimes(settings), settings.queue_namespace)
        try:
            results.append(await check_active_tokens(engine, rooms))
        except (OSError, RedisError) as error:
            raise Unreachable(f"Redis: {_first_line(error)}") from None
    finally:
        await redis.aclose()
        await engine.dispose()
    return results


def to_json(results: list[CheckResult]) -> dict[str, Any]:
    return {
        "ok": not any(result.status == "violated" for result in results),
        "checks": [{
            "name": result.name, "rule": result.rule, "status": result.status,
            "count": result.total, "note": result.note,
            "violations": [{"id": v.id, "detail": v.detail} for v in result.violations],
        } for result in results],
    }


def print_tables(results: list[CheckResult]) -> None:
    summary = Table(title="booking-reconcile", title_justify="left")
    for heading in ("invariant", "status", "count", "note"):
        summary.add_column(heading)
    for result in results:
        summary.add_row(result.name, f"[{STYLES[result.status]}]{result.status}[/]",
                        str(result.total), result.note or result.rule)
    out.print(summary)
    for result in results:
        if result.status != "violated":
            continue
        shown = len(result.violations)
        more = f" (first {shown} of {result.total})" if shown < result.total else ""
        details = Table(title=f"{result.name}: {result.rule}{more}", title_justify="left")
        details.add_column("id", no_wrap=True)
        details.add_column("detail")
        for violation in result.violations:
            details.add_row(violation.id, violation.detail)
        out.print(details)


app = typer.Typer(add_completion=False)


@app.command(help=(
    "Check the system's invariants: exit 0 when all hold, 1 with the violations and their "
    "ids, 2 when a setting is invalid or PostgreSQL or Redis cannot be asked."
))
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    schedule: Annotated[UUID | None, typer.Option(
        help="Only this schedule's seats, payments, tickets and events.")] = None,
    user: Annotated[str | None, typer.Option(
        help="Only this user's wallet, payments, tickets and events.")] = None,
    grace: Annotated[float, typer.Option(
        min=0, help="Seconds an outbox row may stay unpublished before it counts.")] = 60.0,
    max_ids: Annotated[int, typer.Option(min=1, help="Ids listed per violated invariant.")] = 100,
) -> None:
    settings = load_settings_or_exit(StoreSettings)
    try:
        results = asyncio.run(run_checks(settings, Scope(schedule, user), grace, max_ids))
    except Unreachable as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(to_json(results), indent=2) + "\n")
    else:
        print_tables(results)
    raise typer.Exit(1 if any(result.status == "violated" for result in results) else 0)


def main() -> None:
    """Entry point of `booking-reconcile`."""
    app(prog_name="booking-reconcile")


if __name__ == "__main__":
    main()
