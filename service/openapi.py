"""The OpenAPI document the server publishes at /docs.json (and Swagger UI renders at /).

Generated from the route registry (service/registry.py) and the Pydantic models that validate
the requests and shape the answers, so it cannot drift from what the server does: every route,
its bodies (JSON, CSV, Arrow, the V2 binary extension), its answers, its refusals in the one
error shape, `X-Request-ID` on every answer, and, when API keys are on, the schemes and a 401 on
every keyed route. A pure function of the registry and the worker's facts, so tests can check it
without a server.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.http.routes import MODEL_VERSION
from service.registry import INFRASTRUCTURE, SERVICE, V2, Body, Endpoint, documented
from service.schemas import ApplicantBatch, ApplicantColumns, Error

Document = dict[str, Any]
JSON = "application/json"
COMPONENTS = "#/components/schemas/"
REFUSALS = {
    400: "Not readable: malformed JSON, CSV or Arrow, or a body the route cannot parse.",
    401: "No valid API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    404: "No such model or version (this server serves one model, in one version).",
    413: "Too large: the body, the array or the number of rows is over the limit.",
    415: "Wrong content type for this route.",
    422: "A value breaks a rule; `error` names the first bad field (`age`, `[3].home`, "
    "`income[1200]`) and `details` lists every one.",
    500: "A server bug (never the client's fault); the answer says nothing more.",
    503: "Overloaded or draining: retry after `Retry-After` seconds.",
}
TAGS = [
    {"name": SERVICE, "description": "Credit decisions and explanations."},
    {"name": V2, "description": "The Open Inference Protocol (KServe V2) on model credit_risk."},
    {"name": INFRASTRUCTURE, "description": "Health, readiness and metrics."},
]
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id: the client's own when it sent a valid one (at most "
        "128 of `A-Z a-z 0-9 . _ : -`), else a new one; also `request_id` in error bodies.",
        "required": True,
        "schema": {"type": "string"},
    }
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
DESCRIPTION = """Credit decisions for a lender's web form and for bulk scoring.

Post an applicant to `/classify` and get `APPROVED`, `MAYBE` or `DECLINED` with the
probability of default and the tag of the model that scored it; `/explain` adds each form
field's contribution and, for `MAYBE` and `DECLINED`, the principal reasons a loan officer can
send. `/classify_batch` and `/explain_batch` take a bare JSON array (same order back);
`/classify_bulk` takes whole columns as JSON, CSV or Apache Arrow. Clients of KServe, Triton or
MLServer can use the Open Inference Protocol under `/v2`.

Rules for values: numbers must be JSON numbers (`"800"` is refused), finite, within each
field's range; categories are the lower-case names listed; unknown fields are refused.

