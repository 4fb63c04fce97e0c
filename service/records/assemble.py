"""Enqueued decision batches -> one Arrow table of records, reason codes included.

Runs on the writer thread, never on the request path. Batches of one row (the /classify
route) are the common case, thousands a second: every column is gathered with one pass over
the batches and converted to Arrow once, never one Arrow object per batch.
"""

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, FIELDS
from service.records.schema import REASON_COLUMNS, SCHEMA, DecisionBatch

# Encoded (rows, features) float32 matrix -> one object array per reason rank (None: no
# reason), computed with the served model's explainer exactly as /explain ranks them.
ReasonCodes = Callable[[npt.NDArray[np.float32]], list[npt.NDArray[np.object_]]]
NEEDS_REASONS = ("MAYBE", "DECLINED")


def explainer_reasons(explainer: Any, matrix_coder: Any, k: int) -> ReasonCodes:
    """Reason codes from a runners.explainer.Explainer and a features.reasons
    MatrixReasonCoder: the top `k` fields pushing toward default, largest first."""

    def codes(features: npt.NDArray[np.float32]) -> list[npt.NDArray[np.object_]]:
        contributions = explainer.contributions(features).contributions
        ranked: list[npt.NDArray[np.object_]] = matrix_coder.reason_codes(
            contributions, features, k
        )
        return ranked

    return codes


def assemble(batches: Sequence[DecisionBatch], reasons: ReasonCodes | None) -> pa.Table:
    """One table (schema.SCHEMA) holding every row of `batches`, in order."""
    counts = np.array([len(b.probability) for b in batches], dtype=np.int64)
    n = int(counts.sum())
    single_rows = n == len(batches)  # the common case: one applicant per request

    def per_batch(values: list[Any], dtype: Any = object) -> npt.NDArray[Any]:
        array = np.array(values, dtype=dtype)
        return array if single_rows else np.repeat(array, counts)

    if single_rows:
        row_index = np.zeros(n, dtype=np.int32)
    else:
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        row_index = (np.arange(n, dtype=np.int64) - starts).astype(np.int32)
    seconds = per_batch([b.decided_at for b in batches], np.float64)
    micros = np.round(seconds * 1_000_000).astype(np.int64)
    status = np.fromiter(chain.from_iterable(b.status for b in batches), dtype=object, count=n)
    columns: dict[str, Any] = {
        "request_id": per_batch([b.request_id for b in batches]),
        "row_index": row_index,
        "decided_at": pa.array(micros, type=SCHEMA.field("decided_at").type),
        "route": per_batch([b.route for b in batches]),
        "client": per_batch([b.client for b in batches]),
        "model": per_batch([b.model for b in batches]),
        "probability": _concat([b.probability for b in batches], np.float32),
        "status": status,
    }
    for field, values in _field_columns(batches).items():
        if field in CATEGORICAL_FIELDS:
            columns[field] = values
        else:
            columns[field] = np.asarray(values, dtype=np.float64)
    columns.update(_reason_columns(batches, status, reasons, n))
    columns.update(_challenger_columns(batches, counts, n))
    return pa.Table.from_pydict(
        {name: _arrow(columns[name], SCHEMA.field(name).type) for name in SCHEMA.names},
        schema=SCHEMA,
    )


def _arrow(values: Any, kind: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array):
        return values if values.type == kind else values.cast(kind)
    return pa.array(values, type=kind)


def _field_columns(batches: Sequence[DecisionBatch]) -> dict[str, list[Any]]:
    """Each form field's values over all batches, in row order. Row-wise runs of batches (one
    mapping per applicant) are gathered with one comprehension per field over all their rows."""
    columns: dict[str, list[Any]] = {field: [] for field in FIELDS}
    rows: list[Mapping[str, Any]] = []
    for batch in batches:
        fields = batch.fields
        if isinstance(fields, Mapping):
            _extend_rows(columns, rows)
            rows = []
            for field in FIELDS:
                columns[field].extend(_as_list(fields[field]))
        else:
            rows.extend(fields)
    _extend_rows(columns, rows)
    return columns


def _extend_rows(columns: dict[str, list[Any]], rows: list[Mapping[str, Any]]) -> None:
    if rows:
        for field, column in columns.items():
            column.extend([row[field] for row in rows])


def _as_list(values: Sequence[Any] | npt.NDArray[Any] | CategoryCodes) -> Sequence[Any]:
    if isinstance(values, CategoryCodes):  # positions in the categories, -1 for none
        names = np.array([*values.categories, None], dtype=object)
        return names[values.codes].tolist()
    return values.tolist() if isinstance(values, np.ndarray) else values


def _concat(arrays: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    if not arrays:
        return np.empty(0, dtype=dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


def _reason_columns(
    batches: Sequence[DecisionBatch],
    status: npt.NDArray[np.object_],
    reasons: ReasonCodes | None,
    n: int,
) -> dict[str, npt.NDArray[np.object_]]:
    columns = {name: np.full(n, None, dtype=object) for name in REASON_COLUMNS}
    explained = np.isin(status, NEEDS_REASONS)
    if reasons is None or not explained.any():
        return columns
    features = np.concatenate([b.features for b in batches]).astype(np.float32, copy=False)
    ranked = reasons(np.ascontiguousarray(features[explained]))
    for name, codes in zip(REASON_COLUMNS, ranked, strict=False):
        columns[name][explained] = codes
    return columns


def _challenger_columns(
    batches: Sequence[DecisionBatch], counts: npt.NDArray[np.int64], n: int
) -> dict[str, Any]:
    if all(b.challenger is None for b in batches):
        return {
            "challenger_model": pa.nulls(n, pa.string()),
            "challenger_probability": pa.nulls(n, pa.float32()),
            "challenger_status": pa.nulls(n, pa.string()),
        }
    models: list[Any] = []
    probabilities: list[Any] = []
    statuses: list[Any] = []
    for batch, count in zip(batches, counts.tolist(), strict=True):
        challenger = batch.challenger
        if challenger is None:
            models.extend([None] * count)
            probabilities.extend([None] * count)
            statuses.extend([None] * count)
        else:
            models.extend([challenger.model] * count)
            probabilities.extend(challenger.probability.tolist())
            statuses.extend(challenger.status)
    return {
        "challenger_model": models,
        "challenger_probability": probabilities,
        "challenger_status": statuses,
    }
