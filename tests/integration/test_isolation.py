"""Users are walled off from each other; forged or stale credentials get nowhere."""

import asyncio
import base64
import json
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from services.booking.config import Settings
from tests.support import JWT_SECRET, Booking, assert_problem, auth, new_user, sql, token

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Owner:
    """Alice: one seat held, one seat paid (with its payment and ticket)."""

    user: str
    token: str
    schedule_id: str
    held_id: str
    paid_reservation_id: str
    payment_id: str
    ticket_id: str


@pytest.fixture(scope="module")
async def alice(booking: Booking) -> Owner:
    concert = await booking.create_concert(seat_count=10, price=1_000)
    schedule_id = concert["schedules"][0]["id"]
    user = new_user("alice")
    await booking.charge(user, 10_000)
    queue_token = await booking.active_token(user, concert)
    held = (await booking.hold(user, queue_token, schedule_id, 1)).json()
    to_pay = (await booking.hold(user, queue_token, schedule_id, 2)).json()
    paid = await booking.pay(user, queue_token, to_pay["id"])
    assert paid.status_code == 201, paid.text
    queue_token = await booking.active_token(user, concert)
    return Owner(user, queue_token, schedule_id, held["id"], to_pay["id"], paid.json()["id"],
                 paid.json()["ticket"]["id"])


@pytest.fixture(scope="module")
async def bob(booking: Booking) -> tuple[str, str]:
    user = new_user("bob")
    await booking.charge(user, 10_000)
    return user, await booking.active_token(user, await booking.create_concert(seat_count=1))


def _same_refusal(theirs: dict[str, Any], unknown: dict[str, Any], their_id: str, random_id: str) -> None:
    """Another user's resource is answered exactly like one that does not exist."""
    assert theirs["code"] == unknown["code"] == "NOT_FOUND"
    assert theirs["detail"].replace(their_id, "ID") == unknown["detail"].replace(random_id, "ID")


async def test_another_users_reservation_is_not_found(
    booking: Booking, alice: Owner, bob: tuple[str, str]
) -> None:
    user, _ = bob
    random_id = str(uuid.uuid4())
    for their_id in (alice.held_id, alice.paid_reservation_id):
        theirs = await booking.http.get(f"/reservations/{their_id}", headers=auth(user))
        unknown = await booking.http.get(f"/reservations/{random_id}", headers=auth(user))
        _same_refusal(assert_problem(theirs, 404), assert_problem(unknown, 404), their_id, random_id)
    mine = await booking.http.get(f"/reservations/{alice.held_id}", headers=auth(alice.user))
    assert mine.status_code == 200 and mine.json()["status"] == "HELD"


async def test_another_users_reservation_cannot_be_cancelled(
    booking: Booking, alice: Owner, bob: tuple[str, str]
) -> None:
    user, queue_token = bob
    for their_id in (alice.held_id, alice.paid_reservation_id):
        response = await booking.http.delete(f"/reservations/{their_id}",
                                             headers=booking.guarded(user, queue_token))
        assert_problem(response, 404, "NOT_FOUND")
    mine = await booking.http.get(f"/reservations/{alice.held_id}", headers=auth(alice.user))
    assert mine.json()["status"] == "HELD"
    seats = (await booking.http.get(f"/schedules/{alice.schedule_id}/seats")).json()["items"]
    assert [s["status"] for s in seats[:2]] == ["HELD", "SOLD"]


async def test_another_users_reservation_cannot_be_paid(
    booking: Booking, alice: Owner, bob: tuple[str, str], settings: Settings
) -> None:
    user, queue_token = bob
    for their_id in (alice.held_id, alice.paid_reservation_id):
        response = await booking.pay(user, queue_token, their_id)
        assert_problem(response, 404, "NOT_FOUND")
    assert (await booking.http.get("/points", headers=auth(user))).json()["balance"] == 10_000
    assert await sql(settings, "SELECT id FROM payments WHERE user_id = :u", u=user) == []
    mine = await booking.http.get(f"/reservations/{alice.held_id}", headers=auth(alice.user))
    assert mine.json()["status"] == "HELD"
    # Bob's token was not used up by his refused attempts.
    me = await booking.http.get("/queue/tokens/me", headers=booking.guarded(user, queue_token))
    assert me.status_code == 200 and me.json()["status"] == "ACTIVE"


async def test_another_users_payment_and_tickets_are_hidden(
    booking: Booking, alice: Owner, bob: tuple[str, str]
) -> None:
    user, _ = bob
    random_id = str(uuid.uuid4())
    theirs = await booking.http.get(f"/payments/{alice.payment_id}", headers=auth(user))
    unknown = await booking.http.get(f"/payments/{random_id}", headers=auth(user))
    _same_refusal(assert_problem(theirs, 404), assert_problem(unknown, 404), alice.payment_id, random_id)
    assert (await booking.http.get("/tickets", headers=auth(user))).json() == {"items": []}
    mine = (await booking.http.get("/tickets", headers=auth(alice.user))).json()["items"]
    assert [(t["id"], t["payment_id"], t["seat_no"]) for t in mine] == [
        (alice.ticket_id, alice.payment_id, 2)]
    payment = await booking.http.get(f"/payments/{alice.payment_id}", headers=auth(alice.user))
    assert payment.status_code == 200 and payment.json()["reservation_id"] == alice.paid_reservation_id


