"""The OpenAPI 3.1 document, built from the endpoint declarations and their pydantic types.

What the layer refuses by itself (authentication, bodies, rate limits, dependencies) follows
from how an endpoint is declared; what its own rules and guards refuse, it declares
(Endpoint.errors). Either way each answer is listed with its status, its codes and headers.
"""

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.booking.entrypoints.api.examples import EXAMPLES
from services.booking.entrypoints.api.guards import QUEUE_TOKEN_MAX_LENGTH
from services.booking.entrypoints.api.http import Endpoint, Link
from services.booking.entrypoints.api.problems import (
    CONFLICT,
    DEPENDENCY_UNAVAILABLE,
    FORBIDDEN,
    PAYLOAD_TOO_LARGE,
    PROBLEM_JSON,
    RATE_LIMITED,
    UNAUTHENTICATED,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_FAILED,
    Refusal,
    problem_body,
    refusal,
)
from services.booking.entrypoints.api.schemas import Problem

REF = "#/components/schemas/{model}"
HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "X-Queue-Token": ("The caller's queue token (POST /queue/tokens) for the concert of the schedule or"
                      " reservation acted on; ACTIVE where a route acts.",
                      {"type": "string", "minLength": 1, "maxLength": QUEUE_TOKEN_MAX_LENGTH}),
    "Idempotency-Key": ("1-128 printable characters; a repeat replays the first completed answer.",
                        {"type": "string", "pattern": "^[ -~]{1,128}$"}),
    "Retry-After": ("Whole seconds after which asking again is worth it.",
                    {"type": "string", "pattern": "^[0-9]+$"}),
    "WWW-Authenticate": ("The scheme to authenticate with: Bearer.", {"type": "string"}),
}
SECURITY_SCHEMES = {
    "bearerJWT": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "HS256 JWT: sub, exp, optional role \"admin\", name, phone_number."},
    "queueToken": {"type": "apiKey", "in": "header", "name": "X-Queue-Token",
                   "description": HEADERS["X-Queue-Token"][0]},
    "idempotencyKey": {"type": "apiKey", "in": "header", "name": "Idempotency-Key",
                       "description": HEADERS["Idempotency-Key"][0]},
}
SCHEME_OF_HEADER = {"X-Queue-Token": "queueToken", "Idempotency-Key": "idempotencyKey"}
ERROR_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
HEADS_TOO_LARGE = {"description": "Request Header Fields Too Large: the request's headers exceed 16 KiB"
                                  " (the connection may be closed instead)"}


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
        description, schema = HEADERS[name]
        found.append({"name": name, "in": "header", "required": not header.endswith("?"),
                      "description": description, "schema": schema})
    return found


def _layer_refusals(endpoint: Endpoint) -> list[Refusal]:
    """What the HTTP layer answers by itself, from how the endpoint is declared."""
    found = []
    if endpoint.access != "public":
        found.append(UNAUTHENTICATED)
    if endpoint.access == "admin":
        found.append(FORBIDDEN)
    if endpoint.body is not None:
        found += [PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, VALIDATION_FAILED]
    if endpoint.query is not None or "{" in endpoint.path:
        found.append(VALIDATION_FAILED)
    if endpoint.method != "GET":
        found.append(CONFLICT)
    if endpoint.rate_limited:  # the health probes are neither limited nor answer outages as problems
        found += [RATE_LIMITED, DEPENDENCY_UNAVAILABLE]
    return found


def refusals(endpoint: Endpoint) -> dict[int, list[str]]:
    """Every problem the endpoint can answer: status → its codes."""
    codes: dict[int, list[str]] = {}
    for found in [*_layer_refusals(endpoint), *map(refusal, endpoint.errors)]:
        listed = codes.setdefault(found.status, [])
        if found.code not in listed:
            listed.append(found.code)
    return dict(sorted(codes.items()))


def _headers(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"description": HEADERS[name][0], "schema": HEADERS[name][1]} for name in names}


