"""The ledger: every stage of a booking counted from its own records, with lost,
duplicated and stuck counts, and the duplicates idempotency absorbed shown apart.

Sources: the database (payments, outbox, processed events, sagas, tickets, refunds,
notifications, spent queue tokens), the provider simulators' call records (what reached the outside
world), the consumer groups' lag on the broker, the workers' JSON logs (outcomes),
and what the client was told: every customer's answers must match the database (a
201's payment exists and is the customer's only one; a customer told nothing, a 5xx or
a refusal has none). One more line: whether every fault landed on enough bookings in
flight (one that landed on fewer tested too little, and fails the run as a loss would).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from bench.chaos.timeline import Landing
from bench.stack import plain_dsn
from services.common.broker_offsets import log_end_offsets

FACTS = """
SELECT
 (SELECT count(*) FROM payments) AS payments,
 (SELECT count(*) FROM (SELECT 1 FROM payments GROUP BY user_id HAVING count(*) > 1) d) AS double_paid,
 (SELECT count(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM outbox o
    WHERE o.event_type = 'PaymentCompleted' AND o.aggregate_id = p.id::text)) AS payments_without_event,
 (SELECT count(*) FROM outbox) AS events,
 (SELECT count(*) FROM outbox WHERE published_at IS NOT NULL) AS published,
 (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
 (SELECT count(*) FROM outbox WHERE event_type = 'PaymentCompleted') AS payment_events,
 (SELECT count(*) FROM processed_events WHERE consumer = 'ticket-saga') AS saga_consumed,
 (SELECT count(*) FROM outbox o WHERE o.event_type = 'PaymentCompleted' AND NOT EXISTS (
    SELECT 1 FROM processed_events p WHERE p.consumer = 'ticket-saga' AND p.event_id = o.event_id)
 ) AS saga_unconsumed,
 (SELECT count(*) FROM payments p WHERE NOT EXISTS (
    SELECT 1 FROM ticket_sagas s WHERE s.payment_id = p.id)) AS payments_without_saga,
 (SELECT count(*) FROM ticket_sagas WHERE status = 'REGISTERING') AS sagas_open,
 (SELECT count(*) FROM ticket_sagas WHERE status = 'CONFIRMED') AS sagas_confirmed,
 (SELECT count(*) FROM ticket_sagas WHERE status = 'COMPENSATED') AS sagas_compensated,
 (SELECT count(*) FROM tickets WHERE status = 'CONFIRMED') AS tickets_confirmed,
 (SELECT count(*) FROM tickets WHERE status = 'PENDING') AS tickets_pending,
 (SELECT count(*) FROM payments WHERE status = 'REFUNDED') AS payments_refunded,
 (SELECT count(*) FROM point_history WHERE type = 'REFUND') AS refunds,
 (SELECT count(*) FROM (SELECT 1 FROM point_history WHERE type = 'REFUND'
    GROUP BY payment_id HAVING count(*) > 1) d) AS double_refunds,
 (SELECT count(*) FROM ticket_sagas s WHERE s.status = 'COMPENSATED' AND NOT EXISTS (
    SELECT 1 FROM point_history h WHERE h.type = 'REFUND' AND h.payment_id = s.payment_id)
 ) AS compensated_without_refund,
 (SELECT count(DISTINCT aggregate_id) FROM outbox WHERE event_type = 'NotificationRequested')
   AS notifications_requested,
 (SELECT count(DISTINCT o.aggregate_id) FROM outbox o WHERE o.event_type = 'NotificationRequested'
    AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id::text = o.aggregate_id))
   AS notifications_unconsumed,
 (SELECT count(*) FROM notifications WHERE status IN ('DELIVERED', 'SKIPPED')) AS notifications_final,
 (SELECT count(*) FROM notifications WHERE status IN ('PENDING', 'FAILED')) AS notifications_open,
 (SELECT count(*) FROM outbox WHERE event_type = 'PaymentCompleted'
    AND payload->>'queue_token' IS NOT NULL) AS tokens_spent,
 (SELECT count(*) FROM outbox o WHERE o.event_type = 'PaymentCompleted'
    AND o.payload->>'queue_token' IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM queue_token_expiries e WHERE e.token = o.payload->>'queue_token')
 ) AS tokens_unrecorded,
 (SELECT count(*) FROM queue_token_expiries WHERE swept_at IS NULL) AS tokens_waiting,
 (SELECT count(*) FROM seats WHERE status = 'SOLD') AS seats_sold,
 (SELECT count(*) FROM wallets) AS wallets
