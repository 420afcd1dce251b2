"""One example per request and response body, as the document shows them (each valid for its type)."""

from typing import Any

from pydantic import BaseModel

from services.booking.entrypoints.api import schemas as s

CONCERT = "0b7e3c52-6a43-4c1e-9d55-1f2b6a3c8e01"
SCHEDULE = "5f0d2a91-3c7b-4e8a-b1d2-7c9e4f6a2b03"
RESERVATION = "9a1c4e7b-2d3f-4a5b-8c6d-0e1f2a3b4c05"
PAYMENT = "3e5f7a9b-1c2d-4e6f-8a0b-2c4d6e8f0a07"
TICKET = "7c9e1a3b-5d7f-4b2c-9e4a-6b8d0f2a4c09"
STARTS = "2027-03-14T19:00:00+09:00"
ROOM = {"admit_per_second": 50, "max_active": 500, "queue_opens_at": None, "sale_opens_at": None}
SCHEDULE_OUT = {"id": SCHEDULE, "starts_at": STARTS, "seat_count": 100, "price": 50_000}
TOKEN = {"token": "q1mXJ2p8s0Gv3Yc6Lr9Tn4Wk7Bd5Hf2E", "concert_id": CONCERT, "status": "ACTIVE",
         "position": 0, "eta_seconds": 0, "expires_at": "2027-03-01T12:10:00+00:00"}
TICKET_OUT = {"id": TICKET, "status": "PENDING", "schedule_id": SCHEDULE, "seat_no": 7}

EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    s.ConcertIn: {"title": "Spring Tour", "venue": "Olympic Hall", "waiting_room": ROOM,
                  "schedules": [{"starts_at": STARTS, "seat_count": 100, "price": 50_000}]},
    s.ConcertOut: {"id": CONCERT, "title": "Spring Tour", "venue": "Olympic Hall",
                   "schedules": [SCHEDULE_OUT], "waiting_room": ROOM},
    s.ConcertList: {"items": [{"id": CONCERT, "title": "Spring Tour", "venue": "Olympic Hall"}]},
    s.ScheduleList: {"items": [{**SCHEDULE_OUT, "available_seats": 98}]},
    s.SeatList: {"items": [{"seat_no": 1, "price": 50_000, "status": "AVAILABLE"},
                           {"seat_no": 2, "price": 50_000, "status": "HELD"}]},
    s.WaitingRoomPatch: {"admit_per_second": 100, "paused": False},
    s.WaitingRoomOut: {**ROOM, "concert_id": CONCERT, "status": "OPEN", "waiting": 1200, "active": 480},
    s.QueueTokenIn: {"concert_id": CONCERT},
    s.QueueTokenOut: TOKEN,
    s.Balance: {"user_id": "alice", "balance": 150_000},
    s.ChargeIn: {"amount": 100_000},
    s.HistoryPage: {"items": [{"type": "CHARGE", "amount": 100_000, "balance_after": 150_000,
                               "created_at": "2027-03-01T12:00:00+00:00"}], "next_cursor": "41"},
    s.HoldIn: {"schedule_id": SCHEDULE, "seat_no": 7},
    s.ReservationOut: {"id": RESERVATION, "schedule_id": SCHEDULE, "seat_no": 7, "price": 50_000,
                       "status": "HELD", "expires_at": "2027-03-01T12:05:00+00:00"},
    s.PayIn: {"reservation_id": RESERVATION},
    s.PaymentCreated: {"id": PAYMENT, "reservation_id": RESERVATION, "amount": 50_000, "status": "PAID",
                       "ticket": TICKET_OUT},
    s.PaymentOut: {"id": PAYMENT, "reservation_id": RESERVATION, "amount": 50_000, "status": "PAID",
                   "created_at": "2027-03-01T12:01:00+00:00", "refunded_at": None},
    s.TicketList: {"items": [{**TICKET_OUT, "payment_id": PAYMENT}]},
    s.Liveness: {"status": "ok"},
    s.Readiness: {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "kafka": "ok"}},
}
