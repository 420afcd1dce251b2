"""The OpenAPI 3.1 document, built from the endpoint declarations and their pydantic types."""

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.booking.entrypoints.api.http import Endpoint
from services.booking.entrypoints.api.problems import PROBLEM_JSON, title_of
from services.booking.entrypoints.api.schemas import Problem

REF = "#/components/schemas/{model}"
HEADER_DOCS = {
    "X-Queue-Token": "The caller's queue token (POST /queue/tokens) for the concert of the schedule or"
                     " reservation acted on; ACTIVE where a route acts.",
    "Idempotency-Key": "1-128 printable characters; a repeat replays the first completed answer.",
    "Retry-After": "Whole seconds after which asking again is worth it.",
    "WWW-Authenticate": "The scheme to authenticate with: Bearer.",
}
ERROR_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
ACCESS_ERRORS = {"public": (), "user": (401,), "admin": (401, 403)}
QUEUE_GUARD_ERRORS = (401, 403, 503)
BODY_ERRORS = (413, 415, 422)


def _components(endpoints: list[Endpoint]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Each model's schema once, validation forms of request types and serialization forms of
    response types, keyed for `$ref`s."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            wanted.append((endpoint.response, "serialization"))
    refs, document = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    return refs, document.get("$defs", {})


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for part in endpoint.path.split("/"):
        if part.startswith("{"):
            found.append({"name": part[1:-1], "in": "path", "required": True,
                          "schema": {"type": "string", "format": "uuid"}})
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        required = set(schema.get("required", ()))
        found += [{"name": name, "in": "query", "required": name in required, "schema": prop}
                  for name, prop in schema["properties"].items()]
    for header in endpoint.headers:
        name = header.rstrip("?")
        found.append({"name": name, "in": "header", "required": not header.endswith("?"),
                      "description": HEADER_DOCS[name], "schema": {"type": "string"}})
    return found


def _error_statuses(endpoint: Endpoint) -> list[int]:
    statuses = {*ACCESS_ERRORS[endpoint.access], *endpoint.errors}
    if endpoint.body is not None:
        statuses.update(BODY_ERRORS)
    if endpoint.query is not None or "{" in endpoint.path:
        statuses.add(422)
    if "X-Queue-Token" in endpoint.headers:
        statuses.update(QUEUE_GUARD_ERRORS)
    if endpoint.access != "public" or endpoint.path != "/health/live":
        statuses.add(503)
    if endpoint.rate_limited:
        statuses.add(429)
    return sorted(statuses)


def _headers(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"description": HEADER_DOCS[name], "schema": {"type": "string"}} for name in names}


def _responses(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": endpoint.summary or "done"}
    if endpoint.response is not None:
        schema = refs[(endpoint.response, "serialization")]
        success["content"] = {"application/json": {"schema": schema}}
    if endpoint.reply_headers:
        success["headers"] = _headers(endpoint.reply_headers)
    responses = {str(endpoint.status): success}
    for status, description in endpoint.also.items():
        responses[str(status)] = {**success, "description": description}
    problem = {PROBLEM_JSON: {"schema": refs[(Problem, "serialization")]}}
    for status in _error_statuses(endpoint):
        answer = {"description": title_of(status), "content": problem}
        if status in ERROR_HEADERS:
            answer["headers"] = _headers(ERROR_HEADERS[status])
        responses.setdefault(str(status), answer)
    return responses


def _operation(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [endpoint.tag], "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
        "responses": _responses(endpoint, refs),
    }
    if parameters := _parameters(endpoint):
        operation["parameters"] = parameters
    if endpoint.body is not None:
        schema = refs[(endpoint.body, "validation")]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    operation["security"] = [] if endpoint.access == "public" else [{"bearerJWT": []}]
    return operation


def document(endpoints: Iterable[Endpoint], title: str, version: str, description: str) -> dict[str, Any]:
    """The whole document for these endpoints."""
    shown = [endpoint for endpoint in endpoints if endpoint.documented]
    refs, schemas = _components(shown)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in shown:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerJWT": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
