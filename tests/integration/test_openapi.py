"""/openapi.json and /docs: made from the endpoint declarations, and true to them."""

import re
import uuid
from typing import Any

import orjson
import pytest

from services.booking.entrypoints.api.app import ENDPOINTS
from services.booking.entrypoints.api.guards import IDEMPOTENCY_KEY, QUEUE_TOKEN_MAX_LENGTH
from tests.support import Booking, auth

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


@pytest.fixture(scope="module")
async def document(booking: Booking) -> dict[str, Any]:
    response = await booking.http.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    found: dict[str, Any] = response.json()
    return found


async def test_every_documented_endpoint_is_in_the_document(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    documented = {(e.path, e.method.lower()) for e in ENDPOINTS if e.documented}
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == documented
    assert "/metrics" not in document["paths"]


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = _refs(document["paths"])
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


async def test_answers_are_documented_with_their_media_types_and_headers(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    pay = paths["/payments"]["post"]
    assert {"201", "400", "401", "402", "403", "404", "409", "410", "413", "415", "422", "429",
            "503"} <= pay["responses"].keys()
    assert "content" not in pay["responses"]["431"]  # the server's own answer, before the app
    for status, answer in pay["responses"].items():
        if status == "431":
            continue
        media = "application/json" if status.startswith("2") else PROBLEM
        assert media in answer["content"], (status, answer)
    assert "Retry-After" in pay["responses"]["503"]["headers"]
    assert "Retry-After" in pay["responses"]["429"]["headers"]
    assert {p["name"] for p in pay["parameters"]} == {"X-Queue-Token", "Idempotency-Key"}
    assert pay["security"] == [{"bearerJWT": [], "queueToken": [], "idempotencyKey": []}]
    poll = paths["/queue/tokens/me"]["get"]
    assert "Retry-After" in poll["responses"]["200"]["headers"]
    issue = paths["/queue/tokens"]["post"]
    assert {"200", "201", "401", "404", "409", "422", "503"} <= issue["responses"].keys()
    assert "requestBody" in issue
    room = paths["/concerts/{concert_id}/waiting-room"]["get"]
    assert {"200", "404", "422", "503"} <= room["responses"].keys() and room["security"] == []
    change = paths["/admin/concerts/{concert_id}/waiting-room"]["patch"]
    assert {"200", "401", "403", "404", "422", "503"} <= change["responses"].keys()
    history = paths["/points/history"]["get"]
    limit = next(p for p in history["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 100
    assert paths["/health/live"]["get"]["security"] == []
    assert "429" not in paths["/health/live"]["get"]["responses"]
    assert document["components"]["securitySchemes"]["bearerJWT"]["scheme"] == "bearer"


async def test_request_bodies_carry_the_validators_constraints(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    charge = document["paths"]["/points/charge"]["post"]["requestBody"]["content"]["application/json"]
    amount = schemas[charge["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (1, 10_000_000)


async def test_docs_page_loads_the_document(booking: Booking) -> None:
    page = await booking.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text


def _codes(answer: dict[str, Any]) -> set[str]:
    schema = answer["content"][PROBLEM]["schema"]
    return set(schema["allOf"][1]["properties"]["code"]["enum"])


async def test_each_problem_answer_names_the_codes_the_route_gives(document: dict[str, Any]) -> None:
    paths = document["paths"]
    pay = paths["/payments"]["post"]["responses"]
    assert _codes(pay["400"]) == {"IDEMPOTENCY_KEY_REQUIRED"}
    assert _codes(pay["401"]) == {"UNAUTHENTICATED", "QUEUE_TOKEN_INVALID"}
    assert _codes(pay["402"]) == {"INSUFFICIENT_POINTS"}
    assert _codes(pay["403"]) == {"QUEUE_TOKEN_NOT_ACTIVE"}
    assert {"ALREADY_PAID", "IDEMPOTENCY_KEY_IN_PROGRESS"} <= _codes(pay["409"])
    assert _codes(pay["410"]) == {"RESERVATION_EXPIRED"}
    assert _codes(pay["422"]) == {"VALIDATION_FAILED", "IDEMPOTENCY_KEY_REUSED"}
    hold = paths["/reservations"]["post"]["responses"]
    assert {"SEAT_UNAVAILABLE", "HOLD_LIMIT_REACHED"} <= _codes(hold["409"])
    assert _codes(hold["404"]) == {"NOT_FOUND"}
    cancel = paths["/reservations/{reservation_id}"]["delete"]["responses"]
    assert "RESERVATION_NOT_HELD" in _codes(cancel["409"])
    assert "QUEUE_NOT_OPEN" in _codes(paths["/queue/tokens"]["post"]["responses"]["409"])
    assert _codes(paths["/admin/concerts"]["post"]["responses"]["403"]) == {"FORBIDDEN"}
    assert "BALANCE_LIMIT_EXCEEDED" in _codes(paths["/points/charge"]["post"]["responses"]["409"])
    for path, item in paths.items():
        for method, operation in item.items():
            answers = operation["responses"]
            assert "431" in answers, (path, method)
            if path.startswith("/health/"):
                assert "429" not in answers
                continue
            assert _codes(answers["429"]) == {"RATE_LIMITED"}, (path, method)
            assert "Retry-After" in answers["429"]["headers"]
            assert "DEPENDENCY_UNAVAILABLE" in _codes(answers["503"]), (path, method)
            for status, answer in answers.items():
                if status >= "400" and status != "431":
                    example = answer["content"][PROBLEM]["example"]
                    assert example["status"] == int(status) and example["code"] in _codes(answer)


async def test_a_problem_answer_is_what_the_document_says(booking: Booking, document: dict[str, Any]) -> None:
    response = await booking.http.post("/payments", json={"reservation_id": str(uuid.uuid4())},
                                       headers={**auth("openapi-payer"), "Idempotency-Key": "k-1"})
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body.keys() == {"type", "title", "status", "detail", "code"}
    assert body["code"] in _codes(document["paths"]["/payments"]["post"]["responses"]["401"])


async def test_security_schemes_name_every_credential(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerJWT"] == {**schemes["bearerJWT"], "type": "http", "scheme": "bearer"}
    assert (schemes["queueToken"]["in"], schemes["queueToken"]["name"]) == ("header", "X-Queue-Token")
    key = schemes["idempotencyKey"]
    assert (key["in"], key["name"]) == ("header", "Idempotency-Key")
    paths = document["paths"]
    assert paths["/payments"]["post"]["security"] == [
        {"bearerJWT": [], "queueToken": [], "idempotencyKey": []}]
    assert paths["/reservations"]["post"]["security"] == [{"bearerJWT": [], "queueToken": []}]
    assert paths["/points/charge"]["post"]["security"] == [
        {"bearerJWT": []}, {"bearerJWT": [], "idempotencyKey": []}]
    assert paths["/admin/concerts"]["post"]["security"] == [{"bearerJWT": []}]
    assert paths["/concerts"]["get"]["security"] == []


async def test_header_constraints_are_the_validators(document: dict[str, Any]) -> None:
    pay = {p["name"]: p["schema"] for p in document["paths"]["/payments"]["post"]["parameters"]}
    key = re.compile(pay["Idempotency-Key"]["pattern"])
    assert key.fullmatch("k" * 128) and not key.fullmatch("k" * 129) and not key.fullmatch("\x7f")
    assert IDEMPOTENCY_KEY.pattern == r"[\x20-\x7e]{1,128}"
    token = pay["X-Queue-Token"]
    assert (token["minLength"], token["maxLength"]) == (1, QUEUE_TOKEN_MAX_LENGTH)


def _link_targets(document: dict[str, Any], path: str, method: str, status: str) -> set[str]:
    links = document["paths"][path][method]["responses"][status]["links"]
    return {link["operationId"] for link in links.values()}


async def test_creating_operations_link_to_those_that_use_their_ids(document: dict[str, Any]) -> None:
    ids = {(path, method): operation["operationId"]
           for path, item in document["paths"].items() for method, operation in item.items()}
    created = _link_targets(document, "/admin/concerts", "post", "201")
    assert {ids[("/concerts/{concert_id}/schedules", "get")], ids[("/queue/tokens", "post")],
            ids[("/concerts/{concert_id}/waiting-room", "get")]} <= created
    assert _link_targets(document, "/reservations", "post", "201") == {
        ids[("/reservations/{reservation_id}", "get")], ids[("/reservations/{reservation_id}", "delete")],
        ids[("/payments", "post")]}
    assert _link_targets(document, "/payments", "post", "201") == {ids[("/payments/{payment_id}", "get")]}
    for status in ("200", "201"):
        assert _link_targets(document, "/queue/tokens", "post", status) == {ids[("/queue/tokens/me", "get")]}
    pay = document["paths"]["/reservations"]["post"]["responses"]["201"]["links"]["pay"]
    assert pay["requestBody"] == {"reservation_id": "$response.body#/id"}


async def test_every_body_has_an_example_its_type_accepts(document: dict[str, Any]) -> None:
    for endpoint in ENDPOINTS:
        if not endpoint.documented:
            continue
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        if endpoint.body is not None:
            example = operation["requestBody"]["content"]["application/json"]["example"]
            endpoint.body.model_validate_json(orjson.dumps(example))  # as a request is read
        if endpoint.response is not None:
            example = operation["responses"][str(endpoint.status)]["content"]["application/json"]["example"]
            endpoint.response.model_validate_json(orjson.dumps(example))
