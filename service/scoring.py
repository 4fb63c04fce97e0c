"""The data plane: bytes in -> validate -> encode -> model -> decisions -> bytes. No HTTP here.

The front door (service/http/) maps routes and content types onto these calls and their
`RequestError`s onto responses; the typed `@bentoml.api` methods call the same scorer.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from features.encoder import FeatureEncoder
from runners.base import FeatureMatrix, Probabilities
from runners.batcher import OverloadedError
from runners.bulk import ChunkedPredictor
from service.arrow_io import decisions_as_arrow, parse_applicant_arrow
from service.column_checks import BulkColumns
from service.csv_input import parse_applicant_csv
from service.decisions import Thresholds
from service.errors import RequestError, from_validation_error, overloaded, too_large
from service.schemas import Applicant, ApplicantBatch, ApplicantColumns

RowPredictor = Callable[[FeatureMatrix], Awaitable[Probabilities]]
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
    ) -> None:
        self.model_tag = model_tag
        self.encoder = encoder
        self.thresholds = thresholds
        self.limits = limits
        self._predict_rows = predict_rows
        self._bulk = bulk
        self._bulk_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk")

    # -- typed entry points --------------------------------------------------------------
    async def score_applicants(self, applicants: Sequence[Applicant]) -> Probabilities:
        if len(applicants) > self.limits.max_batch_items:
            raise too_large("array", len(applicants), self.limits.max_batch_items, "applicants")
        rows = [applicant.__dict__ for applicant in applicants]
        return await self._predict(self.encoder.encode_rows(rows))

    async def score_columns(self, columns: BulkColumns | dict[str, Any]) -> Probabilities:
        return await self._predict_bulk(self.encoder.encode_columns(columns))

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

    # -- raw-body entry points (the lean routes) -----------------------------------------
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
    ) -> bytes:
        """A bulk body -> the decisions, as column-wise JSON or as an Arrow IPC stream."""
        probabilities = await self.score_columns(self._bulk_columns(body, body_format))
        if answer_format == AnswerFormat.ARROW:
            levels = self.thresholds.levels(probabilities)
            return decisions_as_arrow(self.model_tag, probabilities, levels)
        return orjson.dumps(self.bulk_decisions(probabilities), option=orjson.OPT_SERIALIZE_NUMPY)

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
            return await self._predict_rows(features)
        except OverloadedError as error:
            raise overloaded(str(error)) from error

    async def _predict_bulk(self, features: FeatureMatrix) -> Probabilities:
        """Off the event loop, so single requests keep being served while a bulk job runs."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._bulk_executor, self._bulk.predict, features)

    def close(self) -> None:
        self._bulk_executor.shutdown(wait=True)


def _validate(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise from_validation_error(error) from error
