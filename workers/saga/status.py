"""`booking-worker sagas`: the ticket saga's state per payment, for operators.

Shows each saga's status (REGISTERING, CONFIRMED, COMPENSATED), its passes at the
venue, the reason of a compensation, and the ticket and payment it left behind.
A saga REGISTERING for long means its PaymentCompleted waits in the DLQ or a worker is down.
"""

import argparse
import asyncio
import json
import sys
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table

from services.booking.adapters import sagas
from services.common.engines import create_private_engine
from services.common.settings import load_settings_or_exit
from services.common.settings_types import DatabaseSettings

COLUMNS = ("payment_id", "status", "passes", "venue_attempts", "ticket_status", "payment_status",
           "updated_at", "reason")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="booking-worker sagas", description=__doc__.split("\n")[0])
    parser.add_argument("--payment", type=UUID, help="only this payment")
    parser.add_argument("--status", choices=("REGISTERING", "CONFIRMED", "COMPENSATED"))
    parser.add_argument("--limit", type=int, default=50, help="newest N (default 50)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser.parse_args(argv)


async def fetch(settings: DatabaseSettings, args: argparse.Namespace) -> list[dict[str, Any]]:
    engine = create_private_engine(settings.database_dsn, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return await sagas.list_sagas(conn, args.payment, args.status, args.limit)
    finally:
        await engine.dispose()


def render(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table(*COLUMNS)
    for row in rows:
        table.add_row(*(str(row[column] if row[column] is not None else "") for column in COLUMNS))
    Console().print(table)


def main() -> None:
    args = parse_args(sys.argv[1:])
    settings = load_settings_or_exit(DatabaseSettings)
    try:
        rows = asyncio.run(fetch(settings, args))
    except OSError as error:
        print(f"error: database unreachable: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.payment is not None and not rows:
        print(f"error: no saga for payment {args.payment}", file=sys.stderr)
        raise SystemExit(1)
    render(rows, args.json)


if __name__ == "__main__":
    main()
