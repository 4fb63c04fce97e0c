"""The Open Inference Protocol (KServe V2) over REST: server and model metadata, readiness and
inference on one model, `credit_risk`, whose inputs are the 13 form fields as tensors of shape
[N] (numbers: any numeric datatype; categories: BYTES) and whose outputs are `probability`
(FP32) and `status` (BYTES).

Inference takes the same column reader and checks (features.columns, features.validation: a bad
tensor element is named `income[3]`), limits, engines and batcher as /classify_bulk, so its
answers equal it: fewer rows than the bulk engine's switch-over go through the batcher (the same
engine), more run on the bulk thread. The request parameter `"per_row": true` asks for per-row
verdicts, as /classify_bulk?per_row=true: invalid rows get status INVALID, a NaN probability and
their error in a third output, `error` (BYTES, empty for scored rows). Bodies are JSON, or the
binary tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes followed
by the raw tensors) both ways.
No HTTP here: the front door maps routes and headers onto these calls.
"""

import itertools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.columns import ApplicantColumns, from_values
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS
from features.thresholds import ROW_STATUSES
from service.errors import RequestError, from_validation_error, too_large
from service.scoring import ROW_MODEL, BulkScores, CreditScorer

MODEL_NAME = "credit_risk"
SERVER_NAME = "credit-risk-serving"
BINARY_EXTENSION = "binary_tensor_data"
NUMERIC_DTYPES: dict[str, str] = {
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
BYTES = "BYTES"
PER_ROW = "per_row"  # the request parameter asking for per-row verdicts


class TensorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None  # absent when the tensor comes as binary data


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    # Not in the protocol's request, but KServe's client sends them: checked when present.
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="`per_row`: true scores every valid row and answers each invalid one with "
        "status INVALID, a NaN (JSON: null) probability and its error in a third output, "
        "`error` (BYTES, empty for scored rows); false (the default) refuses the whole request "
        "(422) naming the field and the row. `binary_data_output`: true sends every output as "
        "binary tensor data.",
    )
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class InferAnswer:
    body: bytes
    json_length: int | None  # the binary extension: the JSON header's length in `body`


def _version_of(tag: str) -> str:
    """A model tag's version (`name:version`): the V2 protocol's model version."""
    return tag.split(":", 1)[-1]


class OpenInferenceProtocol:
    def __init__(self, scorer: CreditScorer, package_version: str) -> None:
        self.scorer = scorer
        self._server = orjson.dumps(
            {"name": SERVER_NAME, "version": package_version, "extensions": [BINARY_EXTENSION]}
        )
        self._model = (self.version, self._model_metadata(self.version))

    @property
    def version(self) -> str:
        """The served version: the champion's tag's version (it changes when the models file
        promotes another model)."""
        return _version_of(self.scorer.model_tag)

    @staticmethod
    def _model_metadata(version: str) -> bytes:
        tensor = [-1]
        return orjson.dumps(
            {
                "name": MODEL_NAME,
                "versions": [version],
                "platform": "onnxruntime_onnx",
                "inputs": [
                    {"name": name, "datatype": "FP64" if name in NUMERIC_FIELDS else BYTES,
                     "shape": tensor}
                    for name in FIELDS
                ],
                "outputs": [
                    {"name": "probability", "datatype": "FP32", "shape": tensor},
                    {"name": "status", "datatype": BYTES, "shape": tensor},
                    # the model that decided each row (a canary's split; see _wanted_outputs)
                    {"name": ROW_MODEL, "datatype": BYTES, "shape": tensor},
                ],
            }
        )  # fmt: skip

    # -- metadata and health: constant bodies ------------------------------------------------
    def server_metadata(self) -> bytes:
        return self._server

    def model_metadata(self) -> bytes:
        version = self.version
        if self._model[0] != version:
            self._model = (version, self._model_metadata(version))
        return self._model[1]

    def model_ready(self, ready: bool) -> bytes:
        return orjson.dumps({"name": MODEL_NAME, "ready": ready})

    # -- inference ---------------------------------------------------------------------------
    async def infer(self, body: bytes, json_length: int | None) -> InferAnswer:
        header, binary = _split(body, json_length)
        request = _parse(header)
        if request.model_name not in (None, MODEL_NAME):
            raise _problem("model_name", f"this is model {MODEL_NAME}, not {request.model_name!r}")
        version = self.version
        if request.model_version not in (None, version):
            raise _problem(
                "model_version", f"the served version is {version}, not {request.model_version!r}"
            )
        per_row = _per_row(request)
        tensors = _tensor_values(request.inputs, binary, header)
        columns = _read(
            tensors, self.scorer.limits.max_bulk_rows, b"true" in header or b"false" in header
        )
        model = self.scorer.model_tag
        scores = await self.scorer.score_bulk(columns, per_row=per_row, batched=True)
        return self._answer(request, scores, model)

    def _answer(self, request: InferenceRequest, scores: BulkScores, model: str) -> InferAnswer:
        """`model`: the champion's tag when the request came (a switch during it changes
        nothing for it: it finishes on the models it started with)."""
        wanted = _wanted_outputs(request, scores.per_row, split=scores.model_tags is not None)
        binary_default = bool((request.parameters or {}).get("binary_data_output", False))
        probabilities = scores.probabilities
        n = len(probabilities)
        tensors: dict[str, Callable[[], list[str]]] = {
            "status": lambda: [ROW_STATUSES[level] for level in scores.levels.tolist()],
            "error": lambda: [error or "" for error in scores.errors()],
            ROW_MODEL: lambda: _row_models(scores, model),
        }
        outputs: list[dict[str, Any]] = []
        raw: list[bytes] = []
        for name, binary in wanted(binary_default):
            datatype = "FP32" if name == "probability" else BYTES
            entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [n]}
            if binary:
                data = probabilities.astype("<f4").tobytes() if name == "probability" else (
                    _bytes_tensor(tensors[name]())
                )  # fmt: skip
                entry["parameters"] = {"binary_data_size": len(data)}
                raw.append(data)
            else:  # orjson writes a NaN probability (an invalid row) as null
                entry["data"] = probabilities if name == "probability" else tensors[name]()
            outputs.append(entry)
        answer: dict[str, Any] = {
            "model_name": MODEL_NAME,
            "model_version": _version_of(model),
            "parameters": {"model": model},
            "outputs": outputs,
        }
        if request.id is not None:
            answer["id"] = request.id
        head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        if not raw:
            return InferAnswer(head, None)
        return InferAnswer(head + b"".join(raw), len(head))