"""
IDS = {
    "confirmed_tickets": "SELECT id::text FROM tickets WHERE status = 'CONFIRMED'",
    "refunded_tickets": "SELECT ticket_id::text FROM ticket_sagas WHERE status = 'COMPENSATED'",
    "delivered": "SELECT id::text FROM notifications WHERE status = 'DELIVERED'",
    "payments": "SELECT id::text FROM payments",
}
PAYMENTS_BY_USER = "SELECT user_id, id::text FROM payments"
# booking-reconcile's invariants that have a line of their own in the ledger.
SEAT_SOLD_ONCE, WALLET_MATCHES_HISTORY = "seat-sold-once", "wallet-matches-history"


async def database_facts(database_url: str) -> tuple[dict[str, int], dict[str, set[str]]]:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        facts = dict(await connection.fetchrow(FACTS) or {})
        ids = {name: {row[0] for row in await connection.fetch(query)} for name, query in IDS.items()}
    finally:
        await connection.close()
    return facts, ids


async def payments_by_user(database_url: str) -> dict[str, set[str]]:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        found: dict[str, set[str]] = {}
        for user_id, payment_id in await connection.fetch(PAYMENTS_BY_USER):
            found.setdefault(user_id, set()).add(payment_id)
        return found
    finally:
        await connection.close()


async def consumer_offsets(kafka: str, groups: dict[str, tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """For each part's (group, topic): messages committed and messages not committed yet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await consumer.start()
    await admin.start()
    try:
        found = {}
        # Asked of the broker: consumer.topics() does not fill the cache partitions_for_topic
        # reads, which then knew only some topics (one group's lag and offsets read 0).
        described = {d["topic"]: d for d in await admin.describe_topics([t for _, t in groups.values()])}
        for part, (group, topic) in groups.items():
            partitions = [TopicPartition(topic, p["partition"]) for p in described[topic]["partitions"]]
            if not partitions:
                raise RuntimeError(f"the broker knows no partition of {topic}")
            end = await log_end_offsets(consumer, partitions)
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {tp: max(offsets[tp].offset, 0) if tp in offsets else 0 for tp in partitions}
            # Clamped: the group may commit what arrived after the ends were read.
            found[part] = (sum(committed.values()),
                           sum(max(0, end[tp] - committed[tp]) for tp in partitions))
        return found
    finally:
        await admin.close()
        await consumer.stop()


@dataclass
class Evidence:
    facts: dict[str, int]
    ids: dict[str, set[str]]
    calls: dict[str, list[dict[str, Any]]]  # provider -> its call records
    lag: dict[str, int]  # consumer part -> messages not committed
    consumed: dict[str, int]  # consumer part -> messages committed
    outcomes: dict[str, Counter[str]]  # worker kind -> outcomes from its logs
    client_paid: dict[str, str]  # customer -> the payment id its 201 carried
    client_users: set[str]  # every customer
    client_gave_up: int
    client_outbid: int  # customers who left because a rival had the seat
    rival_seats: int  # seats two customers wanted at once
    payments_retried: int  # customers paid on a retry after a payment's answer was lost
    db_payments: dict[str, set[str]]  # customer -> its payments in the database
    republished: int
    dlq_parked: int
    dlq_replayed: int
    dlq_left: int
    reconcile: dict[str, Any]
    faults: list[Landing]


@dataclass
class Row:
    stage: str
    expected: int | None
    done: int
    absorbed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    note: str = ""