def _problem_answer(status: int, codes: list[str], problem: dict[str, Any]) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    # The codes as an enum beside Problem (no const status: generators cannot merge it with int).
    schema = {"allOf": [problem, {"type": "object", "properties": {"code": {"enum": codes}}}]}
    example = problem_body(status, codes[0], phrase, "why this request was refused")
    answer: dict[str, Any] = {"description": f"{phrase}: {', '.join(codes)}",
                              "content": {PROBLEM_JSON: {"schema": schema, "example": example}}}
    if status in ERROR_HEADERS:
        answer["headers"] = _headers(ERROR_HEADERS[status])
    return answer


def _link(link: Link) -> dict[str, Any]:
    found: dict[str, Any] = {"operationId": link.target, "description": link.name}
    if link.parameters:
        found["parameters"] = dict(link.parameters)
    if link.body is not None:
        found["requestBody"] = dict(link.body)
    return found


def _responses(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": endpoint.summary or "done"}
    if endpoint.response is not None:
        schema = refs[(endpoint.response, "serialization")]
        success["content"] = {"application/json": {"schema": schema, "example": EXAMPLES[endpoint.response]}}
    if endpoint.reply_headers:
        success["headers"] = _headers(endpoint.reply_headers)
    if endpoint.links:
        success["links"] = {link.name: _link(link) for link in endpoint.links}
    responses = {str(endpoint.status): success}
    for status, description in endpoint.also.items():
        responses[str(status)] = {**success, "description": description}
    problem = refs[(Problem, "serialization")]
    for status, codes in refusals(endpoint).items():
        responses.setdefault(str(status), _problem_answer(status, codes, problem))
    responses["431"] = HEADS_TOO_LARGE
    return dict(sorted(responses.items()))


def _security(endpoint: Endpoint) -> list[dict[str, list[str]]]:
    """Bearer JWT with the schemes of the headers it requires; an optional one as an alternative."""
    if endpoint.access == "public":
        return []
    required: dict[str, list[str]] = {"bearerJWT": []}
    optional = []
    for header in endpoint.headers:
        scheme = SCHEME_OF_HEADER.get(header.rstrip("?"))
        if scheme is not None and header.endswith("?"):
            optional.append(scheme)
        elif scheme is not None:
            required[scheme] = []
    return [required, *({**required, scheme: []} for scheme in optional)]


OPERATION_ID = re.compile(r"[a-z]+(?:[A-Z][a-z]*)+")


def check_operation_ids(endpoints: list[Endpoint]) -> None:
    """Every operation named once, as a verb and an object (`holdSeat`), and every link's
    target one of them: the names are what generated clients call."""
    named: dict[str, str] = {}
    for endpoint in endpoints:
        where = f"{endpoint.method} {endpoint.path}"
        name = endpoint.operation_id
        if not OPERATION_ID.fullmatch(name):  # a bare verb ("get") does not match
            raise ValueError(f"{where}: operation id {name!r} is not a camelCase verb and object")
        if name in named:
            raise ValueError(f"{where}: operation id {name!r} is also {named[name]}'s")
        named[name] = where
    for endpoint in endpoints:
        for link in endpoint.links:
            if link.target not in named:
                raise ValueError(f"{endpoint.operation_id}: link {link.name!r} names no operation")


def _operation(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [endpoint.tag], "summary": endpoint.summary, "operationId": endpoint.operation_id,
        "responses": _responses(endpoint, refs),
    }
    if parameters := _parameters(endpoint):
        operation["parameters"] = parameters
    if endpoint.body is not None:
        schema = refs[(endpoint.body, "validation")]
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": schema, "example": EXAMPLES[endpoint.body]}}}
    operation["security"] = _security(endpoint)
    return operation


def document(endpoints: Iterable[Endpoint], title: str, version: str, description: str) -> dict[str, Any]:
    """The whole document for these endpoints."""
    shown = [endpoint for endpoint in endpoints if endpoint.documented]
    check_operation_ids(shown)
    refs, schemas = _components(shown)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in shown:
        operation = _operation(endpoint, refs)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
