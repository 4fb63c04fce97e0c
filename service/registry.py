"""Every HTTP route of the API, declared once.

An `Endpoint` says everything about a route: path, methods, the bodies it takes (a Pydantic
model for JSON, described text or binary for the others), its answers, its handler, whether it
joins a batcher queue or runs as bulk, its docs text, example and refusals, and the name of its
typed BentoML method. From `ENDPOINTS` come:

- the front door's route table (`service.http.routes.route_table`),
- the typed `@bentoml.api` methods (`service.typed_api`: BentoML's clients and /schema.json),
- the OpenAPI document at /docs.json (`service.openapi.document`),
- and the tests' cases (the contract, the fuzzing, the client's endpoints) check against it.

To add a route: an entry here, its handler in `service/http/handlers.py`, a test.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from features.schema import CATEGORICAL_FIELDS, FIELDS
from service.http import docs, handlers, media
from service.http.routes import MODEL_VERSION, Handler
from service.schemas import (
    APPLICANT_EXAMPLE,
    Applicant,
    ApplicantBatch,
    ApplicantColumns,
    BulkDecisions,
    Decision,
    Decisions,
    Explanation,
    Explanations,
    ServiceInfo,
    V2InferenceResponse,
    V2Live,
    V2ModelMetadata,
    V2Ready,
    V2ServerMetadata,
)
from service.v2 import MODEL_NAME, InferenceRequest

Queue = Literal["scoring", "explaining"]  # the batcher a request joins (its bound admits it)
SERVICE = "Service APIs"
V2 = "Open Inference Protocol"
INFRASTRUCTURE = "Infrastructure"
V2_MODEL = f"/v2/models/{MODEL_NAME}"
V2_VERSION = f"{V2_MODEL}/versions/{MODEL_VERSION}"


@dataclass(frozen=True)
class Body:
    """A request body or answer other than JSON described by a model: CSV, Arrow, binary."""

    media_type: str
    description: str
    binary: bool = True
    example: str | None = None


@dataclass(frozen=True)
class QueryParameter:
    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Endpoint:
    path: str  # `{model_version}`: the served model's V2 version
    summary: str
    handler: Handler | None  # None: BentoML's app, behind the door, answers it
    methods: tuple[str, ...] = ("POST",)
    request: type[BaseModel] | None = None  # the JSON body
    response: type[BaseModel] | None = None  # the JSON answer
    bodies: tuple[Body, ...] = ()  # other request media types
    answers: tuple[Body, ...] = ()  # other answer media types (chosen by Accept)
    queue: Queue | None = None
    bulk: bool = False  # admitted by bulk bytes in flight, run on the bulk thread
    example: Any = None  # of the JSON body
    refusals: Mapping[int, str] = field(default_factory=dict)  # status -> note ("": the usual)
    parameters: tuple[QueryParameter, ...] = ()
    typed_api: str | None = None  # the typed BentoML method's name (its clients call it)
    description: str = ""
    tag: str = SERVICE
    fallback: bool = False  # `path` is a prefix: unknown paths under it get this route

    @property
    def media_types(self) -> tuple[str, ...]:
        """The request content types the route takes (none for GET)."""
        if "POST" not in self.methods:
            return ()
        own = (media.JSON,) if self.request is not None or not self.bodies else ()
        return own + tuple(body.media_type for body in self.bodies)


SCORING_REFUSALS = {400: "", 413: "", 415: "", 422: "", 500: "", 503: ""}
NO_DISTRIBUTIONS = "The served model was exported without training distributions: export it again."
BULK_ARROW_BODY = (
    "One column per field: numbers as any integer or float type, categories as plain or "
    "dictionary-encoded strings; a null is refused."
)
BULK_CSV = Body(
    media.CSV,
    "A header with the 13 field names (any order), then one applicant per line.",
    binary=False,
    example=",".join(FIELDS) + "\n" + ",".join(str(APPLICANT_EXAMPLE[f]) for f in FIELDS) + "\n",
)
BULK_ARROW_ANSWER = Body(
    media.ARROW_STREAM,
    "Sent when the request's Accept lists this type: `probability` (float32), `status` "
    "(dictionary-encoded), reason_k columns, the model tag in the schema metadata under `model`.",
)
V2_INFER_EXAMPLE = {
    "inputs": [
        {
            "name": name,
            "shape": [1],
            "datatype": "BYTES" if name in CATEGORICAL_FIELDS else "FP64",
            "data": [APPLICANT_EXAMPLE[name]],
        }
        for name in FIELDS
    ]
}


def _v2_infer(path: str, refusals: Mapping[int, str]) -> Endpoint:
    return Endpoint(
        path,
        "V2 inference",
        handlers.v2_infer,
        request=InferenceRequest,
        response=V2InferenceResponse,
        bodies=(
            Body(
                media.OCTET_STREAM,
                "The binary tensor data extension: a JSON header of "
                "`Inference-Header-Content-Length` bytes, then the raw tensors.",
            ),
        ),
        answers=(Body(media.OCTET_STREAM, "The binary tensor data extension."),),
        bulk=True,
        example=V2_INFER_EXAMPLE,
        refusals=refusals,
        description="The same validation, engines, batcher and limits as /classify_bulk, so "
        "the same answers. All 13 form fields as inputs, each once, all of the same length N "
        "(refused with 422 otherwise: JSON Schema cannot state that rule); numbers in any "
        "numeric datatype, categories as BYTES.",
        tag=V2,
    )


def _get(
    path: str,
    summary: str,
    handler: Handler | None,
    response: type[BaseModel] | None,
    tag: str = V2,
    refusals: Mapping[int, str] | None = None,
) -> Endpoint:
    return Endpoint(
        path, summary, handler, ("GET",), response=response, refusals=refusals or {}, tag=tag
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "/classify",
        "Score one applicant",
        handlers.classify,
        request=Applicant,
        response=Decision,
        queue="scoring",
        example=APPLICANT_EXAMPLE,
        refusals=SCORING_REFUSALS,
        typed_api="classify",
        description="Score one applicant (the body is the applicant object itself).",
    ),
    Endpoint(
        "/classify_batch",
        "Score a batch of applicants",
        handlers.classify_batch,
        request=ApplicantBatch,
        response=Decisions,
        queue="scoring",
        example=[APPLICANT_EXAMPLE, {**APPLICANT_EXAMPLE, "records": "yes"}],
        refusals=SCORING_REFUSALS,
        typed_api="classify_batch",
        description="Score a bare JSON array of applicants; decisions come back in the same "
        "order.",
    ),
    Endpoint(
        "/classify_bulk",
        "Score whole columns of applicants (JSON, CSV or Arrow)",
        handlers.classify_bulk,
        request=ApplicantColumns,
        response=BulkDecisions,
        bodies=(
            BULK_CSV,
            Body(media.ARROW_STREAM, BULK_ARROW_BODY),
            Body(media.ARROW_FILE, BULK_ARROW_BODY),
        ),
        answers=(BULK_ARROW_ANSWER,),
        bulk=True,
        example={name: [value, value] for name, value in APPLICANT_EXAMPLE.items()},
        refusals={
            **SCORING_REFUSALS,
            501: "`reasons` asked of a model exported without training distributions.",
        },
        parameters=(
            QueryParameter(
                "reasons",
                "Add this many reason-code columns (reason_1 ...) for MAYBE and DECLINED rows.",
                {"type": "integer", "minimum": 0, "maximum": len(FIELDS), "default": 0},
            ),
            QueryParameter(
                "per_row",
                "true: score every valid row and answer each invalid one with status INVALID, "
                "a null probability and `error` naming the field and the rule (an `error` "
                "column, null for scored rows); false: refuse the whole request (422) naming "
                "the field and the row.",
                {"type": "boolean", "default": False},
            ),
        ),
        typed_api="classify_bulk",
        description="Bulk scoring, column-wise: one array per field, row i is applicant i. "
        "The same route also takes `text/csv` (a header with the 13 field names, one applicant "
        "per row) and Apache Arrow IPC (`application/vnd.apache.arrow.stream` or `.file`: one "
        "column per field, numbers as integer or float columns, categories as plain or "
        "dictionary-encoded strings), the fastest body for large arrays.",
    ),
    Endpoint(
        "/explain",
        "Score one applicant and say why",
        handlers.explain,
        request=Applicant,
        response=Explanation,
        queue="explaining",
        example={**APPLICANT_EXAMPLE, "records": "yes"},
        refusals={**SCORING_REFUSALS, 501: NO_DISTRIBUTIONS},
        typed_api="explain",
        description="Score one applicant and say why: each form field's contribution to the "
        "log-odds of default, and for MAYBE and DECLINED the principal reasons, largest first.",
    ),
    Endpoint(
        "/explain_batch",
        "Explain a batch of applicants",
        handlers.explain_batch,
        request=ApplicantBatch,
        response=Explanations,
        queue="explaining",
        example=[APPLICANT_EXAMPLE],
        refusals={**SCORING_REFUSALS, 501: NO_DISTRIBUTIONS},
        typed_api="explain_batch",
        description="/explain for a bare JSON array of applicants, in the same order.",
    ),
    _get("/info", "The served model, its engines, batching and limits", handlers.info,
         ServiceInfo, tag=SERVICE),
    _get("/v2", "V2 server metadata: name, version, extensions", handlers.v2_server_metadata,
         V2ServerMetadata),
    _get("/v2/health/live", "V2 liveness", handlers.v2_server_live, V2Live),
    _get("/v2/health/ready", "V2 readiness (503 while starting or draining)",
         handlers.v2_server_ready, V2Ready, refusals={503: ""}),
    _get(V2_MODEL, "V2 model metadata: one input per form field", handlers.v2_model_metadata,
         V2ModelMetadata),
    _get(V2_VERSION, "V2 model metadata of the served version", handlers.v2_model_metadata,
         V2ModelMetadata, refusals={404: ""}),
    _get(f"{V2_MODEL}/ready", "V2 model readiness", handlers.v2_model_ready, V2Ready,
         refusals={503: ""}),
    _get(f"{V2_VERSION}/ready", "V2 readiness of the served version", handlers.v2_model_ready,
         V2Ready, refusals={404: "", 503: ""}),
    _v2_infer(f"{V2_MODEL}/infer", SCORING_REFUSALS),
    _v2_infer(f"{V2_VERSION}/infer", {**SCORING_REFUSALS, 404: ""}),
    Endpoint("/v2/", "Unknown V2 paths: 404 naming the served model", handlers.v2_not_found,
             ("GET", "POST"), fallback=True, tag=V2),
    _get("/docs.json", "This OpenAPI document", docs.openapi_document, None, tag=INFRASTRUCTURE),
    _get("/", "Swagger UI", docs.swagger_page, None, tag=INFRASTRUCTURE),
    _get("/livez", "Liveness (Kubernetes): 200 while the process serves", None, None,
         tag=INFRASTRUCTURE),
    _get("/healthz", "Liveness, deprecated name of /livez", None, None, tag=INFRASTRUCTURE),
    _get("/readyz", "Readiness (Kubernetes): 503 while starting or draining", None, None,
         tag=INFRASTRUCTURE),
    _get("/metrics", "Prometheus metrics", None, None, tag=INFRASTRUCTURE),
)  # fmt: skip


def documented() -> tuple[Endpoint, ...]:
    """The endpoints the OpenAPI document lists (not the fallbacks, nor the document's own
    page and Swagger UI, which are not part of the API)."""
    return tuple(e for e in ENDPOINTS if not e.fallback and e.path not in ("/", "/docs.json"))


def typed() -> tuple[Endpoint, ...]:
    """The endpoints with a typed BentoML method."""
    return tuple(e for e in ENDPOINTS if e.typed_api is not None)