def _split(body: bytes, json_length: int | None) -> tuple[bytes, memoryview]:
    if json_length is None:
        return body, memoryview(b"")
    if not 0 < json_length <= len(body):
        raise RequestError(
            400,
            f"Inference-Header-Content-Length: {json_length} is not within the body's "
            f"{len(body)} bytes",
        )
    return body[:json_length], memoryview(body)[json_length:]


def _parse(header: bytes) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate_json(header)
    except ValidationError as error:
        raise from_validation_error(error, schema="an inference request") from error


def _per_row(request: InferenceRequest) -> bool:
    value = (request.parameters or {}).get(PER_ROW, False)
    if not isinstance(value, bool):
        raise _problem(f"parameters.{PER_ROW}", f"must be true or false, not {value!r}")
    return value


def _wanted_outputs(
    request: InferenceRequest, per_row: bool, split: bool = False
) -> Callable[[bool], list[tuple[str, bool]]]:
    """(output name, as binary data) for each output to return, given the request's default.
    `row_model` (the tag of the model that decided each row) comes unasked when a canary split
    the rows between two models, as /classify_bulk's column does, and whenever it is asked."""
    always: tuple[str, ...] = (
        ("probability", "status", "error") if per_row else ("probability", "status")
    )
    known = (*always, ROW_MODEL)
    default = known if split else always

    def wanted(binary_default: bool) -> list[tuple[str, bool]]:
        if not request.outputs:
            return [(name, binary_default) for name in default]
        chosen = []
        for i, output in enumerate(request.outputs):
            if output.name not in known:
                raise _problem(
                    f"outputs[{i}].name",
                    f"unknown output {output.name!r}; the model has {', '.join(known)}",
                )
            binary = (output.parameters or {}).get("binary_data", binary_default)
            chosen.append((output.name, bool(binary)))
        return chosen

    return wanted


def _row_models(scores: BulkScores, model: str) -> list[str]:
    """The tag of the model that decided each row ("" for a row not scored)."""
    if scores.model_tags is not None:
        return [tag or "" for tag in scores.model_tags.tolist()]
    if scores.invalid is None:
        return [model] * len(scores.probabilities)
    return np.where(scores.invalid.mask, "", model).tolist()


def _problem(location: str, message: str, status: int = 422) -> RequestError:
    return RequestError(
        status, f"{location}: {message}", [{"location": location, "message": message}]
    )


