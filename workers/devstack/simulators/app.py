"""A provider simulator as a Starlette app: the provider's endpoint plus `/_sim/` controls.

Controls (JSON):
  GET/PUT/DELETE /_sim/behaviour  read, switch, or reset to "ok" how calls are answered
  GET /_sim/calls                 every recorded call, oldest first
  DELETE /_sim/calls              forget calls, counts and accepted ids
  GET /_sim/stats                 counts by outcome (accepted, duplicate, failed, ...)
"""

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.devstack.simulators.providers import PROVIDERS, ProviderName, ProviderSpec
from workers.devstack.simulators.state import Behaviour, IncomingCall, SimulatorState

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(
    provider: ProviderName, *, api_key: str | None = None, state: SimulatorState | None = None
) -> Starlette:
    """Build the simulator of `provider`; Kakao and SMS need the `api_key` they accept."""
    spec = PROVIDERS[provider]
    if spec.auth_scheme is not None and not api_key:
        raise ValueError(f"the {provider} simulator needs an api key to check")
    state = state or SimulatorState()
    routes = [
        Route(spec.path, _provider_endpoint(spec, api_key, state), methods=["POST"]),
        *_control_routes(state),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = state
    return app


def _provider_endpoint(spec: ProviderSpec, api_key: str | None, state: SimulatorState) -> Endpoint:
    async def receive(request: Request) -> Response:
        call = _incoming(spec, api_key, request, await request.body())
        reply = state.answer(call, (spec.accepted_status, spec.accepted_label))
        # Recorded before the delay: a slow provider has already taken the message
        # when the client gives up, which is what makes stable ids matter.
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    return receive


def _incoming(spec: ProviderSpec, api_key: str | None, request: Request, raw: bytes) -> IncomingCall:
    headers = dict(request.headers)
    try:
        body: object = json.loads(raw)
        invalid = _validation_problem(spec, body)
    except ValueError:
        body, invalid = raw.decode(errors="replace"), "body is not JSON"
    fields = body if isinstance(body, dict) else {}
    key = fields.get(spec.id_field)
    recipient = fields.get(spec.recipient_field) if spec.recipient_field else None
    seat = fields.get(spec.seat_field) if spec.seat_field else None
    return IncomingCall(
        method=request.method,
        path=request.url.path,
        headers=headers,
        body=body,
        key=key if isinstance(key, str) else None,
        recipient=recipient if isinstance(recipient, str) else None,
        seat=seat if isinstance(seat, int) else None,
        authorized=_authorized(spec, api_key, headers.get("authorization", "")),
        invalid=invalid,
    )


def _validation_problem(spec: ProviderSpec, body: object) -> str | None:
    try:
        spec.request_model.model_validate(body)
    except ValidationError as error:
        return "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'body'}: {item['msg']}" for item in error.errors()
        )
    return None


def _authorized(spec: ProviderSpec, api_key: str | None, header: str) -> bool:
    if spec.auth_scheme is None:
        return True
    expected = f"{spec.auth_scheme} {api_key}"
    return hmac.compare_digest(header.encode(), expected.encode())


def _control_routes(state: SimulatorState) -> list[Route]:
    async def get_behaviour(request: Request) -> Response:
        return JSONResponse(state.behaviour.model_dump())

    async def put_behaviour(request: Request) -> Response:
        try:
            behaviour = Behaviour.model_validate_json(await request.body())
        except ValidationError as error:
            return JSONResponse({"errors": json.loads(error.json(include_url=False))}, 422)
        state.set_behaviour(behaviour)
        return JSONResponse(behaviour.model_dump())

    async def reset_behaviour(request: Request) -> Response:
        state.set_behaviour(Behaviour())
        return Response(status_code=204)

    async def get_calls(request: Request) -> Response:
        return JSONResponse({"items": [record.as_json() for record in state.calls()]})

    async def clear_calls(request: Request) -> Response:
        state.clear()
        return Response(status_code=204)

    async def get_stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    return [
        Route("/_sim/behaviour", get_behaviour, methods=["GET"]),
        Route("/_sim/behaviour", put_behaviour, methods=["PUT"]),
        Route("/_sim/behaviour", reset_behaviour, methods=["DELETE"]),
        Route("/_sim/calls", get_calls, methods=["GET"]),
        Route("/_sim/calls", clear_calls, methods=["DELETE"]),
        Route("/_sim/stats", get_stats, methods=["GET"]),
    ]
