"""The typed BentoML methods, one per registry endpoint that names one (`typed_api`).

Over HTTP the front door answers these paths first; the methods are what BentoML's clients
(`bentoml.SyncHTTPClient`, from /schema.json) and in-process callers see, and they answer
through the same handler as the front door, so with the same results and refusals.
"""

import inspect
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, cast

import bentoml
import orjson
from pydantic import BaseModel, RootModel

from service.errors import RequestError
from service.http.media import JSON
from service.http.routes import Call, RouteContext
from service.registry import Endpoint

ContextOf = Callable[[Any], RouteContext]  # the service instance -> its handlers' context


class BadRequest(bentoml.exceptions.BentoMLException):
    """A RequestError raised on an in-process call of a typed method, with its HTTP status."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error_code = HTTPStatus(error.status)


def typed_methods(endpoints: Iterable[Endpoint], context_of: ContextOf) -> dict[str, Any]:
    """`{name: @bentoml.api method}` to set on the service class before it is decorated."""
    return {e.typed_api: _method(e, context_of) for e in endpoints if e.typed_api is not None}


def _method(endpoint: Endpoint, context_of: ContextOf) -> Any:
    handler, request, response = endpoint.handler, endpoint.request, endpoint.response
    if handler is None or request is None or response is None:
        raise ValueError(f"{endpoint.path}: a typed method needs a handler and both models")
    root_answer = issubclass(response, RootModel)

    async def answer(instance: Any, body: bytes) -> Any:
        try:
            answered = await handler(context_of(instance), Call(body, JSON, JSON, b""))
        except RequestError as error:
            raise BadRequest(error) from error
        parsed = response.model_validate_json(answered.body)
        return cast(RootModel[Any], parsed).root if root_answer else parsed

    if issubclass(request, RootModel):
        method = _root_method(request, response, answer)
        specs: dict[str, type[BaseModel]] = {}
    else:
        method = _fields_method(answer)
        specs = {"input_spec": request, "output_spec": response}
    method.__name__ = method.__qualname__ = endpoint.typed_api or ""
    method.__doc__ = endpoint.description or endpoint.summary
    return bentoml.api(route=endpoint.path, **specs)(method)


Answerer = Callable[[Any, bytes], Awaitable[Any]]


def _root_method(request: type[BaseModel], response: type[BaseModel], answer: Answerer) -> Any:
    """Positional-only: BentoML's clients then send the value itself (a bare array) as the
    body."""

    async def method(self: Any, value: Any, /) -> Any:
        model = value if isinstance(value, request) else request.model_validate(value)
        return await answer(self, model.model_dump_json().encode())

    out: Any = response
    if issubclass(response, RootModel):
        out = response.model_fields["root"].annotation
    positional = inspect.Parameter.POSITIONAL_ONLY
    value = inspect.Parameter("value", positional, annotation=request)
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", positional), value], return_annotation=out
    )
    return method


def _fields_method(answer: Answerer) -> Any:
    async def method(self: Any, **fields: Any) -> Any:
        return await answer(self, orjson.dumps(fields))

    return method
