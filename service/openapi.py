"""The OpenAPI document the server publishes at /docs.json (and Swagger UI renders at /).

BentoML generates a document from the typed `@bentoml.api` methods; it knows nothing of what the
front door does around them. This module completes it so that it says what the server really
does: our title, version (the served model tag), description and contact; the CSV and Arrow
bodies and answers of /classify_bulk and its `reasons` parameter; the limits (array sizes); the
Open Inference Protocol routes; every refusal (400, 413, 415, 422, 501, 503 with Retry-After)
with the one JSON error shape; an example for each route. A pure function of BentoML's document
and the worker's settings, so tests can check it without a server.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from features.schema import CATEGORICAL_FIELDS, FIELDS
from service.schemas import APPLICANT_EXAMPLE
from service.v2 import MODEL_NAME, NUMERIC_DTYPES

Document = dict[str, Any]
JSON = "application/json"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
SCORING = ("/classify", "/classify_batch", "/classify_bulk", "/explain", "/explain_batch")
REFUSALS = {
    "400": "Not readable: malformed JSON, CSV or Arrow, or a body the route cannot parse.",
    "413": "Too large: the body, the array or the number of rows is over the limit.",
    "415": "Wrong content type for this route.",
    "422": "A value breaks a rule; `error` names the first bad field (`age`, `[3].home`, "
    "`income[1200]`) and `details` lists every one.",
    "404": "No such model or version (this server serves one model, in one version).",
    "500": "A server bug (never the client's fault); the answer says nothing more.",
    "503": "Overloaded or draining: retry after `Retry-After` seconds.",
}
DESCRIPTION = """Credit decisions for a lender's web form and for bulk scoring.

Post an applicant to `/classify` and get `APPROVED`, `MAYBE` or `DECLINED` with the
probability of default and the tag of the model that scored it; `/explain` adds each form
field's contribution and, for `MAYBE` and `DECLINED`, the principal reasons a loan officer can
send. `/classify_batch` and `/explain_batch` take a bare JSON array (same order back);
`/classify_bulk` takes whole columns as JSON, CSV or Apache Arrow. Clients of KServe, Triton or
MLServer can use the Open Inference Protocol under `/v2`.

Rules for values: numbers must be JSON numbers (`"800"` is refused), finite, within each
field's range; categories are the lower-case names listed; unknown fields are refused.

