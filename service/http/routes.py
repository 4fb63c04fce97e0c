"""The front door's route table, built from the route registry (service/registry.py).

Handlers (service/http/handlers.py) get the worker's `RouteContext` and the parsed request
(`Call`) and return an `Answer`; they raise `RequestError` for anything they refuse. No ASGI here.
"""

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from service.errors import RequestError
from service.http import media
from service.http.asgi import Header
from service.scoring import CreditScorer
from service.v2 import OpenInferenceProtocol

if TYPE_CHECKING:
    from service.registry import Endpoint

MODEL_VERSION = "{model_version}"  # the one path parameter: the served model's V2 version


# Call and Answer are made for every request: named tuples (immutable, and made in a third of
# the time a frozen dataclass's __init__ takes).
class Call(NamedTuple):
    body: bytes
    media_type: str  # the body's content type, without parameters
    accept: str  # the Accept header ("" when absent)
    query: bytes  # the raw query string
    headers: Sequence[Header] = ()  # the raw request headers

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


class Answer(NamedTuple):
    body: bytes
    media_type: str = media.JSON
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True)
class RouteContext:
    """What handlers reach: the worker's data plane and the bodies fixed at start-up."""

    scorer: CreditScorer
    v2: OpenInferenceProtocol
    info: bytes  # GET /info
    ready: Callable[[], bool]  # False while starting or draining
    document: bytes = b"{}"  # GET /docs.json
    describe: Callable[[], bytes] | None = None  # GET /info when what is served can change


Handler = Callable[[RouteContext, Call], Awaitable[Answer]]
BoundHandler = Callable[[Call], Awaitable[Answer]]
RefusalReason = Callable[[], str | None]  # why the queue a request would join refuses it now


@dataclass(frozen=True)
class Route:
    handler: BoundHandler
    media_types: tuple[str, ...] = (media.JSON,)
    methods: tuple[str, ...] = ("POST",)
    bulk: bool = False  # admitted by bulk bytes in flight and run on the bulk thread
    refusal_reason: RefusalReason | None = None  # the bound of the batcher queue it joins

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)


@dataclass(frozen=True)
class RouteTable:
    routes: dict[str, Route]
    # Paths under a prefix that match no route get that prefix's route (a 404 in the route's
    # own error shape), counted in the metrics under the prefix, never per unknown path.
    fallbacks: dict[str, Route] = field(default_factory=dict)
    # Paths with the served model's V2 version in them, (before, after) the version: they
    # follow the models file's switches (only the version served now matches).
    versioned: dict[tuple[str, str], Route] = field(default_factory=dict)
    version: Callable[[], str] = lambda: ""

    def current(self) -> dict[str, Route]:
        """Every route by its path now (the versioned ones at the version served now)."""
        version = self.version()
        return self.routes | {f"{b}{version}{a}": route for (b, a), route in self.versioned.items()}

    def find(self, path: str) -> tuple[str, Route] | None:
        route = self.routes.get(path)
        if route is not None:
            return path, route
        if self.versioned:
            version = self.version()
            for (before, after), route in self.versioned.items():
                if path == f"{before}{version}{after}":
                    return path, route
        for prefix, fallback in self.fallbacks.items():
            if path.startswith(prefix):
                return prefix + "*", fallback
        return None


def route_table(
    endpoints: Iterable["Endpoint"],
    context: RouteContext,
    queues: Mapping[str, RefusalReason | None],
) -> RouteTable:
    """The front door's routes: every registry endpoint the door answers (BentoML's app answers
    those without a handler), its path (with the version served at the time), its handler bound to
    `context`, and the bound of the batcher queue (`queues[endpoint.queue]`) it joins."""
    routes: dict[str, Route] = {}
    fallbacks: dict[str, Route] = {}
    versioned: dict[tuple[str, str], Route] = {}
    for endpoint in endpoints:
        if endpoint.handler is None:
            continue
        route = Route(
            functools.partial(endpoint.handler, context),
            media_types=endpoint.media_types,
            methods=endpoint.methods,
            bulk=endpoint.bulk,
            refusal_reason=queues.get(endpoint.queue) if endpoint.queue is not None else None,
        )
        path = endpoint.path
        if MODEL_VERSION in path:
            before, _, after = path.partition(MODEL_VERSION)
            versioned[before, after] = route
        elif endpoint.fallback:
            fallbacks[path] = route
        else:
            routes[path] = route
    return RouteTable(routes, fallbacks, versioned, lambda: context.v2.version)


def refuse(status: int, location: str, message: str) -> RequestError:
    """A refusal naming what was wrong (`location: message`)."""
    return RequestError(
        status, f"{location}: {message}", [{"location": location, "message": message}]
    )
