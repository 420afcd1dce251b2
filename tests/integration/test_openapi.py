"""/openapi.json and /docs: made from the endpoint declarations, and true to them."""

from typing import Any

import pytest

from services.booking.entrypoints.api.app import ENDPOINTS
from tests.support import Booking

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
    for status, answer in pay["responses"].items():
        media = "application/json" if status.startswith("2") else PROBLEM
        assert media in answer["content"], (status, answer)
    assert "Retry-After" in pay["responses"]["503"]["headers"]
    assert "Retry-After" in pay["responses"]["429"]["headers"]
    assert {p["name"] for p in pay["parameters"]} == {"X-Queue-Token", "Idempotency-Key"}
    assert pay["security"] == [{"bearerJWT": []}]
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