Every refusal has the same JSON shape, `{"error": "...", "details": [{"location", "message"}]}`;
`503` comes with `Retry-After`.
"""


@dataclass(frozen=True)
class DocumentFacts:
    """What the document states about this worker."""

    model_tag: str
    model_version: str  # the Open Inference Protocol version of the model
    max_batch_items: int
    max_bulk_rows: int
    max_body_bytes: int
    reasons: int


def document(bentoml_document: Document, facts: DocumentFacts) -> Document:
    # A copy, as JSON would carry it (BentoML keys responses by int status codes).
    doc: Document = orjson.loads(orjson.dumps(bentoml_document, option=orjson.OPT_NON_STR_KEYS))
    doc["info"] = {
        "title": "Credit risk API",
        "version": facts.model_tag,
        "description": DESCRIPTION,
        "contact": {"name": "Credit risk serving team"},
    }
    doc.setdefault("components", {}).setdefault("schemas", {}).update(_schemas())
    paths = doc["paths"]
    for path in SCORING:
        operation = paths[path]["post"]
        operation["requestBody"]["required"] = True
        operation["responses"] = {
            "200": operation["responses"]["200"],
            **_refusals("400", "413", "415", "422", "500", "503"),
        }
    _classify(paths, facts)
    _bulk(paths["/classify_bulk"]["post"], facts)
    _explain(paths, facts)
    paths["/info"] = {"get": _get("The served model, its engines, batching and limits.", _object())}
    paths.update(_v2_paths(facts))
    return doc


def _refusals(*statuses: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": REFUSALS.get(status, ""),
            "content": {JSON: {"schema": ERROR_REF}},
        }
        if status == "503":
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        out[status] = entry
    return out


def _schemas() -> dict[str, Any]:
    detail = {
        "type": "object",
        "required": ["location", "message"],
        "properties": {
            "location": {"type": "string", "description": 'e.g. "age", "[3].home", "income[1200]"'},
            "message": {"type": "string"},
        },
    }
    return {
        "ErrorDetail": detail,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "One line naming the first problem."},
                "details": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorDetail"}},
            },
            "example": {
                "error": "age: Input should be greater than or equal to 18",
                "details": [
                    {"location": "age", "message": "Input should be greater than or equal to 18"}
                ],
            },
        },
        **_v2_schemas(),
    }


def _classify(paths: dict[str, Any], facts: DocumentFacts) -> None:
    single = paths["/classify"]["post"]["requestBody"]["content"][JSON]
    single["example"] = APPLICANT_EXAMPLE
    batch = paths["/classify_batch"]["post"]["requestBody"]["content"][JSON]
    batch["schema"]["maxItems"] = facts.max_batch_items
    batch["example"] = [APPLICANT_EXAMPLE, {**APPLICANT_EXAMPLE, "records": "yes"}]


def _bulk(operation: dict[str, Any], facts: DocumentFacts) -> None:
    body = operation["requestBody"]["content"]
    columns = body[JSON]["schema"]
    for name in FIELDS:
        columns["properties"][name]["maxItems"] = facts.max_bulk_rows
        columns["properties"][name].setdefault("minItems", 1)
    columns["description"] = (
        "One array per field, all of the same length (row i is applicant i): arrays of "
        "different lengths are refused with 422 naming the short field (JSON Schema cannot "
        "state that rule)."
    )
    body[JSON]["example"] = {name: [value, value] for name, value in APPLICANT_EXAMPLE.items()}
    header = ",".join(FIELDS)
    row = ",".join(str(APPLICANT_EXAMPLE[name]) for name in FIELDS)
    body["text/csv"] = {
        "schema": {"type": "string", "description": "A header with the 13 field names (any "
                   "order), then one applicant per line."},
        "example": f"{header}\n{row}\n",
    }  # fmt: skip
    arrow = {
        "type": "string",
        "format": "binary",
        "description": "One column per field: numbers as any integer or float type, "
        "categories as plain or dictionary-encoded strings; a null is refused.",
    }
    body["application/vnd.apache.arrow.stream"] = {"schema": arrow}
    body["application/vnd.apache.arrow.file"] = {"schema": arrow}
    answer = operation["responses"]["200"]["content"]
    answer[JSON]["schema"].setdefault("properties", {})
    answer[JSON]["schema"]["additionalProperties"] = {
        "type": "array",
        "items": {"type": "string", "nullable": True},
        "description": "reason_1 ... reason_N with `reasons=N`: each row's rank-k reason "
        "code, null for APPROVED rows or rows with fewer reasons.",
    }
    answer["application/vnd.apache.arrow.stream"] = {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": "Sent when the request's Accept lists this type: `probability` "
            "(float32), `status` (dictionary-encoded), reason_k columns, the model tag in the "
            "schema metadata under `model`.",
        }
    }
    operation["parameters"] = [
        {
            "name": "reasons",
            "in": "query",
            "required": False,
            "description": "Add this many reason-code columns (reason_1 ...) for MAYBE and "
            "DECLINED rows.",
            "schema": {"type": "integer", "minimum": 0, "maximum": len(FIELDS), "default": 0},
        }
    ]
    operation["responses"].update(_refusals("501"))
    operation["responses"]["501"]["description"] = (
        "`reasons` asked of a model exported without training distributions."
    )
    operation["summary"] = "Score whole columns of applicants (JSON, CSV or Arrow)"


def _explain(paths: dict[str, Any], facts: DocumentFacts) -> None:
    for path in ("/explain", "/explain_batch"):
        operation = paths[path]["post"]
        operation["responses"].update(_refusals("501"))
        operation["responses"]["501"]["description"] = (
            "The served model was exported without training distributions: export it again."
        )
    paths["/explain"]["post"]["requestBody"]["content"][JSON]["example"] = {
        **APPLICANT_EXAMPLE, "records": "yes",
    }  # fmt: skip
    batch = paths["/explain_batch"]["post"]["requestBody"]["content"][JSON]
    batch["schema"]["maxItems"] = facts.max_batch_items
    batch["example"] = [APPLICANT_EXAMPLE]


def _object() -> dict[str, Any]:
    return {"type": "object"}


def _get(description: str, schema: dict[str, Any], *statuses: str) -> dict[str, Any]:
    return {
        "description": description,
        "tags": ["Open Inference Protocol"] if description.startswith("V2") else ["Service APIs"],
        "responses": {
            "200": {"description": "OK", "content": {JSON: {"schema": schema}}},
            **_refusals(*statuses),
        },
    }


def _v2_schemas() -> dict[str, Any]:
    ref = "#/components/schemas/"
    tensor_data = {
        "type": "array",
        "items": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        "description": "Row-major values, flat (shape [N]) or nested ([N, 1]).",
    }
    return {
        "V2TensorInput": {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "enum": list(FIELDS)},
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "datatype": {
                    "type": "string",
                    "enum": [*NUMERIC_DTYPES, "BYTES"],
                    "description": "Any numeric type for a number field; BYTES for a category.",
                },
                "parameters": {"type": "object", "nullable": True},
                "data": tensor_data,
            },
        },
        "V2InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "description": "All 13 form fields, each once, all of the same length N "
            "(refused with 422 otherwise: JSON Schema cannot state that rule).",
            "properties": {
                "id": {"type": "string", "nullable": True},
                "model_name": {"type": "string", "nullable": True, "enum": [MODEL_NAME, None]},
                "model_version": {"type": "string", "nullable": True},
                "parameters": {"type": "object", "nullable": True},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": ref + "V2TensorInput"},
                },
                "outputs": {
                    "type": "array",
                    "nullable": True,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "enum": ["probability", "status"]},
                            "parameters": {"type": "object", "nullable": True},
                        },
                    },
                },
            },
        },
        "V2InferenceResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object", "nullable": True},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "shape", "datatype"],
                        "properties": {
                            "name": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "datatype": {"type": "string"},
                            "parameters": {"type": "object", "nullable": True},
                            "data": tensor_data,
                        },
                    },
                },
            },
        },
        "V2ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"type": "object"}},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def _v2_paths(facts: DocumentFacts) -> dict[str, Any]:
    ref = "#/components/schemas/"
    model = f"/v2/models/{MODEL_NAME}"
    example = {
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
    infer: dict[str, Any] = {
        "description": "V2 inference: the same validation, engines, batcher and limits as "
        "/classify_bulk, so the same answers. JSON tensors, or the binary tensor data "
        "extension (`application/octet-stream` with `Inference-Header-Content-Length`).",
        "tags": ["Open Inference Protocol"],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"$ref": ref + "V2InferenceRequest"}, "example": example},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "`probability` (FP32) and `status` (BYTES), one per row.",
                "content": {
                    JSON: {"schema": {"$ref": ref + "V2InferenceResponse"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **_refusals("400", "413", "415", "422", "500", "503"),
        },
    }
    version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [facts.model_version]},
    }
    ready = {"type": "object", "properties": {"ready": {"type": "boolean"}}}
    metadata = {"$ref": ref + "V2ModelMetadata"}
    versioned = f"{model}/versions/{{model_version}}"
    return {
        "/v2": {"get": _get("V2 server metadata: name, version, extensions.", _object())},
        "/v2/health/live": {"get": _get("V2 liveness.", {"type": "object"})},
        "/v2/health/ready": {"get": _get("V2 readiness (503 while starting or draining).", ready,
                                         "503")},
        model: {"get": _get("V2 model metadata: one input per form field.", metadata)},
        f"{model}/ready": {"get": _get("V2 model readiness.", ready, "503")},
        f"{model}/infer": {"post": infer},
        versioned: {"get": {**_get("V2 model metadata of the served version.", metadata, "404"),
                            "parameters": [version]}},
        f"{versioned}/ready": {"get": {**_get("V2 readiness of the served version.", ready, "404",
                                              "503"), "parameters": [version]}},
        f"{versioned}/infer": {"post": {**infer, "parameters": [version],
                                        "responses": {**infer["responses"], **_refusals("404")}}},
    }  # fmt: skip
