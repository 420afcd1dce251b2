"""Every Kafka topic of the system, named in one place.

A topic's dead letters go to `<topic>.dlq`. Partition counts bound how far the
consumer groups can scale out.
"""

PAYMENTS = "booking.payments"
TICKETS = "booking.tickets"
NOTIFICATIONS = "booking.notifications"

PARTITIONS = 8

ALL = (PAYMENTS, TICKETS, NOTIFICATIONS)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