Every refusal has the same JSON shape,
`{"error": "...", "details": [{"location", "message"}], "request_id": "..."}`;
`503` comes with `Retry-After`. Every answer carries `X-Request-ID`.
"""


@dataclass(frozen=True)
class DocumentFacts:
    """What the document states about this worker."""

    model_tag: str
    model_version: str  # the Open Inference Protocol version of the model
    max_batch_items: int
    max_bulk_rows: int
    open_paths: frozenset[str] | None = None  # API keys on: the paths that need none


def document(facts: DocumentFacts, endpoints: Iterable[Endpoint] | None = None) -> Document:
    listed = tuple(documented() if endpoints is None else endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in listed:
        for method in endpoint.methods:
            paths.setdefault(endpoint.path, {})[method.lower()] = _operation(endpoint, facts)
    components: dict[str, Any] = {"schemas": _schemas(listed, facts), "headers": REQUEST_ID}
    doc: Document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Credit risk API",
            "version": facts.model_tag,
            "description": DESCRIPTION,
            "contact": {"name": "Credit risk serving team"},
        },
        "servers": [{"url": "."}],
        "tags": TAGS,
        "paths": paths,
        "components": components,
    }
    if facts.open_paths is not None:
        components["securitySchemes"] = SECURITY_SCHEMES
        doc["security"] = [{name: []} for name in SECURITY_SCHEMES]
    return doc


def _schemas(endpoints: tuple[Endpoint, ...], facts: DocumentFacts) -> dict[str, Any]:
    models: list[type[BaseModel]] = [Error]
    for endpoint in endpoints:
        models += [m for m in (endpoint.request, endpoint.response) if m and m not in models]
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=COMPONENTS + "{model}"
    )
    schemas: dict[str, Any] = top["$defs"]
    # The limits are settings: the models cannot state them.
    if ApplicantBatch in models:
        schemas[ApplicantBatch.__name__]["maxItems"] = facts.max_batch_items
    if ApplicantColumns in models:
        for column in schemas[ApplicantColumns.__name__]["properties"].values():
            column["maxItems"] = facts.max_bulk_rows
            column.setdefault("minItems", 1)
    return schemas


def _operation(endpoint: Endpoint, facts: DocumentFacts) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.typed_api or _operation_id(endpoint),
        "summary": endpoint.summary,
        "description": endpoint.description or endpoint.summary,
        "tags": [endpoint.tag],
    }
    if endpoint.typed_api is not None:
        operation["x-bentoml-name"] = endpoint.typed_api
    parameters = [
        {"name": p.name, "in": "query", "required": False, "description": p.description,
         "schema": dict(p.schema)}
        for p in endpoint.parameters
    ]  # fmt: skip
    if MODEL_VERSION in endpoint.path:
        parameters.append(
            {"name": "model_version", "in": "path", "required": True,
             "schema": {"type": "string", "enum": [facts.model_version]}}
        )  # fmt: skip
    if parameters:
        operation["parameters"] = parameters
    if endpoint.media_types:
        operation["requestBody"] = {"required": True, "content": _request_content(endpoint)}
    refusals: dict[int, str] = dict(endpoint.refusals)
    if facts.open_paths is not None and endpoint.path not in facts.open_paths:
        refusals[401] = ""
    elif facts.open_paths is not None:
        operation["security"] = []
    operation["responses"] = {
        "200": _answer(endpoint),
        **{str(status): _refusal(status, note) for status, note in sorted(refusals.items())},
    }
    return operation


def _operation_id(endpoint: Endpoint) -> str:
    words = endpoint.path.replace(MODEL_VERSION, "version").strip("/").replace("/", "_")
    return f"{endpoint.methods[0].lower()}_{words or 'root'}"


def _request_content(endpoint: Endpoint) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if endpoint.request is not None:
        content[JSON] = {"schema": _ref(endpoint.request)}
        if endpoint.example is not None:
            content[JSON]["example"] = endpoint.example
    content.update(_bodies(endpoint.bodies))
    return content


def _answer(endpoint: Endpoint) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "OK", "headers": _headers(REQUEST_ID)}
    content: dict[str, Any] = {}
    if endpoint.response is not None:
        content[JSON] = {"schema": _ref(endpoint.response)}
    content.update(_bodies(endpoint.answers))
    if content:
        answer["content"] = content
    return answer


def _bodies(bodies: tuple[Body, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for body in bodies:
        schema: dict[str, Any] = {"type": "string", "description": body.description}
        if body.binary:
            schema["format"] = "binary"
        out[body.media_type] = {"schema": schema}
        if body.example is not None:
            out[body.media_type]["example"] = body.example
    return out


def _refusal(status: int, note: str) -> dict[str, Any]:
    headers = {**REQUEST_ID, **(RETRY_AFTER if status == 503 else {})}
    if status == 401:
        headers["WWW-Authenticate"] = {"description": "`Bearer`", "schema": {"type": "string"}}
    return {
        "description": note or REFUSALS[status],
        "headers": _headers(headers),
        "content": {JSON: {"schema": _ref(Error)}},
    }


def _headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {"$ref": f"#/components/headers/{name}"} if name in REQUEST_ID else spec
        for name, spec in headers.items()
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": COMPONENTS + model.__name__}
