"""Enqueued decisions -> one Arrow table of records, reason codes included.

Runs on the writer thread, never on the request path. One applicant per request (the
/classify route) is the common case, thousands a second: such a decision is enqueued as its plain
values (`append_single`), appended to one flat list shared by all of them, and each column is
one slice of that list (`flat[k::width]`), converted to Arrow once: never one Python or
Arrow object per request. Larger requests come as DecisionBatch objects.

Why plain values in one list, and not a DecisionBatch, a tuple or the request's own list
and dict: every container object the request path keeps alive until the next flush counts
toward Python's cyclic garbage collector. A thousand of them trigger a young collection,
which promotes what is alive at that moment, the requests in flight (coroutines, futures),
and those promotions soon trigger full collections that walk the worker's whole heap:
measured in process, ~6 us a /classify request, more than the writer's own work. Strings,
floats and NumPy arrays are not containers the collector counts, and a list's growth
allocates none.
"""

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.encoder import CategoryCodes
from features.schema import CATEGORICAL_FIELDS, FIELDS
from service.records.schema import REASON_COLUMNS, SCHEMA, DecisionBatch

# Encoded (rows, features) float32 matrix -> one object array per reason rank (None: no
# reason), computed with the served model's explainer exactly as /explain ranks them.
ReasonCodes = Callable[[npt.NDArray[np.float32]], list[npt.NDArray[np.object_]]]
# A model's tag -> its ReasonCodes (None: that model gives no reasons): a record's reasons are
# those of the model that decided it (a canary's challenger, a switch's new champion).
ReasonsByModel = Callable[[str], ReasonCodes | None]
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


class ModelReasons:
    """ReasonsByModel for a worker: the models it serves and the few it served last. A record is
    assembled at the writer's next flush (a second at most) after its decision, so the models
    of the last `keep` switches are plenty. Changed on the event loop, read by the writer
    thread: each change is one assignment of a new dict (never a dict changed in place)."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._by_tag: dict[str, ReasonCodes] = {}

    def add(self, tag: str, codes: ReasonCodes) -> None:
        by_tag = {name: value for name, value in self._by_tag.items() if name != tag}
        by_tag[tag] = codes  # the newest last
        while len(by_tag) > self.keep:
            del by_tag[next(iter(by_tag))]
        self._by_tag = by_tag

    def __call__(self, tag: str) -> ReasonCodes | None:
        return self._by_tag.get(tag)


# A single applicant's decision as the writer receives it: these values, in this order, then
# the 13 form fields in FIELDS order (`append_single`), many decisions one after another in
# one flat list (`assemble_rows`).
SINGLE_HEAD: Final = (
    "request_id",
    "route",
    "client",
    "model",
    "decided_at",
    "probability",
    "status",
    "features",  # the encoded (1, n_features) row; None when the row needs no reasons
)
DECIDED_AT: Final = SINGLE_HEAD.index("decided_at")
ROW_WIDTH: Final = len(SINGLE_HEAD) + len(FIELDS)
# An applicant's 13 form fields in FIELDS order, from a mapping (KeyError for a missing one).
field_values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = itemgetter(*FIELDS)


def append_single(
    flat: list[Any],
    request_id: str,
    route: str,
    client: str,
    model: str,
    decided_at: float,
    probability: float,
    status: str,
    values: tuple[Any, ...],
    features: npt.NDArray[np.float32],
) -> None:
    """Appends one applicant's decision to `flat` (`values`: its `field_values`)."""
    features_or_none = features if status in NEEDS_REASONS else None
    flat.extend(
        (request_id, route, client, model, decided_at, probability, status, features_or_none)
    )
    flat.extend(values)


def single_batches(flat: Sequence[Any]) -> list[DecisionBatch]:
    """One DecisionBatch per decision of a flat list (to single out the ones the writer
    cannot read)."""
    return [single_batch(flat[i : i + ROW_WIDTH]) for i in range(0, len(flat), ROW_WIDTH)]


def single_batch(row: Sequence[Any]) -> DecisionBatch:
    head = len(SINGLE_HEAD)
    request_id, route, client, model, decided_at, probability, status, features = row[:head]
    return DecisionBatch(
        request_id,
        route,
        client,
        model,
        decided_at,
        np.array([probability], dtype=np.float32),
        [status],
        [dict(zip(FIELDS, row[head:], strict=True))],
        np.zeros((1, 0), dtype=np.float32) if features is None else features,
    )


