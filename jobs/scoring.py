"""One Arrow record batch in, its decisions and its rejects out: what each Spark task runs.

Everything is column-wise, through the same parts as the server's bulk routes: the column reader
(features.columns), the checks (features.validation), encoding (FeatureEncoder on category
codes), the thresholds (features.thresholds) and the engines, routed by chunk size with the
server's settings (jobs.engine); Python touches single values only to word the error of an
invalid row.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from features.columns import from_arrow
from features.encoder import FeatureEncoder
from features.reasons import MatrixReasonCoder
from features.thresholds import STATUSES, Thresholds
from features.validation import find_invalid_rows
from jobs.engine import ModelBundle
from runners.base import FeatureMatrix, Probabilities
from runners.bulk import ChunkedPredictor
from runners.explainer import Explainer

# Columns the job adds: to each scored row, and to each rejected row.
DECISION_FIELDS = (
    pa.field("probability", pa.float32()),
    pa.field("status", pa.string()),
    pa.field("model", pa.string()),
)
# With --challenger: what the challenger decided for the same row (back-testing in one pass).
CHALLENGER_FIELDS = (
    pa.field("challenger_probability", pa.float32()),
    pa.field("challenger_status", pa.string()),
)
ERROR_FIELD = pa.field("error", pa.string())
ADDED_NAMES = frozenset(f.name for f in (*DECISION_FIELDS, *CHALLENGER_FIELDS, ERROR_FIELD))


def reason_fields(reasons: int) -> tuple[pa.Field, ...]:
    """reason_1 ... reason_N: each scored row's rank-k reason code (null for APPROVED rows or
    rows with fewer reasons), as /classify_bulk?reasons=N answers them."""
    return tuple(pa.field(f"reason_{rank}", pa.string()) for rank in range(1, reasons + 1))


def scored_schema(carried: pa.Schema, reasons: int = 0, challenger: bool = False) -> pa.Schema:
    added = CHALLENGER_FIELDS if challenger else ()
    return pa.schema([*carried, *DECISION_FIELDS, *reason_fields(reasons), *added])


def rejects_schema(carried: pa.Schema) -> pa.Schema:
    return pa.schema([*carried, ERROR_FIELD])


@dataclass(frozen=True)
class ScoredBatch:
    scored: pa.RecordBatch  # the valid rows: carried columns + DECISION_FIELDS
    rejects: pa.RecordBatch  # the invalid rows: carried columns + ERROR_FIELD


@dataclass(frozen=True)
class BatchScorer:
    """Scores batches with one model; built once per executor Python worker."""

    tag: str
    encoder: FeatureEncoder
    predictor: ChunkedPredictor
    thresholds: Thresholds
    reasons: int = 0  # reason-code columns to add
    explainer: Explainer | None = None  # with reasons: the native twin's TreeSHAP
    reason_coder: MatrixReasonCoder | None = None
    challenger: ChunkedPredictor | None = None  # --challenger: scores the same rows too

    @classmethod
    def from_bundle(
        cls, bundle: ModelBundle, reasons: int = 0, challenger: ModelBundle | None = None
    ) -> "BatchScorer":
        explainer, coder = bundle.explaining() if reasons else (None, None)
        return cls(
            tag=bundle.tag,
            encoder=FeatureEncoder(bundle.onnx.feature_names),
            predictor=bundle.predictor(),
            thresholds=bundle.thresholds,
            reasons=reasons,
            explainer=explainer,
            reason_coder=coder,
            challenger=challenger.predictor() if challenger is not None else None,
        )

    def score(self, batch: pa.RecordBatch) -> ScoredBatch:
        # Numeric fields may be text (CSV is read as text); the driver checked the schema.
        read = from_arrow(batch, text_numbers=True)
        invalid = find_invalid_rows(read)
        valid = batch
        columns = read.for_encoder()
        if len(invalid):
            keep = ~invalid.mask
            valid = batch.filter(pa.array(keep))
            columns = read.rows(keep)
        features = self.encoder.encode_columns(columns)
        decisions = self.decisions(features, self.predict(features))
        scored = pa.RecordBatch.from_arrays(
            [*valid.columns, *decisions],
            schema=scored_schema(batch.schema, self.reasons, self.challenger is not None),
        )
        rejects = pa.RecordBatch.from_arrays(
            [*batch.take(pa.array(invalid.rows)).columns, pa.array(invalid.errors, pa.string())],
            schema=rejects_schema(batch.schema),
        )
        return ScoredBatch(scored=scored, rejects=rejects)

    def predict(self, features: FeatureMatrix) -> Probabilities:
        if len(features) == 0:  # every row of the batch was invalid
            return np.empty(0, dtype=np.float32)
        return self.predictor.predict(features)

    def decisions(self, features: FeatureMatrix, probabilities: Probabilities) -> list[pa.Array]:
        """The added columns for the scored rows: DECISION_FIELDS, then the reason codes."""
        levels = self.thresholds.levels(probabilities)
        status = pa.DictionaryArray.from_arrays(pa.array(levels), pa.array(STATUSES.tolist()))
        return [
            pa.array(probabilities, type=pa.float32()),
            status.cast(pa.string()),
            pa.repeat(pa.scalar(self.tag), len(probabilities)),
            *self.reason_codes(features, levels),
            *self.challenger_columns(features),
        ]

    def challenger_columns(self, features: FeatureMatrix) -> list[pa.Array]:
        """CHALLENGER_FIELDS for the scored rows (none without a challenger)."""
        if self.challenger is None:
            return []
        shadow = (
            self.challenger.predict(features) if len(features) else np.empty(0, dtype=np.float32)
        )
        status = STATUSES[self.thresholds.levels(shadow)].tolist()
        return [pa.array(shadow, type=pa.float32()), pa.array(status, type=pa.string())]

    def reason_codes(self, features: FeatureMatrix, levels: npt.NDArray[np.int8]) -> list[pa.Array]:
        if not self.reasons:
            return []
        assert self.explainer is not None and self.reason_coder is not None
        if len(features) == 0:
            return [pa.array([], pa.string()) for _ in range(self.reasons)]
        contributions = self.explainer.contributions(features).contributions
        ranked = self.reason_coder.reason_codes(contributions, features, self.reasons)
        approved = levels == 0
        columns = []
        for codes in ranked:
            codes[approved] = None
            columns.append(pa.array(codes, pa.string()))
        return columns
