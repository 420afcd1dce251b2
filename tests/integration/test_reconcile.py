"""`booking-reconcile` against real PostgreSQL and Redis: a clean booking passes, and each
invariant broken on purpose is reported with the ids involved.

The session database is shared, so every check here is scoped to a fresh schedule and
user (`--schedule`, `--user`); the active-token check reads the session's own namespace.
"""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from services.booking.adapters.invariants import Scope
from services.booking.adapters.migrate import alembic_config
from services.booking.config import Settings
from services.booking.entrypoints.reconcile import run_checks
from services.booking.service_layer.reconcile import CheckResult
from tests.support import JWT_SECRET, Booking, auth, free_port, make_settings, new_user, sql

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class World:
    """One paid seat (1) and one held seat (2) of a fresh schedule, owned by a fresh user."""

    schedule_id: str
    user_id: str
    payment_id: str
    ticket_id: str
    reservation_id: str
    held_reservation_id: str

    @property
    def scope(self) -> Scope:
        return Scope(UUID(self.schedule_id), self.user_id)

    def seat(self, seat_no: int) -> str:
        return f"{self.schedule_id}/{seat_no}"


async def paid_booking(booking: Booking) -> World:
    concert = await booking.create_concert(seat_count=4, price=10_000)
    schedule_id = concert["schedules"][0]["id"]
    user = new_user("rc")
    await booking.charge(user, 50_000)
    queue_token = await booking.active_token(user, concert)
    held = [await booking.hold(user, queue_token, schedule_id, seat) for seat in (1, 2)]
    assert all(response.status_code == 201 for response in held), [r.text for r in held]
    paid = await booking.pay(user, queue_token, held[0].json()["id"])
    assert paid.status_code == 201, paid.text
    body = paid.json()
    return World(schedule_id, user, body["id"], body["ticket"]["id"], held[0].json()["id"],
                 held[1].json()["id"])


@pytest.fixture
async def world(booking: Booking) -> World:
    return await paid_booking(booking)


async def checks(settings: Settings, scope: Scope, grace: float = 60.0) -> dict[str, CheckResult]:
    return {result.name: result for result in await run_checks(settings, scope, grace, 100)}


def violated(results: dict[str, CheckResult]) -> dict[str, set[str]]:
    return {name: {v.id for v in result.violations}
            for name, result in results.items() if result.status == "violated"}


def cli_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env.update({
        "DATABASE_URL": settings.database_dsn, "REDIS_URL": str(settings.redis_url),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "AUTH_JWT_SECRET": JWT_SECRET,
        "QUEUE_NAMESPACE": settings.queue_namespace, "COLUMNS": "200",
    })
    env.update(overrides)
    return env