async def test_a_users_points_are_their_own(booking: Booking, alice: Owner, bob: tuple[str, str]) -> None:
    user, _ = bob
    assert (await booking.http.get("/points", headers=auth(user))).json() == {
        "user_id": user, "balance": 10_000}
    history = (await booking.http.get("/points/history", headers=auth(user))).json()["items"]
    assert [(h["type"], h["amount"]) for h in history] == [("CHARGE", 10_000)]
    # A user_id in the body does not charge someone else.
    response = await booking.http.post("/points/charge", json={"amount": 5, "user_id": alice.user},
                                       headers=auth(user))
    assert response.json() == {"user_id": user, "balance": 10_005}
    assert (await booking.http.get("/points", headers=auth(alice.user))).json()["balance"] == 9_000


async def test_another_users_queue_token_is_invalid(
    booking: Booking, alice: Owner, bob: tuple[str, str]
) -> None:
    user, _ = bob
    stolen = booking.guarded(user, alice.token)
    hold = await booking.http.post("/reservations", headers=stolen,
                                   json={"schedule_id": alice.schedule_id, "seat_no": 3})
    assert_problem(hold, 401, "QUEUE_TOKEN_INVALID")
    cancel = await booking.http.delete(f"/reservations/{alice.held_id}", headers=stolen)
    assert_problem(cancel, 401, "QUEUE_TOKEN_INVALID")
    pay = await booking.pay(user, alice.token, alice.held_id)
    assert_problem(pay, 401, "QUEUE_TOKEN_INVALID")
    me = await booking.http.get("/queue/tokens/me", headers=stolen)
    assert_problem(me, 401, "QUEUE_TOKEN_INVALID")
    # Alice's token still works for Alice.
    mine = await booking.http.get("/queue/tokens/me", headers=booking.guarded(alice.user, alice.token))
    assert mine.json()["status"] == "ACTIVE"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(payload)}."


def _tampered(user: str, victim: str) -> str:
    header, _, signature = token(user).split(".")
    payload = _b64({"sub": victim, "exp": int(time.time()) + 3600})
    return f"{header}.{payload}.{signature}"


