"""Operation ids are the names generated clients call: meaningful, unique, and checked where
the document is made."""

from dataclasses import replace
from typing import Any

import pytest

from services.booking.entrypoints.api import openapi
from services.booking.entrypoints.api.app import DESCRIPTION, ENDPOINTS, TITLE, VERSION
from services.booking.entrypoints.api.http import Link

pytestmark = pytest.mark.unit
HTTP_VERBS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _document(endpoints: list[Any]) -> dict[str, Any]:
    return openapi.document(endpoints, TITLE, VERSION, DESCRIPTION)


def test_every_operation_has_its_own_name_that_is_not_a_bare_verb() -> None:
    ids = [operation["operationId"] for item in _document(ENDPOINTS)["paths"].values()
           for operation in item.values()]
    assert len(ids) == len(set(ids)) == sum(endpoint.documented for endpoint in ENDPOINTS)
    for name in ids:
        assert name.lower() not in HTTP_VERBS and "_" not in name, name
        assert name[0].islower() and any(letter.isupper() for letter in name), name
    assert {"holdSeat", "payReservation", "createConcert", "issueQueueToken"} <= set(ids)


def test_a_name_given_twice_or_a_bare_verb_stops_the_document() -> None:
    first, second, *rest = [endpoint for endpoint in ENDPOINTS if endpoint.documented]
    twice = replace(second, operation_id=first.operation_id)
    with pytest.raises(ValueError, match="also"):
        _document([first, twice, *rest])
    for bad in ("get", "get_get", "", "HoldSeat"):
        with pytest.raises(ValueError, match="camelCase"):
            _document([replace(first, operation_id=bad), second, *rest])


def test_a_link_to_an_unknown_operation_stops_the_document() -> None:
    first, *rest = [endpoint for endpoint in ENDPOINTS if endpoint.documented]
    astray = replace(first, links=(Link("nowhere", "POST /reservations"),))
    with pytest.raises(ValueError, match="names no operation"):
        _document([astray, *rest])