@dataclass
class Ledger:
    rows: list[Row] = field(default_factory=list)
    faults: list[Landing] = field(default_factory=list)

    def total(self, column: str) -> int:
        return sum(int(getattr(row, column)) for row in self.rows)

    @property
    def missed(self) -> list[Landing]:
        """Faults that landed on too few bookings in flight."""
        return [landing for landing in self.faults if not landing.hit]

    @property
    def clean(self) -> bool:
        return not (self.total("lost") or self.total("duplicated") or self.total("stuck")
                    or self.missed)

    def table(self, title: str) -> Table:
        table = Table(title=title, title_justify="left")
        for column in fields(Row):
            table.add_column(column.name.replace("_", " "),
                             justify="left" if column.name in ("stage", "note") else "right")
        for row in self.rows:
            bad = (_bad(getattr(row, column)) for column in ("lost", "duplicated", "stuck"))
            table.add_row(row.stage, "" if row.expected is None else str(row.expected), str(row.done),
                          str(row.absorbed), *bad, row.note)
        missed = ", ".join(f"{landing.name} ({landing.in_flight})" for landing in self.missed)
        least = min((landing.in_flight for landing in self.faults), default=0)
        table.add_row("faults on bookings in flight", str(len(self.faults)),
                      str(len(self.faults) - len(self.missed)), "", "", "", "",
                      f"[bold red]too few in flight: {missed}[/]" if missed
                      else f"each one, on {least} or more")
        table.add_row("total", "", "", str(self.total("absorbed")),
                      *(_bad(self.total(c)) for c in ("lost", "duplicated", "stuck")), "", style="bold")
        return table

    def print(self, console: Console, title: str) -> None:
        console.print(self.table(title))


def _bad(value: int) -> str:
    return f"[bold red]{value}[/]" if value else "[green]0[/]"


def accepted(calls: list[dict[str, Any]]) -> Counter[str]:
    return Counter(call["key"] for call in calls if call["outcome"] == "accepted" and call["key"])


def answered(calls: list[dict[str, Any]], outcome: str) -> int:
    return sum(1 for call in calls if call["outcome"] == outcome)