Values = npt.NDArray[Any] | list[Any]


def _tensor_values(
    inputs: list[TensorInput], binary: memoryview, header: bytes
) -> dict[str, Values]:
    """Each form field's flat values, its tensor's name, shape and datatype checked."""
    found: dict[str, Values] = {}
    rows: int | None = None
    offset = 0
    for tensor in inputs:
        name = tensor.name
        if name not in FIELDS:
            raise _problem(name, f"unknown input; the model takes {', '.join(FIELDS)}")
        if name in found:
            raise _problem(name, "input given more than once")
        _check_datatype(tensor)
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if tensor.data is not None:
                raise _problem(name, "has both data and binary_data_size")
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _problem(
                    name, f"binary_data_size {size!r} is past the body's binary data", 400
                )
            values: Values = _from_binary(tensor, binary[offset : offset + size])
            offset += size
        elif tensor.data is None:
            raise _problem(name, "has no data")
        else:
            values = _flat(tensor.data)
        count = _check_shape(tensor, len(values))
        if rows is not None and count != rows:
            raise _problem(name, f"has {count} values but other inputs have {rows}")
        rows = count
        found[name] = values
    missing = [name for name in FIELDS if name not in found]
    if missing:
        details = [{"location": name, "message": "input required"} for name in missing]
        raise RequestError(422, f"{missing[0]}: input required", details)
    if offset != len(binary):
        raise RequestError(400, f"body: {len(binary) - offset} bytes of binary data unused")
    return found


def _check_datatype(tensor: TensorInput) -> None:
    expected_bytes = tensor.name in CATEGORICAL_FIELDS
    if expected_bytes and tensor.datatype != BYTES:
        raise _problem(tensor.name, f"datatype must be BYTES, not {tensor.datatype}")
    if not expected_bytes and tensor.datatype not in NUMERIC_DTYPES:
        raise _problem(
            tensor.name,
            f"datatype must be numeric ({', '.join(NUMERIC_DTYPES)}), not {tensor.datatype}",
        )


def _check_shape(tensor: TensorInput, count: int) -> int:
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
        raise _problem(tensor.name, f"shape must be [N] or [N, 1] with N >= 1, not {shape}")
    if shape[0] != count:
        raise _problem(tensor.name, f"shape {shape} does not match its {count} values")
    return count


def _flat(data: list[Any]) -> list[Any]:
    """Row-major data, nested ([[v], [v]]) or flat, as one flat list."""
    if data and isinstance(data[0], list):
        return list(itertools.chain.from_iterable(data))
    return data


def _from_binary(tensor: TensorInput, raw: memoryview) -> Values:
    if tensor.datatype != BYTES:
        dtype = np.dtype(NUMERIC_DTYPES[tensor.datatype])
        if len(raw) % dtype.itemsize:
            raise _problem(
                tensor.name, f"{len(raw)} bytes is not a whole number of {tensor.datatype}"
            )
        return np.frombuffer(raw, dtype=dtype)
    values: list[Any] = []
    position = 0
    while position < len(raw):
        if position + 4 > len(raw):
            raise _problem(tensor.name, "BYTES data ends inside an element's length", 400)
        (length,) = struct.unpack_from("<I", raw, position)
        element = bytes(raw[position + 4 : position + 4 + length])
        if len(element) != length:
            raise _problem(tensor.name, "BYTES data ends inside an element", 400)
        try:
            values.append(element.decode())
        except UnicodeDecodeError:
            values.append(element)  # not text: refused as not a category below
        position += 4 + length
    return values


def _bytes_tensor(values: list[str]) -> bytes:
    """BYTES elements as the binary extension lays them out: a 4-byte length, then the bytes."""
    encoded = [value.encode() for value in values]
    return b"".join(struct.pack("<I", len(element)) + element for element in encoded)


def _read(tensors: dict[str, Values], max_rows: int, may_hold_booleans: bool) -> ApplicantColumns:
    """The tensors through the one column reader: a JSON string or boolean in a numeric tensor
    is no number (refused, or an INVALID row), as on every other way in."""
    n_rows = len(tensors[FIELDS[0]])
    if n_rows > max_rows:
        raise too_large("inference request", n_rows, max_rows, "rows")
    columns: dict[str, Sequence[Any] | npt.NDArray[Any]] = dict(tensors)
    return from_values(columns, may_hold_booleans=may_hold_booleans)