def assemble_rows(flat: list[Any], reasons: ReasonsByModel | None) -> pa.Table:
    """One table (schema.SCHEMA) holding the decisions whose `append_single` values follow one
    another in `flat`, in order."""
    n, rest = divmod(len(flat), ROW_WIDTH)
    if rest:
        raise ValueError(f"{len(flat)} values are not whole decisions of {ROW_WIDTH}")
    head = len(SINGLE_HEAD)
    values = [flat[k::ROW_WIDTH] for k in range(ROW_WIDTH)]  # one list per column
    request_id, route, client, model, decided_at, probability, status, features = values[:head]
    micros = np.round(np.array(decided_at, dtype=np.float64) * 1_000_000).astype(np.int64)
    columns: dict[str, Any] = {
        "request_id": request_id,
        "row_index": np.zeros(n, dtype=np.int32),
        "decided_at": pa.array(micros, type=SCHEMA.field("decided_at").type),
        "route": route,
        "client": client,
        "model": model,
        "probability": np.array(probability, dtype=np.float32),
        "status": status,
    }
    for field, column in zip(FIELDS, values[head:], strict=True):
        if field in CATEGORICAL_FIELDS:
            columns[field] = column
        else:
            columns[field] = np.array(column, dtype=np.float64)
    columns.update(_single_reasons(features, model, reasons, n))
    columns.update(_no_challenger(n))
    return _table(columns)


def _single_reasons(
    features: Sequence[npt.NDArray[np.float32] | None],
    models: Sequence[str],
    reasons: ReasonsByModel | None,
    n: int,
) -> dict[str, Any]:
    explained = np.fromiter((f is not None for f in features), dtype=bool, count=n)
    if reasons is None or not explained.any():
        return {name: pa.nulls(n, pa.string()) for name in REASON_COLUMNS}
    matrix = np.concatenate([f for f in features if f is not None]).astype(np.float32, copy=False)
    deciders = [model for model, f in zip(models, features, strict=True) if f is not None]
    ranked = _by_model(matrix, deciders, reasons)
    columns: dict[str, Any] = {}
    for name, codes in zip(REASON_COLUMNS, ranked, strict=True):
        column = np.full(n, None, dtype=object)
        column[explained] = codes
        columns[name] = column
    return columns


def _by_model(
    matrix: npt.NDArray[np.float32], models: Sequence[str], reasons: ReasonsByModel
) -> list[npt.NDArray[np.object_]]:
    """One column per reason rank for the rows of `matrix`, each row's from the reasons of the
    model in `models` that decided it (None where that model gives none)."""
    columns = [np.full(len(matrix), None, dtype=object) for _ in REASON_COLUMNS]
    tags = list(dict.fromkeys(models))
    for tag in tags:
        codes = reasons(tag)
        if codes is None:
            continue
        if len(tags) == 1:  # the common case: every row of the flush is one model's
            at: Any = slice(None)
        else:
            at = np.flatnonzero(np.asarray(models, dtype=object) == tag)
        ranked = codes(np.ascontiguousarray(matrix[at]))
        for column, part in zip(columns, ranked, strict=False):
            column[at] = part
    return columns


def _table(columns: Mapping[str, Any]) -> pa.Table:
    return pa.Table.from_pydict(
        {name: _arrow(columns[name], SCHEMA.field(name).type) for name in SCHEMA.names},
        schema=SCHEMA,
    )


def _no_challenger(n: int) -> dict[str, pa.Array]:
    return {
        "challenger_model": pa.nulls(n, pa.string()),
        "challenger_probability": pa.nulls(n, pa.float32()),
        "challenger_status": pa.nulls(n, pa.string()),
    }


def assemble(batches: Sequence[DecisionBatch], reasons: ReasonsByModel | None) -> pa.Table:
    """One table (schema.SCHEMA) holding every row of `batches`, in order."""
    counts = np.array([len(b.probability) for b in batches], dtype=np.int64)
    n = int(counts.sum())
    single_rows = n == len(batches)  # the common case: one applicant per request

    def per_batch(values: list[Any], dtype: Any = object) -> npt.NDArray[Any]:
        array = np.array(values, dtype=dtype)
        return array if single_rows else np.repeat(array, counts)

    if any(b.positions is not None for b in batches):
        row_index = _concat(
            [b.positions if b.positions is not None else np.arange(len(b)) for b in batches],
            np.int32,
        )
    elif single_rows:
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
    columns.update(_reason_columns(batches, counts, status, reasons, n))
    columns.update(_challenger_columns(batches, counts, n))
    return _table(columns)


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
    counts: npt.NDArray[np.int64],
    status: npt.NDArray[np.object_],
    reasons: ReasonsByModel | None,
    n: int,
) -> dict[str, npt.NDArray[np.object_]]:
    columns = {name: np.full(n, None, dtype=object) for name in REASON_COLUMNS}
    explained = np.isin(status, NEEDS_REASONS)
    if reasons is None or not explained.any():
        return columns
    features = np.concatenate([b.features for b in batches]).astype(np.float32, copy=False)
    models = np.repeat(np.array([b.model for b in batches], dtype=object), counts)
    ranked = _by_model(features[explained], models[explained].tolist(), reasons)
    for name, codes in zip(REASON_COLUMNS, ranked, strict=True):
        columns[name][explained] = codes
    return columns


def _challenger_columns(
    batches: Sequence[DecisionBatch], counts: npt.NDArray[np.int64], n: int
) -> dict[str, Any]:
    if all(b.challenger is None for b in batches):
        return _no_challenger(n)
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