def build(e: Evidence) -> Ledger:
    f, venue = e.facts, accepted(e.calls["venue"])
    kakao, sms = accepted(e.calls["kakao"]), accepted(e.calls["sms"])
    sent = kakao + sms
    confirmed, refunded = e.ids["confirmed_tickets"], e.ids["refunded_tickets"]
    delivered = e.ids["delivered"]
    saga_lag, notifier_lag = e.lag.get("saga", 0), e.lag.get("notifier", 0)
    checks = {check["name"]: check for check in e.reconcile.get("checks", [])}
    broken = {name: _violations(check) for name, check in checks.items() if check["status"] != "ok"}
    others = {name: count for name, count in broken.items()
              if name not in (SEAT_SOLD_ONCE, WALLET_MATCHES_HISTORY)}
    answers = _answers(e)
    return Ledger(faults=e.faults, rows=[
        Row("payments committed", len(e.client_paid), f["payments"],
            lost=len(set(e.client_paid.values()) - e.ids["payments"]), duplicated=f["double_paid"],
            stuck=e.client_gave_up, note="client 201s vs rows; stuck = purchases given up"),
        Row("client answers = database", len(e.client_users), answers.count(""),
            absorbed=e.payments_retried, lost=answers.count("lost"),
            duplicated=answers.count("duplicated"),
            note="absorbed = payments whose answer was lost, then replayed"),
        Row("no seat sold twice", f["seats_sold"], f["seats_sold"] - broken.get(SEAT_SOLD_ONCE, 0),
            duplicated=broken.get(SEAT_SOLD_ONCE, 0),
            note=f"{e.rival_seats} seats wanted by two at once, {e.client_outbid} customers outbid"),
        Row("every wallet = its history", f["wallets"], f["wallets"] - broken.get(WALLET_MATCHES_HISTORY, 0),
            lost=broken.get(WALLET_MATCHES_HISTORY, 0), note="booking-reconcile wallet-matches-history"),
        Row("events committed → published", f["events"], f["published"], absorbed=e.republished,
            lost=f["payments_without_event"], stuck=f["unpublished"],
            note="absorbed = re-queued by booking-relay republish"),
        Row("ticket-saga consumed", f["payment_events"], f["saga_consumed"],
            absorbed=e.outcomes["saga"]["duplicate"],
            lost=f["saga_unconsumed"] + f["payments_without_saga"], stuck=f["sagas_open"] + saga_lag,
            note=f"processed_events; absorbed = redeliveries; lag {saga_lag}"),
        Row("venue registrations", f["sagas_confirmed"], len(venue),
            absorbed=answered(e.calls["venue"], "duplicate"),
            lost=len(confirmed - set(venue)), duplicated=len(refunded & set(venue)) + _over_one(venue),
            note=f"failures injected: {answered(e.calls['venue'], 'failed')}"),
        Row("tickets confirmed", f["sagas_confirmed"], f["tickets_confirmed"],
            stuck=f["tickets_pending"], note="stuck = tickets still PENDING"),
        Row("compensations / refunds", f["sagas_compensated"], f["refunds"],
            lost=f["compensated_without_refund"], duplicated=f["double_refunds"],
            note=f"payments REFUNDED: {f['payments_refunded']}"),
        Row("notifier consumed", f["sagas_confirmed"] + f["sagas_compensated"], f["notifications_final"],
            absorbed=e.outcomes["notifier"]["duplicate"],
            lost=f["notifications_unconsumed"] + max(0, f["sagas_confirmed"] + f["sagas_compensated"]
                                                      - f["notifications_requested"]),
            stuck=f["notifications_open"] + notifier_lag,
            note=f"delivered or skipped; lag {notifier_lag}"),
        Row("notifications accepted: kakao", None, sum(kakao.values()),
            absorbed=answered(e.calls["kakao"], "duplicate"),
            note=f"failures injected: {answered(e.calls['kakao'], 'failed')}"),
        Row("notifications accepted: sms", None, sum(sms.values()),
            absorbed=answered(e.calls["sms"], "duplicate"),
            note=f"failures injected: {answered(e.calls['sms'], 'failed')}"),
        Row("notifications sent once", len(delivered), len(delivered & set(sent)),
            lost=len(delivered - set(sent)), duplicated=_over_one(sent),
            note="exactly one provider accepted each"),
        # A payment writes its spent-token row in the statement that writes its event; the
        # sweeper marks the row swept only after Redis let the token go.
        Row("token-expiry swept", f["tokens_spent"],
            f["tokens_spent"] - f["tokens_unrecorded"] - f["tokens_waiting"],
            lost=f["tokens_unrecorded"], stuck=f["tokens_waiting"],
            note="lost = a paid token with no row; stuck = a row not swept"),
        Row("dead letters", e.dlq_parked, e.dlq_replayed, stuck=e.dlq_left,
            note="booking-dlq replay --all; stuck = still parked"),
        Row("invariants (booking-reconcile)", len(checks), len(checks) - len(broken),
            lost=sum(others.values()), note=", ".join(broken) or "all hold"),
    ])


def _answers(e: Evidence) -> list[str]:
    """Per customer: "" when what it was told matches the database, "lost" when a 201 has
    no payment or a payment was never told, "duplicated" when it has more or another."""
    verdicts = []
    for user in e.client_users:
        told, found = e.client_paid.get(user), e.db_payments.get(user, set())
        if found == ({told} if told else set()):
            verdicts.append("")
        elif len(found) > 1 or (told and found):
            verdicts.append("duplicated")
        else:
            verdicts.append("lost")
    return verdicts


def _violations(check: dict[str, Any]) -> int:
    return int(check.get("count") or 1)


def _over_one(counts: Counter[str]) -> int:
    return sum(count - 1 for count in counts.values() if count > 1)
