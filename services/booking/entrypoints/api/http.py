"""The thin HTTP layer: endpoints declared once, routed and parsed here, documented from the
same declarations (openapi.py), served through whichever interface the server speaks
(servers.py: RSGI under granian, ASGI elsewhere).

An endpoint names its method, path, request body, query and response types, who may call
it and which headers it reads. The same pydantic types validate the request and describe it
in the OpenAPI document, so the two cannot drift apart. Per request, the layer does only
what a route needs: no dependency graph is solved, no response model is validated a second
time, and every error is answered by the one mapping in problems.py.
"""

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import parse_qsl
from uuid import UUID

from pydantic import BaseModel, ValidationError

from services.booking.entrypoints.api.guards import Caller, authenticate, client_address, within_limit
from services.booking.entrypoints.api.messages import Request, Response
from services.booking.entrypoints.api.problems import ApiError, Declared, error_response, validation_failed
from services.booking.entrypoints.api.services import Services

Model = TypeVar("Model", bound=BaseModel)
Access = Literal["public", "user", "admin"]
JSON_TYPES = ("application/json",)
PARAMETER = re.compile(r"{(\w+)}")


def reply(body: BaseModel, status: int = 200) -> Response:
    """`body` as JSON, serialised by its own type (the type the document shows)."""
    return Response(body.__pydantic_serializer__.to_json(body), status)


def is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True  # a client that names no type sends what the route documents
    media = content_type.partition(";")[0].strip().lower()
    return media in JSON_TYPES or media.endswith("+json")


class Call:
    """One request as a handler sees it: its caller, body, query, headers and path ids.

    A body or query is read only as the type its endpoint declares (and documents).
    """

    __slots__ = ("_caller", "_endpoint", "request", "services")

    def __init__(self, request: Request, services: Services, caller: Caller | None,
                 endpoint: "Endpoint") -> None:
        self.request = request
        self.services = services
        self._caller = caller
        self._endpoint = endpoint

    @property
    def user(self) -> Caller:
        """The authenticated caller (only endpoints with access "user" or "admin" have one)."""
        assert self._caller is not None, "a public endpoint has no caller"
        return self._caller

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    async def body(self, model: type[Model]) -> Model:
        assert model is self._endpoint.body, f"{self._endpoint.path} declares {self._endpoint.body}"
        if not is_json(self.request.headers.get("content-type")):
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json")
        try:
            return model.model_validate_json(await self.request.read_body())
        except ValidationError as error:
            raise validation_failed(error) from None

    def query(self, model: type[Model]) -> Model:
        assert model is self._endpoint.query, f"{self._endpoint.path} declares {self._endpoint.query}"
        try:
            return model.model_validate(dict(parse_qsl(self.request.query_string, keep_blank_values=True)))
        except ValidationError as error:
            raise validation_failed(error) from None

    def path_id(self, name: str) -> UUID:
        try:
            return UUID(self.request.path_params[name])
        except ValueError:
            raise ApiError(422, "VALIDATION_FAILED", f"{name}: must be a UUID") from None


Handler = Callable[[Call], Awaitable[BaseModel | Response]]


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: the operation `target` (its operation id) can use what this one answered.

    `parameters` and `body` map the target's inputs to runtime expressions such as
    "$response.body#/id".
    """

    name: str
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] | None = None


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API: what it accepts, answers and documents."""

    method: str
    path: str
    handler: Handler
    status: int = 200
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    access: Access = "user"
    headers: tuple[str, ...] = ()  # request headers the operation reads, from HEADER_DOCS
    errors: tuple[Declared, ...] = ()  # its rules' and guards' refusals (the layer's: openapi.py)
    also: dict[int, str] = field(default_factory=dict)  # other successes: status → description
    reply_headers: tuple[str, ...] = ()  # response headers of its successes, from HEADER_DOCS
    links: tuple[Link, ...] = ()  # the operations that use what it creates
    tag: str = ""
    summary: str = ""
    documented: bool = True
    rate_limited: bool = True  # health probes are not
    # The name generated clients call it by (documented endpoints: camelCase, unique, openapi.py)
    operation_id: str = ""

    async def answer(self, request: Request, services: Services) -> Response:
        caller = None
        if self.access == "public":
            if self.rate_limited:
                await within_limit(services.address_limits, self._address(request, services))
        else:
            try:
                caller = await authenticate(services, request.headers.get("authorization"))
            except ApiError:  # not a user: counted against its address
                await within_limit(services.address_limits, self._address(request, services))
                raise
            if self.rate_limited:
                await within_limit(services.user_limits, caller.user_id)
            if self.access == "admin" and not caller.is_admin:
                raise ApiError(403, "FORBIDDEN", "this route needs the admin role")
        result = await self.handler(Call(request, services, caller, self))
        return result if isinstance(result, Response) else reply(result, self.status)

    @staticmethod
    def _address(request: Request, services: Services) -> str:
        # Every line: a proxy that adds a line of its own must not be hidden by the client's.
        forwarded = ", ".join(request.headers.get_all("x-forwarded-for")) or None
        return client_address(request.peer, forwarded,
                              services.settings.forwarded_networks)


class PathRoute:
    """Every endpoint of one path, chosen by method (so a 405 names all of them in Allow)."""

    def __init__(self, path: str, endpoints: dict[str, Endpoint], services: Callable[[], Services]) -> None:
        self.path = path
        self._endpoints = dict(endpoints)
        if "GET" in endpoints and "HEAD" not in endpoints:
            self._endpoints["HEAD"] = endpoints["GET"]
        allow = ", ".join(sorted(self._endpoints))
        self._not_allowed = ApiError(405, "METHOD_NOT_ALLOWED", f"{path} answers {allow}", {"Allow": allow})
        self._services = services

    async def answer(self, request: Request) -> Response:
        endpoint = self._endpoints.get(request.method)
        if endpoint is None:
            return error_response(self._not_allowed, "")
        try:
            return await endpoint.answer(request, self._services())
        except Exception as error:  # every failure becomes a problem answer; problems.py decides which
            return error_response(error, f"{request.method} {endpoint.path}")


class Router:
    """Finds a request's PathRoute: fixed paths by one dict lookup, templated ones by pattern.

    Starlette's router tries every route's pattern in turn, which cost more than the whole
    of a cheap request.
    """

    def __init__(self, endpoints: Iterable[Endpoint], services: Callable[[], Services]) -> None:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        self._fixed: dict[str, PathRoute] = {}
        self._templated: list[tuple[re.Pattern[str], PathRoute]] = []
        for path, methods in by_path.items():
            route = PathRoute(path, methods, services)
            if "{" in path:
                self._templated.append((re.compile(PARAMETER.sub(r"(?P<\1>[^/]+)", path) + "$"), route))
            else:
                self._fixed[path] = route

    def route(self, request: Request) -> PathRoute | None:
        """The route of the request's path (its path ids set on the request), or None."""
        path = request.path
        route = self._fixed.get(path)
        if route is not None:
            return route
        for pattern, candidate in self._templated:
            if (found := pattern.match(path)) is not None:
                request.path_params = found.groupdict()
                return candidate
        return None