async def reconcile_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "services.booking.entrypoints.reconcile", *args]
    return await asyncio.to_thread(
        subprocess.run, argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


async def test_a_clean_booking_passes_every_check(settings: Settings, world: World) -> None:
    results = await checks(settings, world.scope)

    assert violated(results) == {}
    assert set(results) >= {
        "sold-seat-backed", "seat-sold-once", "paid-payment-keeps-seat", "wallet-matches-history",
        "payment-events-published", "refunded-payment-released", "confirmed-ticket-registered",
        "active-tokens-within-limit",
    }
    assert {result.status for result in results.values()} == {"ok"}


async def test_the_command_exits_0_with_a_table_and_1_with_ids(
    settings: Settings, world: World
) -> None:
    env = cli_env(settings)
    scope = ["--schedule", world.schedule_id, "--user", world.user_id]
    clean = await reconcile_cli(env, *scope)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "wallet-matches-history" in clean.stdout and "violated" not in clean.stdout

    await sql(settings, "UPDATE wallets SET balance = balance + 7 WHERE user_id = :u", u=world.user_id)
    table = await reconcile_cli(env, *scope)
    assert table.returncode == 1, table.stdout + table.stderr
    assert world.user_id in table.stdout and "history sums to 40000" in table.stdout

    as_json = await reconcile_cli(env, *scope, "--json")
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name["wallet-matches-history"]["violations"] == [
        {"id": world.user_id, "detail": "balance 40007, history sums to 40000"}]
    assert by_name["sold-seat-backed"]["status"] == "ok"


async def test_a_sold_seat_without_payment_or_live_ticket_is_reported(
    settings: Settings, world: World
) -> None:
    await sql(settings, "UPDATE tickets SET status = 'VOID' WHERE id = :t", t=world.ticket_id)
    await sql(settings, """UPDATE seats SET status = 'SOLD', held_until = NULL
                            WHERE schedule_id = :s AND seat_no = 2""", s=world.schedule_id)

    results = await checks(settings, world.scope)

    assert violated(results) == {"sold-seat-backed": {world.seat(1), world.seat(2)}}
    details = {v.id: v.detail for v in results["sold-seat-backed"].violations}
    assert details[world.seat(1)].startswith("no live ticket")
    assert details[world.seat(2)].startswith("no PAID payment and no live ticket")


async def test_a_seat_paid_twice_is_reported_with_both_payments(
    settings: Settings, world: World
) -> None:
    second_reservation, second_payment = uuid.uuid4(), uuid.uuid4()
    await sql(settings, """
        WITH r AS (
            INSERT INTO reservations (id, user_id, schedule_id, seat_no, price, status, expires_at)
            VALUES (:r, :u, :s, 1, 10000, 'PAID', now()) RETURNING id)
        INSERT INTO payments (id, reservation_id, user_id, amount, status)
        SELECT :p, id, :u, 10000, 'PAID' FROM r""",
        r=second_reservation, p=second_payment, u=world.user_id, s=world.schedule_id)

    results = await checks(settings, world.scope)

    assert violated(results) == {
        "seat-sold-once": {world.seat(1)}, "paid-payment-keeps-seat": {str(second_payment)},
    }
    (double,) = results["seat-sold-once"].violations
    assert double.detail.startswith("2 PAID payments")
    assert world.payment_id in double.detail and str(second_payment) in double.detail


async def test_a_wallet_that_drifted_from_its_history_is_reported(
    settings: Settings, world: World
) -> None:
    other = new_user("rc")
    await sql(settings, "INSERT INTO users (id) VALUES (:u)", u=other)
    await sql(settings, """INSERT INTO point_history (user_id, type, amount, balance_after)
                           VALUES (:u, 'CHARGE', 500, 500)""", u=other)
    await sql(settings, "UPDATE wallets SET balance = balance - 1000 WHERE user_id = :u",
              u=world.user_id)

    mine = await checks(settings, world.scope)
    theirs = await checks(settings, Scope(user_id=other))

    assert violated(mine) == {"wallet-matches-history": {world.user_id}}
    assert mine["wallet-matches-history"].violations[0].detail == (
        "balance 39000, history sums to 40000")
    assert violated(theirs)["wallet-matches-history"] == {other}
    assert theirs["wallet-matches-history"].violations[0].detail == (
        "balance (no wallet), history sums to 500")


async def test_a_payment_event_stuck_past_the_grace_period_is_reported(
    settings: Settings, world: World
) -> None:
    assert violated(await checks(settings, world.scope, grace=0.0)) == {
        "payment-events-published": {world.payment_id}}
    # As a relay that claimed the row and hung looks: leased, never acknowledged.
    await sql(settings, """
        UPDATE outbox SET occurred_at = now() - interval '5 minutes', attempts = 3,
               lease_token = gen_random_uuid(), lease_until = now() + interval '1 hour'
         WHERE aggregate_type = 'payment' AND aggregate_id = :p""", p=world.payment_id)

    results = await checks(settings, world.scope)

    assert violated(results) == {"payment-events-published": {world.payment_id}}
    (stuck,) = results["payment-events-published"].violations
    assert stuck.detail.startswith("PaymentCompleted (outbox ")
    assert "unpublished after 3 attempt(s)" in stuck.detail
    assert violated(await checks(settings, world.scope, grace=3600.0)) == {}

    await sql(settings, """UPDATE outbox SET published_at = now()
                            WHERE aggregate_type = 'payment' AND aggregate_id = :p""",
              p=world.payment_id)
    assert violated(await checks(settings, world.scope)) == {}


async def test_a_refunded_payment_that_kept_its_seat_is_reported(
    settings: Settings, world: World
) -> None:
    await sql(settings, "UPDATE payments SET status = 'REFUNDED', refunded_at = now() WHERE id = :p",
              p=world.payment_id)

    results = await checks(settings, world.scope)

    assert violated(results) == {
        "refunded-payment-released": {world.payment_id}, "sold-seat-backed": {world.seat(1)},
    }
    (kept,) = results["refunded-payment-released"].violations
    assert kept.detail == (
        f"seat {world.seat(1)} still SOLD; ticket {world.ticket_id} still PENDING")


async def test_a_confirmed_ticket_without_a_registration_is_reported(
    settings: Settings, world: World
) -> None:
    await sql(settings, "UPDATE tickets SET status = 'CONFIRMED' WHERE id = :t", t=world.ticket_id)

    unregistered = await checks(settings, world.scope)
    await sql(settings, """
        INSERT INTO ticket_sagas (payment_id, ticket_id, status, passes, finished_at)
        VALUES (:p, :t, 'CONFIRMED', 1, now())""", p=world.payment_id, t=world.ticket_id)
    registered = await checks(settings, world.scope)

    assert violated(unregistered) == {"confirmed-ticket-registered": {world.ticket_id}}
    assert unregistered["confirmed-ticket-registered"].violations[0].detail == (
        "CONFIRMED without a saga record")
    assert violated(registered) == {}


async def test_more_active_tokens_than_a_rooms_limit_are_reported(
    booking: Booking, settings: Settings
) -> None:
    concert = await booking.create_concert(seat_count=2, max_active=2)
    for user in ("rc-a", "rc-b"):
        await booking.active_token(new_user(user), concert)
    nothing = Scope(schedule_id=uuid.uuid4(), user_id=new_user("rc"))
    assert "active-tokens-within-limit" not in violated(await checks(settings, nothing))

    # An admin lowers the limit below what is active: reported until the tokens finish.
    lowered = await booking.http.patch(f"/admin/concerts/{concert['id']}/waiting-room",
                                       json={"max_active": 1}, headers=auth("admin-1", role="admin"))
    assert lowered.status_code == 200, lowered.text
    results = await checks(settings, nothing)

    assert violated(results)["active-tokens-within-limit"] == {concert["id"]}
    found = [v.detail for v in results["active-tokens-within-limit"].violations]
    assert found == ["2 active, max_active 1"]


@pytest.fixture
async def database_before_sagas(postgres_server_url: str) -> AsyncIterator[str]:
    """A database migrated only up to 0002: the consumers' tables do not exist yet."""
    server = make_url(postgres_server_url).set(drivername="postgresql")
    name = f"reconcile_{secrets.token_hex(5)}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(server.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    await execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        # Alembic runs its own event loop: not in this one's thread.
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0002")
        yield url
    finally:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_check_whose_table_is_missing_says_not_checked(
    database_before_sagas: str, redis_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(database_before_sagas, redis_url, kafka_bootstrap)

    results = await checks(settings, Scope())

    skipped, rooms = results["confirmed-ticket-registered"], results["active-tokens-within-limit"]
    assert (skipped.status, rooms.status) == ("not checked", "not checked")
    assert skipped.note.startswith("not checked: table ticket_sagas does not exist")
    assert rooms.note.startswith("not checked: table waiting_rooms does not exist")
    assert {r.status for name, r in results.items() if name not in (skipped.name, rooms.name)} == {"ok"}


async def test_a_bad_setting_or_an_unreachable_store_exits_2_with_one_line(
    settings: Settings,
) -> None:
    closed = free_port()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"DATABASE_URL": "mysql://db/booking"}, "error: invalid setting DATABASE_URL"),
        ({"DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x"},
         "error: PostgreSQL: "),
        ({"REDIS_URL": f"redis://127.0.0.1:{closed}/0"}, "error: Redis: "),
    ]
    runs = await asyncio.gather(*(
        reconcile_cli(cli_env(settings, **overrides), "--schedule", str(uuid.uuid4()))
        for overrides, _ in cases
    ))
    for (_, expected), run in zip(cases, runs, strict=True):
        assert run.returncode == 2, (expected, run.stdout, run.stderr)
        assert run.stderr.startswith(expected) and run.stderr.count("\n") == 1, run.stderr
        assert run.stdout == ""
