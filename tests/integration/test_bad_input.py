"""No client input, however malformed, makes the API answer 500: every refusal is a 4xx problem."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from services.booking.config import Settings
from tests.support import Booking, assert_problem, auth, new_user, sql

pytestmark = pytest.mark.integration

HUGE = 10**30
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Player:
    """A user with points, an active queue token and a held seat on a 10-seat schedule."""

    user: str
    token: str
    schedule_id: str
    reservation_id: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {**auth(self.user), "X-Queue-Token": self.token, **extra}


@pytest.fixture(scope="module")
async def player(booking: Booking) -> Player:
    concert = await booking.create_concert(seat_count=10, price=1_000)
    schedule_id = concert["schedules"][0]["id"]
    user = new_user("bad")
    await booking.charge(user, 5_000)
    token = await booking.active_token(user, concert)
    held = await booking.hold(user, token, schedule_id, 10)
    assert held.status_code == 201, held.text
    return Player(user, token, schedule_id, held.json()["id"])


async def _balance(booking: Booking, user: str) -> int:
    response = await booking.http.get("/points", headers=auth(user))
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


# The API answers each refusal one way: the status and code a test expects, never a choice.
INVALID = (422, "VALIDATION_FAILED")
UNKNOWN = (404, "NOT_FOUND")


# --- POST /points/charge: a refused charge leaves the balance as it was ---------------------

RAW_CHARGE_BODIES = [
    pytest.param(b"{", INVALID, id="malformed-json"),
    pytest.param(b'{"amount": 10,}', INVALID, id="trailing-comma"),
    pytest.param(b"[10]", INVALID, id="array"),
    pytest.param(b'"10"', INVALID, id="string"),
    pytest.param(b"10", INVALID, id="number"),
    pytest.param(b"null", INVALID, id="null"),
    pytest.param(b"", INVALID, id="empty"),
    pytest.param(b'{"amount": NaN}', INVALID, id="nan"),
    pytest.param(b'{"amount": Infinity}', INVALID, id="infinity"),
    pytest.param(b'{"amount": 1e400}', INVALID, id="float-overflow"),
    pytest.param(b'{"amount": "\xff\xfe"}', INVALID, id="invalid-utf8"),
    pytest.param(b"[" * 30_000 + b"]" * 30_000, INVALID, id="deep-nesting"),
    pytest.param(b'{"amount": 10, "amount": "x"}', INVALID, id="duplicate-key-last-wins"),
]


@pytest.mark.parametrize(("content", "expected"), RAW_CHARGE_BODIES)
async def test_unparseable_charge_bodies_are_refused(
    booking: Booking, player: Player, content: bytes, expected: tuple[int, str]
) -> None:
    before = await _balance(booking, player.user)
    response = await booking.http.post(
        "/points/charge", content=content, headers={**auth(player.user), **JSON}
    )
    assert_problem(response, *expected)
    assert await _balance(booking, player.user) == before


CHARGE_BODIES = [
    pytest.param({}, id="missing"),
    pytest.param({"amout": 10}, id="misspelt"),
    pytest.param({"amount": "10"}, id="string-for-int"),
    pytest.param({"amount": 10.5}, id="fraction"),
    pytest.param({"amount": True}, id="boolean"),
    pytest.param({"amount": None}, id="null"),
    pytest.param({"amount": [10]}, id="list"),
    pytest.param({"amount": {"value": 10}}, id="object"),
    pytest.param({"amount": HUGE}, id="huge"),
    pytest.param({"amount": -HUGE}, id="huge-negative"),
    pytest.param({"amount": -10}, id="negative"),
    pytest.param({"amount": 0}, id="zero"),
    pytest.param({"amount": 10_000_001}, id="above-maximum"),
]


@pytest.mark.parametrize("body", CHARGE_BODIES)
async def test_invalid_charges_are_refused_and_change_nothing(
    booking: Booking, player: Player, body: dict[str, Any]
) -> None:
    before = await _balance(booking, player.user)
    response = await booking.http.post("/points/charge", json=body, headers=auth(player.user))
    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert "amount" in problem["detail"]
    assert await _balance(booking, player.user) == before


async def test_a_whole_number_written_with_a_fraction_is_an_integer(booking: Booking) -> None:
    # JSON (and JSON Schema, so the document) has one number type: 10.0 is the integer ten.
    user = new_user("whole")
    response = await booking.http.post("/points/charge", json={"amount": 10.0}, headers=auth(user))
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == 10


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml"])
async def test_a_charge_in_another_media_type_is_refused(
    booking: Booking, player: Player, media: str
) -> None:
    before = await _balance(booking, player.user)
    response = await booking.http.post(
        "/points/charge", content=b'{"amount": 10}',
        headers={**auth(player.user), "Content-Type": media},
    )
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert await _balance(booking, player.user) == before


async def test_unknown_fields_are_ignored(booking: Booking, player: Player) -> None:
    before = await _balance(booking, player.user)
    response = await booking.http.post(
        "/points/charge", json={"amount": 7, "currency": "USD", "user_id": "someone-else"},
        headers=auth(player.user),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": player.user, "balance": before + 7}


# --- POST /admin/concerts -----------------------------------------------------------------

def _concert(**changes: Any) -> dict[str, Any]:
    schedule = {"starts_at": "2027-05-01T19:00:00+09:00", "seat_count": 3, "price": 1_000}
    body: dict[str, Any] = {"title": "Bad input " + uuid.uuid4().hex, "venue": "Hall",
                            "schedules": [schedule]}
    for name, value in changes.items():
        if name in schedule:
            body["schedules"] = [{**schedule, name: value}]
        else:
            body[name] = value
    return body


def _without(name: str) -> dict[str, Any]:
    body = _concert()
    if name in body:
        del body[name]
    else:
        del body["schedules"][0][name]
    return body


CONCERT_BODIES = [
    pytest.param(_concert(title="x" * 201), id="title-201-chars"),
    pytest.param(_concert(title=""), id="title-empty"),
    pytest.param(_concert(title=123), id="title-number"),
    pytest.param(_concert(title=None), id="title-null"),
    pytest.param(_concert(venue="v" * 201), id="venue-201-chars"),
    pytest.param(_without("venue"), id="venue-missing"),
    pytest.param(_without("schedules"), id="schedules-missing"),
    pytest.param(_concert(schedules=[]), id="no-schedules"),
    pytest.param(_concert(schedules="tomorrow"), id="schedules-string"),
    pytest.param(_concert(schedules=[_concert()["schedules"][0]] * 101), id="101-schedules"),
    pytest.param(_without("starts_at"), id="starts-at-missing"),
    pytest.param(_concert(starts_at="next friday"), id="starts-at-garbage"),
    pytest.param(_concert(starts_at="2027-05-01T19:00:00"), id="starts-at-naive"),
    pytest.param(_concert(starts_at="2027-02-30T19:00:00+09:00"), id="starts-at-impossible"),
    pytest.param(_concert(starts_at="9999-12-31T23:59:59-14:00"), id="starts-at-past-year-9999"),
    pytest.param(_concert(starts_at="0001-01-01T00:00:00+14:00"), id="starts-at-before-year-1"),
    pytest.param(_concert(seat_count=0), id="seat-count-zero"),
    pytest.param(_concert(seat_count=10_001), id="seat-count-too-many"),
    pytest.param(_concert(seat_count="3"), id="seat-count-string"),
    pytest.param(_concert(seat_count=2.5), id="seat-count-float"),
    pytest.param(_concert(seat_count=HUGE), id="seat-count-huge"),
    pytest.param(_concert(price=0), id="price-zero"),
    pytest.param(_concert(price=-1_000), id="price-negative"),
    pytest.param(_concert(price=10_000_001), id="price-too-high"),
    pytest.param(_concert(price=HUGE), id="price-huge"),
    pytest.param(_concert(price=True), id="price-boolean"),
    pytest.param(_concert(title="nul \u0000 byte"), id="title-nul-character"),
    pytest.param(_concert(venue="lone \ud800 surrogate"), id="venue-lone-surrogate"),
]


@pytest.mark.parametrize("body", CONCERT_BODIES)
async def test_invalid_concerts_are_refused_and_not_created(
    booking: Booking, settings: Settings, body: dict[str, Any]
) -> None:
    # json.dumps escapes a lone surrogate as \\ud800, which httpx's encoder would refuse.
    response = await booking.http.post("/admin/concerts", content=json.dumps(body),
                                       headers={**auth("admin-1", role="admin"), **JSON})
    assert_problem(response, 422, "VALIDATION_FAILED")
    if isinstance(body.get("title"), str) and "\u0000" not in body["title"]:
        assert await sql(settings, "SELECT id FROM concerts WHERE title = :t", t=body["title"]) == []


async def test_a_concert_with_unknown_fields_is_created(booking: Booking) -> None:
    body = _concert(promoter="ACME")
    body["schedules"][0]["hall"] = "B"
    response = await booking.http.post(
        "/admin/concerts", json=body, headers=auth("admin-1", role="admin")
    )
    assert response.status_code == 201, response.text
    assert "promoter" not in response.json()
    assert response.json()["schedules"][0]["seat_count"] == 3


# --- POST /reservations and POST /payments --------------------------------------------------

HOLD_BODIES = [
    pytest.param({"seat_no": 1}, INVALID, id="schedule-missing"),
    pytest.param({"schedule_id": None, "seat_no": 1}, INVALID, id="schedule-null"),
    pytest.param({"schedule_id": "not-a-uuid", "seat_no": 1}, INVALID, id="schedule-not-uuid"),
    pytest.param({"schedule_id": 42, "seat_no": 1}, INVALID, id="schedule-number"),
    pytest.param({"schedule_id": "SCHEDULE"}, INVALID, id="seat-missing"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": "1"}, INVALID, id="seat-string"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": 1.5}, INVALID, id="seat-float"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": True}, INVALID, id="seat-boolean"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": None}, INVALID, id="seat-null"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": HUGE}, INVALID, id="seat-huge"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": -1}, INVALID, id="seat-negative"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": 0}, INVALID, id="seat-zero"),
    pytest.param({"schedule_id": "SCHEDULE", "seat_no": 11}, UNKNOWN, id="seat-beyond-schedule"),
    pytest.param({"schedule_id": "RANDOM", "seat_no": 1}, UNKNOWN, id="schedule-unknown"),
]


def _fill(body: dict[str, Any], player: Player) -> dict[str, Any]:
    ids = {"SCHEDULE": player.schedule_id, "RANDOM": str(uuid.uuid4())}
    return {name: ids.get(value, value) if isinstance(value, str) else value
            for name, value in body.items()}


async def _seat_statuses(booking: Booking, schedule_id: str) -> dict[int, str]:
    response = await booking.http.get(f"/schedules/{schedule_id}/seats")
    return {seat["seat_no"]: seat["status"] for seat in response.json()["items"]}


@pytest.mark.parametrize(("body", "expected"), HOLD_BODIES)
async def test_invalid_holds_are_refused_and_hold_nothing(
    booking: Booking, player: Player, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    before = await _seat_statuses(booking, player.schedule_id)
    response = await booking.http.post(
        "/reservations", json=_fill(body, player), headers=player.headers()
    )
    assert_problem(response, *expected)
    assert await _seat_statuses(booking, player.schedule_id) == before


async def test_a_hold_with_unknown_fields_succeeds(booking: Booking, player: Player) -> None:
    response = await booking.http.post(
        "/reservations", headers=player.headers(),
        json={"schedule_id": player.schedule_id, "seat_no": 9, "price": 1, "user_id": "x"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["price"] == 1_000
    cancelled = await booking.http.delete(
        f"/reservations/{response.json()['id']}", headers=player.headers()
    )
    assert cancelled.status_code == 204


PAY_BODIES = [
    pytest.param(b"{", INVALID, id="malformed-json"),
    pytest.param(b"[]", INVALID, id="array"),
    pytest.param(b"{}", INVALID, id="missing"),
    pytest.param(b'{"reservation_id": null}', INVALID, id="null"),
    pytest.param(b'{"reservation_id": 7}', INVALID, id="number"),
    pytest.param(b'{"reservation_id": "not-a-uuid"}', INVALID, id="not-uuid"),
    pytest.param(b'{"reservation_id": "' + b"f" * 5000 + b'"}', INVALID, id="long-string"),
    pytest.param(json.dumps({"reservation_id": str(uuid.uuid4())}).encode(), UNKNOWN, id="unknown"),
]


@pytest.mark.parametrize(("content", "expected"), PAY_BODIES)
async def test_invalid_payments_are_refused_and_take_nothing(
    booking: Booking, player: Player, content: bytes, expected: tuple[int, str]
) -> None:
    before = await _balance(booking, player.user)
    response = await booking.http.post("/payments", content=content, headers=player.headers(
        **JSON, **{"Idempotency-Key": uuid.uuid4().hex}))
    assert_problem(response, *expected)
    assert await _balance(booking, player.user) == before
    # The guarded routes did not spend the token on a refusal.
    me = await booking.http.get("/queue/tokens/me", headers=player.headers())
    assert me.json()["status"] == "ACTIVE"


# --- Paths, queries, headers, methods, routes -----------------------------------------------

# A malformed id is invalid input; a well-formed UUID that names nothing is not found.
MALFORMED_IDS = ["not-a-uuid", "1", "' OR 1=1 --", "%00", "x" * 2000]
UNKNOWN_IDS = ["00000000-0000-0000-0000-000000000000", str(uuid.uuid4())]


def _paths() -> list[Any]:
    ids = [(value, INVALID) for value in MALFORMED_IDS] + [(value, UNKNOWN) for value in UNKNOWN_IDS]
    templates = ["/concerts/{}/schedules", "/schedules/{}/seats", "/reservations/{}",
                 "/payments/{}"]
    return [pytest.param(template.format(value), expected,
                         id=f"{template.split('/')[1]}-{value[:16]}")
            for template in templates for value, expected in ids]


@pytest.mark.parametrize(("path", "expected"), _paths())
async def test_unknown_or_malformed_ids_in_paths(
    booking: Booking, player: Player, path: str, expected: tuple[int, str]
) -> None:
    response = await booking.http.get(path, headers=auth(player.user))
    assert_problem(response, *expected)


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("not-a-uuid", INVALID, id="not-a-uuid"),
    pytest.param("x" * 2000, INVALID, id="long-string"),
    pytest.param(str(uuid.uuid4()), UNKNOWN, id="unknown"),
])
async def test_cancelling_an_unknown_reservation(
    booking: Booking, player: Player, value: str, expected: tuple[int, str]
) -> None:
    response = await booking.http.delete(f"/reservations/{value}", headers=player.headers())
    assert_problem(response, *expected)
    assert (await _seat_statuses(booking, player.schedule_id))[10] == "HELD"


HISTORY_QUERIES = [
    "limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5", "limit=" + "9" * 40,
    "limit=", "limit=%ff", "cursor=abc", "cursor=-1", "cursor=0", "cursor=1e5", "cursor=%20%201",
    "cursor=" + "9" * 40, "cursor=9223372036854775808", "cursor=%C2%B2", "cursor=%D9%A1",
    "cursor=%00",
]


@pytest.mark.parametrize("query", HISTORY_QUERIES)
async def test_bad_history_paging_is_refused(booking: Booking, player: Player, query: str) -> None:
    response = await booking.http.get(f"/points/history?{query}", headers=auth(player.user))
    assert_problem(response, 422, "VALIDATION_FAILED")


async def test_history_paging_with_good_cursors(booking: Booking) -> None:
    user = new_user("page")
    for amount in (1, 2, 3):
        await booking.charge(user, amount)
    first = (await booking.http.get("/points/history?limit=2", headers=auth(user))).json()
    assert [item["amount"] for item in first["items"]] == [3, 2]
    second = (await booking.http.get(
        f"/points/history?limit=2&cursor={first['next_cursor']}", headers=auth(user))).json()
    assert [item["amount"] for item in second["items"]] == [1] and second["next_cursor"] is None
    top = await booking.http.get("/points/history?cursor=9223372036854775807&limit=100",
                                 headers=auth(user))
    assert [item["amount"] for item in top.json()["items"]] == [3, 2, 1]


QUEUE_TOKENS = ["", "x" * 201, "not-a-token", "' OR 1=1", "\u00e9t\u00e9"]


@pytest.mark.parametrize("value", QUEUE_TOKENS)
async def test_bad_queue_tokens(booking: Booking, player: Player, value: str) -> None:
    headers = {**auth(player.user), "X-Queue-Token": value.encode("utf-8")}
    hold = await booking.http.post(
        "/reservations", json={"schedule_id": player.schedule_id, "seat_no": 8}, headers=headers
    )
    assert_problem(hold, 401, "QUEUE_TOKEN_INVALID")
    me = await booking.http.get("/queue/tokens/me", headers=headers)
    assert_problem(me, 401, "QUEUE_TOKEN_INVALID")
    assert (await _seat_statuses(booking, player.schedule_id))[8] == "AVAILABLE"


WRONG_METHODS = [
    ("PUT", "/concerts"), ("DELETE", "/concerts"), ("POST", "/concerts"),
    ("PATCH", "/points"), ("DELETE", "/points"), ("GET", "/points/charge"),
    ("GET", "/payments"), ("PUT", "/payments"), ("POST", "/tickets"),
    ("GET", "/admin/concerts"), ("GET", "/reservations"), ("PUT", "/reservations/" + "1" * 8),
    ("PATCH", "/queue/tokens"), ("DELETE", "/queue/tokens/me"),
]


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
async def test_wrong_methods_are_405(booking: Booking, player: Player, method: str, path: str) -> None:
    response = await booking.http.request(method, path, headers=auth(player.user), json={})
    assert_problem(response, 405)
    assert response.headers.get("allow")


@pytest.mark.parametrize("path", ["/nope", "/concerts/x/y/z", "/points/charges", "/admin",
                                  "/reservations", "/queue", "/%ff", "/" + "a" * 3000])
async def test_unknown_routes_are_404(booking: Booking, player: Player, path: str) -> None:
    response = await booking.http.delete(path, headers=auth(player.user))
    assert_problem(response, 404 if path != "/reservations" else 405)


async def test_state_survived_all_of_the_above(booking: Booking, player: Player, settings: Settings) -> None:
    held = await booking.http.get(f"/reservations/{player.reservation_id}", headers=auth(player.user))
    assert held.json()["status"] == "HELD"
    rows = await sql(settings, "SELECT count(*) AS n FROM payments WHERE user_id = :u", u=player.user)
    assert rows == [{"n": 0}]
