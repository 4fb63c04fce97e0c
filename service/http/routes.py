"""The route table of the front door: path -> what it accepts and which data-plane call answers.

Handlers get the parsed request head and the body (`Call`) and return an `Answer`; they raise
`RequestError` for anything they refuse. No ASGI here.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson

from service.errors import RequestError
from service.http import media
from service.http.asgi import Header
from service.scoring import CreditScorer
from service.v2 import MODEL_NAME, OpenInferenceProtocol

V2_PREFIX = "/v2/"
INFERENCE_HEADER_LENGTH = b"inference-header-content-length"  # the V2 binary extension
MAX_REASONS = 13


@dataclass(frozen=True, slots=True)
class Call:
    body: bytes
    media_type: str  # the body's content type, without parameters
    accept: str  # the Accept header ("" when absent)
    query: bytes  # the raw query string
    headers: list[Header] = field(default_factory=list)  # the raw request headers

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    media_type: str = media.JSON
    headers: tuple[Header, ...] = ()


Handler = Callable[[Call], Awaitable[Answer]]
Saturated = Callable[[], str | None]


@dataclass(frozen=True)
class Route:
    handler: Handler
    media_types: tuple[str, ...] = (media.JSON,)
    methods: tuple[str, ...] = ("POST",)
    bulk: bool = False  # admitted by bulk bytes in flight and run on the bulk thread
    saturated: Saturated | None = None  # the bound of the batcher queue the request joins

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)


@dataclass(frozen=True)
class RouteTable:
    routes: dict[str, Route]
    # Paths under a prefix that match no route get that prefix's route (a 404 in the route's
    # own error shape), counted in the metrics under the prefix, never per unknown path.
    fallbacks: dict[str, Route] = field(default_factory=dict)

    def find(self, path: str) -> tuple[str, Route] | None:
        route = self.routes.get(path)
        if route is not None:
            return path, route
        for prefix, fallback in self.fallbacks.items():
            if path.startswith(prefix):
                return prefix + "*", fallback
        return None


def scoring_routes(
    scorer: CreditScorer,
    info: Mapping[str, object],
    saturated: Saturated | None,
    ready: Callable[[], bool],
    v2: OpenInferenceProtocol,
) -> RouteTable:
    async def classify(call: Call) -> Answer:
        return Answer(await scorer.classify_json(call.body))

    async def classify_batch(call: Call) -> Answer:
        return Answer(await scorer.classify_batch_json(call.body))

    async def classify_bulk(call: Call) -> Answer:
        answer = media.answer_format(call.accept)
        body_format = media.BODY_FORMATS[call.media_type]
        body = await scorer.classify_bulk(call.body, body_format, answer, _reasons(call.query))
        return Answer(body, media.ANSWER_MEDIA_TYPES[answer])

    async def explain(call: Call) -> Answer:
        return Answer(await scorer.explain_json(call.body))

    async def explain_batch(call: Call) -> Answer:
        return Answer(await scorer.explain_batch_json(call.body))

    info_body = orjson.dumps(dict(info))

    async def show_info(call: Call) -> Answer:
        return Answer(info_body)

    explain_saturated = scorer.explaining.saturated if scorer.explaining is not None else None
    routes = {
        "/classify": Route(classify, saturated=saturated),
        "/classify_batch": Route(classify_batch, saturated=saturated),
        "/classify_bulk": Route(
            classify_bulk,
            media_types=(media.JSON, media.CSV, media.ARROW_STREAM, media.ARROW_FILE),
            bulk=True,
        ),
        "/explain": Route(explain, saturated=explain_saturated),
        "/explain_batch": Route(explain_batch, saturated=explain_saturated),
        "/info": Route(show_info, methods=("GET",)),
        **v2_routes(v2, ready),
    }
    return RouteTable(routes, {V2_PREFIX: Route(_v2_not_found, methods=("GET", "POST"))})


def v2_routes(v2: OpenInferenceProtocol, ready: Callable[[], bool]) -> dict[str, Route]:
    """The Open Inference Protocol's REST paths for the one model, its version included."""

    async def server_live(call: Call) -> Answer:
        return Answer(b'{"live":true}')

    async def server_ready(call: Call) -> Answer:
        if not ready():
            raise RequestError(503, "not ready: the server is starting or draining")
        return Answer(b'{"ready":true}')

    async def server_metadata(call: Call) -> Answer:
        return Answer(v2.server_metadata())

    async def model_metadata(call: Call) -> Answer:
        return Answer(v2.model_metadata())

    async def model_ready(call: Call) -> Answer:
        if not ready():
            raise RequestError(503, f"model {MODEL_NAME} is not ready: the server is draining")
        return Answer(v2.model_ready(True))

    async def infer(call: Call) -> Answer:
        declared = call.header(INFERENCE_HEADER_LENGTH)
        json_length = _header_length(declared) if declared is not None else None
        answer = await v2.infer(call.body, json_length)
        if answer.json_length is None:
            return Answer(answer.body)
        length = (INFERENCE_HEADER_LENGTH, str(answer.json_length).encode())
        return Answer(answer.body, media.OCTET_STREAM, (length,))

    get = ("GET",)
    model = f"/v2/models/{MODEL_NAME}"
    versioned = f"{model}/versions/{v2.version}"
    infer_route = Route(infer, media_types=(media.JSON, media.OCTET_STREAM), bulk=True)
    return {
        "/v2": Route(server_metadata, methods=get),
        "/v2/health/live": Route(server_live, methods=get),
        "/v2/health/ready": Route(server_ready, methods=get),
        model: Route(model_metadata, methods=get),
        versioned: Route(model_metadata, methods=get),
        f"{model}/ready": Route(model_ready, methods=get),
        f"{versioned}/ready": Route(model_ready, methods=get),
        f"{model}/infer": infer_route,
        f"{versioned}/infer": infer_route,
    }


async def _v2_not_found(call: Call) -> Answer:
    raise RequestError(
        404,
        f"no such model, version or path; this server serves model {MODEL_NAME} "
        "(see GET /v2/models/credit_risk)",
    )


def _header_length(declared: str) -> int:
    if not declared.isdigit():
        raise RequestError(400, f"Inference-Header-Content-Length: not a length ({declared!r})")
    return int(declared)


def _reasons(query: bytes) -> int:
    """The `reasons` query parameter of /classify_bulk: reason columns to add (0 to 13)."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"reasons":
            if not value.isdigit() or int(value) > MAX_REASONS:
                got = value.decode(errors="replace")
                message = f"must be a whole number from 0 to {MAX_REASONS}; got {got!r}"
                raise RequestError(
                    422, f"reasons: {message}", [{"location": "reasons", "message": message}]
                )
            return int(value)
    return 0
