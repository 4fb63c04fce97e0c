"""The data plane: bytes in -> validate -> encode -> model -> decisions -> bytes. No HTTP here.

The front door (service/http/) maps routes, content types and query strings onto these calls
and their `RequestError`s onto responses; the typed `@bentoml.api` methods and the Open
Inference Protocol (service/v2.py) call the same scorer.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ValidationError

from features.encoder import FeatureEncoder
from features.reasons import MatrixReasonCoder, ReasonCoder
from features.schema import FIELDS
from runners.base import FeatureMatrix, Probabilities
from runners.batcher import OverloadedError
from runners.bulk import ChunkedPredictor
from runners.explainer import Explainer
from service.arrow_io import decisions_as_arrow, parse_applicant_arrow
from service.column_checks import BulkColumns
from service.csv_input import parse_applicant_csv
from service.decisions import Thresholds
from service.errors import RequestError, from_validation_error, overloaded, too_large
from service.monitoring import DecisionMonitor
from service.schemas import Applicant, ApplicantBatch, ApplicantColumns

RowPredictor = Callable[[FeatureMatrix], Awaitable[npt.NDArray[np.float32]]]
M = TypeVar("M", bound=BaseModel)


class BodyFormat(StrEnum):
    """How a bulk body encodes its columns."""

    JSON = "json"  # column-wise JSON: one array per field
    CSV = "csv"  # a header with the field names, one applicant per line
    ARROW_STREAM = "arrow-stream"  # Apache Arrow IPC stream
    ARROW_FILE = "arrow-file"  # Apache Arrow IPC file


class AnswerFormat(StrEnum):
    JSON = "json"
    ARROW = "arrow"  # an Arrow IPC stream


@dataclass(frozen=True)
class Limits:
    max_batch_items: int
    max_bulk_rows: int
    max_body_bytes: int


@dataclass(frozen=True)
class Explaining:
    """What explanations need; a model exported without training distributions has none."""

    # (rows, features) -> (rows, 1 + 13): the probability, then each form field's contribution;
    # through the worker's explanation batcher (one explainer call per merged batch).
    explain_rows: RowPredictor
    explainer: Explainer  # bulk reasons call it directly, on the bulk thread
    coder: ReasonCoder
    matrix_coder: MatrixReasonCoder
    top_n: int  # reasons in a MAYBE or DECLINED answer
    bias: float  # the model's base log-odds: bias + sum(contributions) = logit(probability)
    saturated: Callable[[], str | None] | None = None  # the explanation batcher's queue bound


class CreditScorer:
    def __init__(
        self,
        *,
        model_tag: str,
        encoder: FeatureEncoder,
        predict_rows: RowPredictor,
        bulk: ChunkedPredictor,
        thresholds: Thresholds,
        limits: Limits,
        monitor: DecisionMonitor | None = None,
        explaining: Explaining | None = None,
        batcher_max_rows: int = 0,
    ) -> None:
        self.model_tag = model_tag
        self.encoder = encoder
        self.thresholds = thresholds
        self.limits = limits
        self.monitor = monitor
        self.explaining = explaining
        self.batcher_max_rows = batcher_max_rows
        self._predict_rows = predict_rows
        self._bulk = bulk
        self._bulk_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk")

    # -- typed entry points --------------------------------------------------------------
    async def score_applicants(self, applicants: Sequence[Applicant]) -> Probabilities:
        rows = self._rows_of(applicants)
        return await self._predict(self.encoder.encode_rows(rows))

    async def score_columns(self, columns: BulkColumns | dict[str, Any]) -> Probabilities:
        probabilities, _ = await self._predict_bulk(self.encoder.encode_columns(columns), 0)
        return probabilities

    async def score_features(self, features: FeatureMatrix) -> Probabilities:
        """Encoded rows of any count (the Open Inference Protocol): fewer than
        `batcher_max_rows` through the batcher (whose engine is then the one bulk scoring uses
        for that many rows, so answers equal /classify_bulk's), more on the bulk thread."""
        if len(features) < self.batcher_max_rows:
            return await self._predict(features)
        probabilities, _ = await self._predict_bulk(features, 0)
        return probabilities

    def decision(self, probability: float) -> dict[str, Any]:
        return {
            "status": self.thresholds.status(probability),
            "probability": probability,
            "model": self.model_tag,
        }

    def bulk_decisions(self, probabilities: Probabilities) -> dict[str, Any]:
        return {
            "model": self.model_tag,
            "probability": probabilities,
            "status": self.thresholds.statuses(probabilities),
        }

    # -- raw-body entry points (the front door's routes) ---------------------------------
    async def classify_json(self, body: bytes) -> bytes:
        applicant = _validate(Applicant, body)
        (probability,) = await self._predict(self.encoder.encode_one(applicant.__dict__))
        return orjson.dumps(self.decision(float(probability)))

    async def classify_batch_json(self, body: bytes) -> bytes:
        applicants = _validate(ApplicantBatch, body).root
        probabilities = await self.score_applicants(applicants)
        return orjson.dumps([self.decision(p) for p in probabilities.tolist()])

    async def classify_bulk(
        self,
        body: bytes,
        body_format: BodyFormat = BodyFormat.JSON,
        answer_format: AnswerFormat = AnswerFormat.JSON,
        reasons: int = 0,
    ) -> bytes:
        """A bulk body -> the decisions, as column-wise JSON or as an Arrow IPC stream, with
        `reasons` reason-code columns (reason_1 ... for MAYBE and DECLINED rows)."""
        if reasons:
            self._explaining()  # refuse before parsing when this model cannot explain
        features = self.encoder.encode_columns(self._bulk_columns(body, body_format))
        probabilities, codes = await self._predict_bulk(features, reasons)
        columns = {f"reason_{rank}": column for rank, column in enumerate(codes, start=1)}
        if answer_format == AnswerFormat.ARROW:
            levels = self.thresholds.levels(probabilities)
            return decisions_as_arrow(self.model_tag, probabilities, levels, columns)
        answer = {**self.bulk_decisions(probabilities)}
        answer.update((name, column.tolist()) for name, column in columns.items())
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def explain_json(self, body: bytes) -> bytes:
        applicant = _validate(Applicant, body)
        values = applicant.__dict__
        (row,) = await self._explain(self.encoder.encode_one(values))
        return orjson.dumps(self._explained(values, row))

    async def explain_batch_json(self, body: bytes) -> bytes:
        rows = self._rows_of(_validate(ApplicantBatch, body).root)
        explained = await self._explain(self.encoder.encode_rows(rows))
        return orjson.dumps(
            [self._explained(v, row) for v, row in zip(rows, explained, strict=True)]
        )

    def _rows_of(self, applicants: Sequence[Applicant]) -> list[dict[str, Any]]:
        if len(applicants) > self.limits.max_batch_items:
            raise too_large("array", len(applicants), self.limits.max_batch_items, "applicants")
        return [applicant.__dict__ for applicant in applicants]

    def _explained(self, values: dict[str, Any], row: npt.NDArray[np.float32]) -> dict[str, Any]:
        """One explained decision: row = (probability, one contribution per form field)."""
        explaining = self._explaining()
        probability, contributions = float(row[0]), row[1:]
        answer = self.decision(probability)
        answer["bias"] = explaining.bias
        answer["contributions"] = dict(zip(FIELDS, contributions.tolist(), strict=True))
        reasons = []
        if answer["status"] != "APPROVED":
            top = explaining.coder.top_reasons(contributions, values, explaining.top_n)
            reasons = [reason.as_dict() for reason in top]
        answer["reasons"] = reasons
        return answer

    def _explaining(self) -> Explaining:
        if self.explaining is None:
            raise RequestError(
                501,
                f"model {self.model_tag} was exported without training distributions, so it "
                "cannot give reasons; export it again (python -m export) to explain decisions",
            )
        return self.explaining

    def _bulk_columns(self, body: bytes, body_format: BodyFormat) -> BulkColumns | dict[str, Any]:
        max_rows = self.limits.max_bulk_rows
        if body_format == BodyFormat.CSV:
            return parse_applicant_csv(body, max_rows)
        if body_format in (BodyFormat.ARROW_STREAM, BodyFormat.ARROW_FILE):
            return parse_applicant_arrow(body, body_format == BodyFormat.ARROW_FILE, max_rows)
        return self.checked_columns(_validate(ApplicantColumns, body))

    def checked_columns(self, columns: ApplicantColumns) -> dict[str, Any]:
        """Equal lengths and the row limit; the values were validated by Pydantic."""
        values = columns.__dict__
        lengths = {name: len(column) for name, column in values.items()}
        n_rows = max(lengths.values())
        if n_rows > self.limits.max_bulk_rows:
            raise too_large("bulk input", n_rows, self.limits.max_bulk_rows, "rows")
        short = {name: n for name, n in lengths.items() if n != n_rows}
        if short:
            details = [
                {"location": name, "message": f"has {n} values but other fields have {n_rows}"}
                for name, n in short.items()
            ]
            raise RequestError(422, f"{details[0]['location']}: {details[0]['message']}", details)
        return values

    # -- model calls ------------------------------------------------------------------------
    async def _predict(self, features: FeatureMatrix) -> Probabilities:
        try:
            probabilities = await self._predict_rows(features)
        except OverloadedError as error:
            raise overloaded(str(error)) from error
        if self.monitor is not None:
            self.monitor.observe(features, probabilities)
        return probabilities

    async def _explain(self, features: FeatureMatrix) -> npt.NDArray[np.float32]:
        explaining = self._explaining()
        try:
            rows = await explaining.explain_rows(features)
        except OverloadedError as error:
            raise overloaded(str(error)) from error
        if self.monitor is not None:
            self.monitor.observe(features, rows[:, 0])
        return rows

    async def _predict_bulk(
        self, features: FeatureMatrix, reasons: int
    ) -> tuple[Probabilities, list[npt.NDArray[np.object_]]]:
        """Off the event loop, so single requests keep being served while a bulk job runs."""
        loop = asyncio.get_running_loop()
        probabilities, codes = await loop.run_in_executor(
            self._bulk_executor, self._score_bulk, features, reasons
        )
        if self.monitor is not None:
            self.monitor.observe(features, probabilities)
        return probabilities, codes

    def _score_bulk(
        self, features: FeatureMatrix, reasons: int
    ) -> tuple[Probabilities, list[npt.NDArray[np.object_]]]:
        """Runs on the bulk thread: probabilities, and the rank-1..`reasons` reason codes of
        MAYBE and DECLINED rows (None elsewhere)."""
        probabilities = self._bulk.predict(features)
        if not reasons or len(features) == 0:
            return probabilities, []
        explaining = self._explaining()
        codes = [np.empty(len(features), dtype=object) for _ in range(reasons)]
        chunk = self._bulk.chunk_rows
        for start in range(0, len(features), chunk):
            rows = features[start : start + chunk]
            contributions = explaining.explainer.contributions(rows).contributions
            ranked = explaining.matrix_coder.reason_codes(contributions, rows, reasons)
            for column, part in zip(codes, ranked, strict=False):
                column[start : start + len(rows)] = part
        approved = self.thresholds.levels(probabilities) == 0
        for column in codes:
            column[approved] = None
        return probabilities, codes

    def close(self) -> None:
        self._bulk_executor.shutdown(wait=True)


def _validate(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise from_validation_error(error) from error