def _hs512(payload: dict[str, Any]) -> str:
    """Signed with the right secret but another algorithm (PyJWT warns the key is short)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(payload, JWT_SECRET, algorithm="HS512")


def _bad_tokens() -> list[Any]:
    now = int(time.time())
    hour = now + 3600

    def sub() -> str:
        return new_user("forged")

    cases = {
        "wrong-secret": token(sub(), secret="another-secret-" + "y" * 20),
        "expired": token(sub(), expires_in=-5),
        "alg-none": _unsigned({"sub": sub(), "exp": hour}),
        "alg-none-admin": _unsigned({"sub": sub(), "exp": hour, "role": "admin"}),
        "alg-NONE": _unsigned({"sub": sub(), "exp": hour}, alg="NONE"),
        "alg-hs512": _hs512({"sub": sub(), "exp": hour}),
        "no-exp": jwt.encode({"sub": sub()}, JWT_SECRET, algorithm="HS256"),
        "exp-null": jwt.encode({"sub": sub(), "exp": None}, JWT_SECRET, algorithm="HS256"),
        "exp-text": jwt.encode({"sub": sub(), "exp": "soon"}, JWT_SECRET, algorithm="HS256"),
        "no-sub": jwt.encode({"exp": hour}, JWT_SECRET, algorithm="HS256"),
        "sub-empty": token(""),
        "sub-65-chars": token("a" * 65),
        "sub-space": token("bad user"),
        "sub-dot": token("bad.user"),
        "sub-slash": token("../admin"),
        "sub-unicode": token("us\u00e9r"),
        "sub-newline": token("user\n"),
        "sub-number": jwt.encode({"sub": 12345, "exp": hour}, JWT_SECRET, algorithm="HS256"),
        "not-yet-valid": token(sub(), nbf=now + 600),
        "tampered-payload": _tampered(new_user("mallory"), sub()),
        "garbage": "abc.def.ghi",
        "two-parts": "abc.def",
        "empty-signature": token(sub()).rsplit(".", 1)[0] + ".",
    }
    return [pytest.param(value, id=name) for name, value in cases.items()]


@pytest.mark.parametrize("bad", _bad_tokens())
async def test_bad_jwts_are_401(booking: Booking, settings: Settings, bad: str) -> None:
    for method, path in (("GET", "/points"), ("POST", "/queue/tokens"), ("GET", "/tickets")):
        response = await booking.http.request(method, path, headers={"Authorization": f"Bearer {bad}"})
        assert_problem(response, 401, "UNAUTHENTICATED")
    concert = await booking.http.post("/admin/concerts", headers={"Authorization": f"Bearer {bad}"},
                                      json={"title": "t", "venue": "v", "schedules": []})
    assert_problem(concert, 401, "UNAUTHENTICATED")
    # Nobody came into existence through a refused token.
    try:
        subject = jwt.decode(bad, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        subject = None
    if isinstance(subject, str) and subject:
        assert await sql(settings, "SELECT id FROM users WHERE id = :id", id=subject) == []


@pytest.mark.parametrize("header", ["bearer {}", "Bearer  {}", "Token {}", "{}", "Bearer {}x"])
async def test_authorization_header_forms(booking: Booking, header: str) -> None:
    user = new_user()
    response = await booking.http.get("/points", headers={"Authorization": header.format(token(user))})
    if header == "bearer {}":  # the scheme is case-insensitive (RFC 9110)
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("role", [None, "user", "Admin", "ADMIN", ["admin"], {"admin": True}, ""])
async def test_non_admins_cannot_create_concerts(booking: Booking, role: Any) -> None:
    claims = {} if role is None else {"role": role}
    body = {"title": "Nope " + uuid.uuid4().hex, "venue": "Hall", "schedules": [
        {"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": 1, "price": 1}]}
    response = await booking.http.post("/admin/concerts", json=body, headers=auth(new_user(), **claims))
    assert_problem(response, 403, "FORBIDDEN")
    titles = [c["title"] for c in (await booking.http.get("/concerts")).json()["items"]]
    assert body["title"] not in titles


async def test_the_longest_legal_subject_is_accepted(booking: Booking) -> None:
    user = "A-z_9" + "x" * 59
    response = await booking.http.get("/points", headers=auth(user))
    assert response.json() == {"user_id": user, "balance": 0}


async def test_contact_claims_are_stored(booking: Booking, settings: Settings) -> None:
    user = new_user("kim")
    query = "SELECT name, phone_number FROM users WHERE id = :id"
    response = await booking.http.get("/points", headers=auth(user))
    assert response.status_code == 200
    assert await sql(settings, query, id=user) == [{"name": None, "phone_number": None}]

    await booking.http.get("/points", headers=auth(user, name="김철수", phone_number="+821012345678"))
    assert await sql(settings, query, id=user) == [{"name": "김철수", "phone_number": "+821012345678"}]
    # A later request without the claims keeps them; a changed claim replaces the old value.
    await booking.http.get("/points", headers=auth(user))
    assert await sql(settings, query, id=user) == [{"name": "김철수", "phone_number": "+821012345678"}]
    await booking.http.get("/tickets", headers=auth(user, phone_number="+821099998888"))
    assert await sql(settings, query, id=user) == [{"name": "김철수", "phone_number": "+821099998888"}]
    # The first request of a user may carry the claims too.
    other = new_user("lee")
    await booking.http.post("/queue/tokens", headers=auth(other, name="Lee", phone_number="010-1234-5678"))
    assert await sql(settings, query, id=other) == [{"name": "Lee", "phone_number": "010-1234-5678"}]


@pytest.mark.parametrize(("name", "phone"), [
    ("nul\u0000name", "+82\u000010"), ("lone \ud800 surrogate", "+82\udfff"), (12, ["010"]),
    ("n" * 5000, "9" * 5000),
])
async def test_odd_contact_claims_never_break_a_request(
    booking: Booking, settings: Settings, name: Any, phone: Any
) -> None:
    # API.md §1's token policy: such claims refuse the token (401), never a 5xx, and
    # nothing of them reaches the database, SMS, Kakao or the venue.
    user = new_user("odd")
    payload = json.dumps({"sub": user, "exp": int(time.time()) + 60, "name": name,
                          "phone_number": phone})
    signed = jwt.api_jws.encode(payload.encode(), JWT_SECRET, algorithm="HS256")
    response = await booking.http.get("/points", headers={"Authorization": f"Bearer {signed}"})
    assert_problem(response, 401, "UNAUTHENTICATED")
    rows = await sql(settings, "SELECT name, phone_number FROM users WHERE id = :id", id=user)
    assert rows == []


async def test_first_requests_in_a_crowd_each_record_their_user_once(
    booking: Booking, settings: Settings
) -> None:
    users = [new_user("crowd") for _ in range(300)]
    # Two requests per user at once, each with only one of the contact claims.
    responses = await asyncio.gather(*(
        booking.http.get("/points", headers=auth(user, **claim))
        for n, user in enumerate(users)
        for claim in ({"name": f"name of {user}"}, {"phone_number": f"+82{n:08d}"})
    ))
    assert [r.status_code for r in responses] == [200] * 600
    rows = await sql(settings, """
        SELECT u.id, u.name, u.phone_number, count(w.user_id) AS wallets
        FROM users u LEFT JOIN wallets w ON w.user_id = u.id
        WHERE u.id = ANY(:ids) GROUP BY u.id""", ids=users)
    assert len(rows) == len(users)
    expected = {user: (f"name of {user}", f"+82{n:08d}", 1) for n, user in enumerate(users)}
    assert {row["id"]: (row["name"], row["phone_number"], row["wallets"]) for row in rows} == expected
