"""Prometheus metrics of the Kafka consumers (saga, notifier, token expiry)."""

from prometheus_client import Counter

CONSUMER_MESSAGES = Counter(
    "consumer_messages",
    "Messages a consumer finished with, by outcome (handled, ignored, parked to the DLQ).",
    ["consumer", "outcome"],
)

SAGA_OUTCOMES = Counter(
    "ticket_saga_outcomes",
    "Ticket saga results per PaymentCompleted (confirmed, compensated, duplicate).",
    ["outcome"],
)

NOTIFICATIONS = Counter(
    "notifications",
    "Notifications by result (delivered per channel, skipped, failed, duplicate; unavailable: an"
    " attempt that found both breakers open, retried then parked).",
    ["result", "channel"],
)
