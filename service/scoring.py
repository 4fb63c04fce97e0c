"""The data plane: bytes in -> validate -> encode -> model -> decisions -> bytes. No HTTP here.

The front door (service/http/) maps routes, content types and query strings onto these calls
and their `RequestError`s onto responses; the typed `@bentoml.api` methods and the Open
Inference Protocol (service/v2.py) call the same scorer.
"""

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from features.columns import ApplicantColumns as ReadColumns
from features.encoder import FeatureEncoder
from features.reasons import MatrixReasonCoder, ReasonCoder
from features.schema import FIELDS
from features.thresholds import INVALID_LEVEL, ROW_STATUSES, STATUSES, Thresholds
from features.validation import InvalidRows
from runners.base import FeatureMatrix, Probabilities
from runners.batcher import OverloadedError
from runners.bulk import ChunkedPredictor
from runners.explainer import Explainer
from service.arrow_io import decisions_as_arrow, parse_applicant_arrow
from service.canary import canary_rows, challenger_answers, share_limit
from service.column_checks import verdicts
from service.csv_input import parse_applicant_csv
from service.errors import RequestError, from_validation_error, overloaded, too_large
from service.json_input import parse_applicant_json
from service.logs import REQUEST_ID
from service.metrics import ChallengerMetrics
from service.monitoring import DecisionMonitor
from service.records.context import CLIENT, ROUTE
from service.records.recorder import DecisionRecorder
from service.records.schema import Challenger, DecisionBatch, FieldValues
from service.schemas import Applicant, ApplicantBatch
from service.shadow import ShadowQueue, ShadowRows

RowPredictor = Callable[[FeatureMatrix], Awaitable[npt.NDArray[np.float32]]]
# Where scored rows sit in their request (records' row_index) when that is not 0, 1, 2, ...:
# a canary's groups, or a bulk input's valid rows among invalid ones.
Positions = npt.NDArray[np.intp] | None
M = TypeVar("M", bound=BaseModel)
ROW_STATUS_ARRAY = np.array(ROW_STATUSES, dtype=object)
ROW_MODEL = "row_model"  # a bulk answer's column: the model that decided each row (canary)


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
class BulkScores:
    """A bulk input's answer, row i for input row i. With per-row verdicts, an invalid row has
    a NaN probability (null in the answer), level INVALID_LEVEL, no reasons and an error."""

    probabilities: Probabilities
    levels: npt.NDArray[np.int8]  # positions in features.thresholds.ROW_STATUSES
    reasons: list[npt.NDArray[np.object_]]  # reason_1 ... reason_N (None: no reason)
    invalid: InvalidRows | None  # None: every row was scored
    per_row: bool = False  # the caller asked for per-row verdicts (the answer has `error`)
    # With a canary split: the tag of the model that decided each row (None: not scored);
    # None when one model decided every row.
    model_tags: npt.NDArray[np.object_] | None = None

    def errors(self) -> list[str | None]:
        """One entry per row: the error of an invalid row, None for a scored one."""
        if self.invalid is None:
            return [None] * len(self.probabilities)
        errors = np.full(len(self.probabilities), None, dtype=object)
        errors[self.invalid.rows] = self.invalid.errors
        return errors.tolist()

    def error_column(self) -> pa.Array:
        """`errors()` as an Arrow string column (all null, without a Python list, when every
        row was scored)."""
        if self.invalid is None:
            return pa.nulls(len(self.probabilities), pa.string())
        return pa.array(self.errors(), pa.string())


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
    refusal_reason: Callable[[], str | None] | None = None  # the explanation batcher's queue bound


@dataclass(frozen=True)
class ServedModel:
    """One model and everything that scores with it. A request reads the scorer's current one
    once and keeps it to its end, so a switch (service/model_switch.py) never mixes two models
    in one answer and requests in progress finish on the model they started with."""

    model_tag: str
    predict_rows: RowPredictor
    bulk: ChunkedPredictor
    monitor: DecisionMonitor | None = None
    explaining: Explaining | None = None
    # Requests that may share the batcher (V2) do below this many rows: there bulk scoring
    # would use the batcher's own engine, so the answers are the same (0: never).
    batched_below_rows: int = 0


@dataclass(frozen=True)
class ServedModels:
    """What a scorer serves: the champion, and a challenger that answers the applicants of the
    canary fraction (service/canary.py; 0: the champion answers everyone)."""

    champion: ServedModel
    challenger: ServedModel | None = None
    canary_fraction: float = 0.0
    shadow: bool = False  # the challenger also scores every applicant, off the response path
    # canary_fraction as `challenger_answers` compares it (service/canary.py: share_limit)
    canary_limit: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canary_limit", share_limit(self.canary_fraction))

    @property
    def shadowed(self) -> ServedModel | None:
        """The challenger when it shadows the champion."""
        return self.challenger if self.shadow else None

    def canary_rows(self, features: FeatureMatrix) -> npt.NDArray[np.bool_] | None:
        """The rows the challenger answers (`route` as a mask); None when the champion answers
        them all."""
        route = self.route(features)
        if route is self.champion:
            return None
        if isinstance(route, ServedModel):  # the challenger answers every row
            return np.ones(len(features), dtype=np.bool_)
        return route

    def route(self, features: FeatureMatrix) -> "ServedModel | npt.NDArray[np.bool_]":
        """The model that answers every row, or (rows split) the rows the challenger answers.
        A single applicant, every request's common case, is routed without arrays."""
        challenger = self.challenger
        if challenger is None or self.canary_fraction <= 0.0 or len(features) == 0:
            return self.champion
        if len(features) == 1:
            answered = challenger_answers(features, self.canary_limit)
            return challenger if answered else self.champion
        rows = canary_rows(features, self.canary_fraction)
        if rows.all():
            return challenger
        return rows if rows.any() else self.champion


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
        batched_below_rows: int = 0,
        recorder: DecisionRecorder | None = None,
    ) -> None:
        self.encoder = encoder
        self.thresholds = thresholds
        self.limits = limits
        self.recorder = recorder  # decision records (service/records/): None when off
        self.models = ServedModels(
            ServedModel(model_tag, predict_rows, bulk, monitor, explaining, batched_below_rows)
        )
        self._bulk_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk")
        # Shadow mode: the challenger's work, bounded and dropped first (see `_shadow`).
        self.challenger_metrics: ChallengerMetrics | None = None
        self.shadow_max_rows = limits.max_bulk_rows
        self.shadow_pressure: Callable[[], bool] = lambda: False  # True: shed shadow work
        self._shadow_queue = ShadowQueue[ServedModel](self._settle_shadow, limits.max_batch_items)

    def switch(self, models: ServedModels) -> ServedModels:
        """Serve `models` from the next request on (one reference assignment: atomic for the
        event loop); returns the models they replace, still used by requests in progress."""
        previous, self.models = self.models, models
        return previous

    @property
    def served(self) -> ServedModel:
        """The champion."""
        return self.models.champion

    @property
    def model_tag(self) -> str:
        return self.served.model_tag

    @property
    def explaining(self) -> Explaining | None:
        return self.served.explaining

    @property
    def monitor(self) -> DecisionMonitor | None:
        return self.served.monitor

    def decision(self, probability: float, model_tag: str) -> dict[str, Any]:
        return {
            "status": self.thresholds.status(probability),
            "probability": probability,
            "model": model_tag,
        }

    # -- raw-body entry points (the front door's routes) ---------------------------------
    async def classify_json(self, body: bytes) -> bytes:
        applicant = _validate(Applicant, body)
        values = applicant.__dict__
        features = self.encoder.encode_one(values)
        probabilities, tags = await self._split(self._predict, features, [values])
        return orjson.dumps(self.decision(float(probabilities[0]), tags[0].model_tag))

    async def classify_batch_json(self, body: bytes) -> bytes:
        rows = self._rows_of(_validate(ApplicantBatch, body).root)
        probabilities, tags = await self._split(self._predict, self.encoder.encode_rows(rows), rows)
        return orjson.dumps(
            [
                self.decision(p, served.model_tag)
                for p, served in zip(probabilities.tolist(), tags, strict=True)
            ]
        )

    async def classify_bulk(
        self,
        body: bytes,
        body_format: BodyFormat = BodyFormat.JSON,
        answer_format: AnswerFormat = AnswerFormat.JSON,
        reasons: int = 0,
        per_row: bool = False,
    ) -> bytes:
        """A bulk body -> the decisions, as column-wise JSON or as an Arrow IPC stream, with
        `reasons` reason-code columns (reason_1 ... for MAYBE and DECLINED rows). An invalid
        cell refuses the whole request (422), or with `per_row` makes its row INVALID, with
        an `error` column (null for scored rows)."""
        models = self.models
        served = models.champion
        if reasons:
            for model in (models.champion, models.challenger):
                if model is not None:  # refuse before parsing when a model cannot explain
                    _explaining(model)
        columns = self._bulk_columns(body, body_format)
        scores = await self._score_columns(models, columns, per_row, reasons, batched=False)
        extra: dict[str, Any] = {
            f"reason_{rank}": column for rank, column in enumerate(scores.reasons, start=1)
        }
        if per_row:
            is_arrow = answer_format == AnswerFormat.ARROW
            extra["error"] = scores.error_column() if is_arrow else scores.errors()
        if scores.model_tags is not None:  # a canary split: the model that decided each row
            extra[ROW_MODEL] = scores.model_tags
        if answer_format == AnswerFormat.ARROW:
            mask = None if scores.invalid is None else scores.invalid.mask
            return decisions_as_arrow(
                served.model_tag, scores.probabilities, scores.levels, extra, invalid=mask
            )
        answer: dict[str, Any] = {
            "model": served.model_tag,  # the champion; a canary split adds ROW_MODEL
            "probability": scores.probabilities,  # orjson writes NaN (an invalid row) as null
            "status": ROW_STATUS_ARRAY[scores.levels].tolist(),
        }
        answer.update(
            (name, column.tolist() if isinstance(column, np.ndarray) else column)
            for name, column in extra.items()
        )
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def score_bulk(
        self,
        columns: ReadColumns,
        *,
        per_row: bool = False,
        reasons: int = 0,
        batched: bool = False,
    ) -> BulkScores:
        """Read columns -> checked (a 422, or per-row verdicts) -> scored. `batched`: fewer
        rows than `batched_below_rows` go through the batcher (the Open Inference Protocol)."""
        return await self._score_columns(self.models, columns, per_row, reasons, batched)

    async def _score_columns(
        self,
        models: ServedModels,
        columns: ReadColumns,
        per_row: bool,
        reasons: int,
        batched: bool,
    ) -> BulkScores:
        invalid = verdicts(columns, per_row)
        fields = columns.for_encoder() if invalid is None else columns.rows(~invalid.mask)
        features = self.encoder.encode_columns(fields)
        codes: list[npt.NDArray[np.object_]]
        canary = models.canary_rows(features)
        tags: npt.NDArray[np.object_] | None = None
        # The scored rows' places in the input (None: all of them, in order): records' row_index.
        positions = None if invalid is None else np.flatnonzero(~invalid.mask)
        if len(features) == 0:  # every row was invalid
            probabilities = np.empty(0, dtype=np.float32)
            codes = [np.empty(0, dtype=object) for _ in range(reasons)]
        elif canary is None or models.challenger is None:
            shadowed = models.shadowed
            probabilities, codes = await self._score_rows(
                models.champion, features, fields, reasons, batched, shadowed is None, positions
            )
            if shadowed is not None:
                self._shadow(models.champion, shadowed, features, fields, probabilities, positions)
        else:
            # Row by row as the canary splits them: each group scored (and recorded) by its
            # model, with its own fields (the valid rows of the group, in order).
            probabilities = np.empty(len(features), dtype=np.float32)
            codes = [np.full(len(features), None, dtype=object) for _ in range(reasons)]
            tags = np.empty(len(features), dtype=object)
            for served, in_group in ((models.challenger, canary), (models.champion, ~canary)):
                at = np.flatnonzero(in_group)
                if not len(at):
                    continue
                places = at if positions is None else positions[at]
                keep = np.zeros(columns.n_rows, dtype=np.bool_)
                keep[places] = True
                part, part_codes = await self._score_rows(
                    served, features[at], columns.rows(keep), reasons, batched, True, places
                )
                probabilities[at] = part
                for column, part_column in zip(codes, part_codes, strict=True):
                    column[at] = part_column
                tags[at] = served.model_tag
        levels = self.thresholds.levels(probabilities)
        if invalid is None:
            return BulkScores(probabilities, levels, codes, None, per_row, tags)
        valid = ~invalid.mask
        all_probabilities = np.full(columns.n_rows, np.nan, dtype=np.float32)
        all_probabilities[valid] = probabilities
        all_levels = np.full(columns.n_rows, INVALID_LEVEL, dtype=np.int8)
        all_levels[valid] = levels
        all_codes = []
        for column in codes:
            full = np.full(columns.n_rows, None, dtype=object)
            full[valid] = column
            all_codes.append(full)
        all_tags = None
        if tags is not None:
            all_tags = np.full(columns.n_rows, None, dtype=object)
            all_tags[valid] = tags
        return BulkScores(all_probabilities, all_levels, all_codes, invalid, per_row, all_tags)

    async def _score_rows(
        self,
        served: ServedModel,
        features: FeatureMatrix,
        fields: FieldValues,
        reasons: int,
        batched: bool,
        record: bool = True,
        positions: Positions = None,
    ) -> tuple[Probabilities, list[npt.NDArray[np.object_]]]:
        """Batched (V2, few rows, no reasons) or on the bulk thread."""
        if batched and not reasons and len(features) < served.batched_below_rows:
            return await self._predict(served, features, fields, record, positions), []
        return await self._predict_bulk(served, features, reasons, fields, record, positions)

    # -- shadow mode ------------------------------------------------------------------------
    def _shadow(
        self,
        champion: ServedModel,
        challenger: ServedModel,
        features: FeatureMatrix,
        fields: FieldValues,
        probabilities: Probabilities,
        positions: Positions = None,
    ) -> None:
        """The challenger scores the applicants the champion just answered, merged with other
        requests' and after the answer is sent (service/shadow.py). Dropped, and counted, while
        the front door sheds load or `shadow_max_rows` shadow rows are in flight: shadow work is
        the first to go. The champion's decisions are recorded once the challenger's are known
        (or dropped)."""
        rows = len(features)
        if rows == 0:
            return
        queue = self._shadow_queue
        if self.shadow_pressure() or queue.rows_in_flight + rows > self.shadow_max_rows:
            if self.challenger_metrics is not None:
                self.challenger_metrics.dropped(rows)
            self._record(champion, fields, features, probabilities, positions=positions)
            return
        # Records are written in the pass, outside this request: they keep its context.
        context = contextvars.copy_context() if self.recorder is not None else None
        queue.submit(
            ShadowRows(champion, challenger, features, fields, probabilities, context, positions)
        )

    def _settle_shadow(
        self, parts: Sequence[ShadowRows[ServedModel]], shadow: Probabilities | None
    ) -> None:
        """A shadow pass's outcome, for all its requests at once: the decision matrix and the
        delta histogram, then each request's records (with the challenger's columns)."""
        metrics = self.challenger_metrics
        if shadow is None:
            if metrics is not None:
                metrics.dropped(sum(len(part.features) for part in parts))
            for part in parts:
                self._record_shadowed(part, None)
            return
        champion = (
            parts[0].probabilities
            if len(parts) == 1
            else np.concatenate([part.probabilities for part in parts])
        )
        challenger_levels = self.thresholds.levels(shadow)
        if metrics is not None:
            metrics.observe(self.thresholds.levels(champion), challenger_levels, shadow - champion)
        if self.recorder is None:
            return
        statuses = STATUSES[challenger_levels]
        start = 0
        for part in parts:
            stop = start + len(part.features)
            tag = part.challenger.model_tag
            verdict = Challenger(tag, shadow[start:stop], statuses[start:stop].tolist())
            self._record_shadowed(part, verdict)
            start = stop

    def _record_shadowed(self, part: ShadowRows[ServedModel], verdict: Challenger | None) -> None:
        """The champion's records of one shadowed request, in the request's context."""
        if part.context is None:  # no recorder when it was queued
            return
        part.context.run(
            self._record,
            part.champion,
            part.fields,
            part.features,
            part.probabilities,
            verdict,
            part.positions,
        )

    async def finish_shadow(self) -> None:
        """Wait for the shadow work in flight (before the recorder closes)."""
        await self._shadow_queue.finish()

    async def explain_json(self, body: bytes) -> bytes:
        applicant = _validate(Applicant, body)
        values = applicant.__dict__
        features = self.encoder.encode_one(values)
        explained, tags = await self._split(self._explain, features, [values])
        return orjson.dumps(self._explained(tags[0], values, explained[0]))

    async def explain_batch_json(self, body: bytes) -> bytes:
        rows = self._rows_of(_validate(ApplicantBatch, body).root)
        explained, tags = await self._split(self._explain, self.encoder.encode_rows(rows), rows)
        return orjson.dumps(
            [
                self._explained(served, v, row)
                for v, row, served in zip(rows, explained, tags, strict=True)
            ]
        )

    async def _split(
        self,
        call: Callable[
            [ServedModel, FeatureMatrix, FieldValues, bool, Positions],
            Awaitable[npt.NDArray[np.float32]],
        ],
        features: FeatureMatrix,
        rows: list[dict[str, Any]],
    ) -> tuple[npt.NDArray[np.float32], list[ServedModel]]:
        """`call` (a model call) on each row by the model that answers it (the canary split):
        the results in row order, and the model behind each."""
        models = self.models
        route = models.route(features)
        if isinstance(route, ServedModel):  # one model answers every row (no task, no gather)
            shadowed = models.shadowed if route is models.champion else None
            result = await call(route, features, rows, shadowed is None, None)
            if shadowed is not None:
                probabilities = result if result.ndim == 1 else np.ascontiguousarray(result[:, 0])
                self._shadow(route, shadowed, features, rows, probabilities)
            return result, [route] * len(rows)
        assert models.challenger is not None  # a split has one
        canary = route
        groups = [(models.challenger, np.flatnonzero(canary))]
        groups.append((models.champion, np.flatnonzero(~canary)))
        groups = [(served, at) for served, at in groups if len(at)]
        parts = await asyncio.gather(
            *(
                call(served, features[at], [rows[i] for i in at.tolist()], True, at)
                for served, at in groups
            )
        )
        result = np.empty((len(rows), *parts[0].shape[1:]), dtype=np.float32)
        by_row: list[ServedModel] = [models.champion] * len(rows)
        for (served, at), part in zip(groups, parts, strict=True):
            result[at] = part
            for i in at.tolist():
                by_row[i] = served
        return result, by_row

    def _rows_of(self, applicants: Sequence[Applicant]) -> list[dict[str, Any]]:
        if len(applicants) > self.limits.max_batch_items:
            raise too_large("array", len(applicants), self.limits.max_batch_items, "applicants")
        return [applicant.__dict__ for applicant in applicants]

    def _explained(
        self, served: ServedModel, values: dict[str, Any], row: npt.NDArray[np.float32]
    ) -> dict[str, Any]:
        """One explained decision: row = (probability, one contribution per form field)."""
        explaining = _explaining(served)
        probability, contributions = float(row[0]), row[1:]
        answer = self.decision(probability, served.model_tag)
        answer["bias"] = explaining.bias
        answer["contributions"] = dict(zip(FIELDS, contributions.tolist(), strict=True))
        reasons = []
        if answer["status"] != "APPROVED":
            top = explaining.coder.top_reasons(contributions, values, explaining.top_n)
            reasons = [reason.as_dict() for reason in top]
        answer["reasons"] = reasons
        return answer

    def _bulk_columns(self, body: bytes, body_format: BodyFormat) -> ReadColumns:
        max_rows = self.limits.max_bulk_rows
        if body_format == BodyFormat.CSV:
            return parse_applicant_csv(body, max_rows)
        if body_format in (BodyFormat.ARROW_STREAM, BodyFormat.ARROW_FILE):
            return parse_applicant_arrow(body, body_format == BodyFormat.ARROW_FILE, max_rows)
        return parse_applicant_json(body, max_rows)

    # -- model calls ------------------------------------------------------------------------
    # Every decision of every route comes out of one of these three calls, which record it
    # (`fields`: the scored applicants' form fields, as given) and refuse, before scoring,
    # while the decision log cannot keep records (its spool-full policy `refuse`).
    async def _predict(
        self,
        served: ServedModel,
        features: FeatureMatrix,
        fields: FieldValues,
        record: bool = True,
        positions: Positions = None,
    ) -> Probabilities:
        self._refuse_unrecorded()
        try:
            probabilities = await served.predict_rows(features)
        except OverloadedError as error:
            raise overloaded(str(error)) from error
        if served.monitor is not None:
            served.monitor.observe(features, probabilities)
        if record:
            self._record(served, fields, features, probabilities, positions=positions)
        return probabilities

    async def _explain(
        self,
        served: ServedModel,
        features: FeatureMatrix,
        fields: FieldValues,
        record: bool = True,
        positions: Positions = None,
    ) -> npt.NDArray[np.float32]:
        explaining = _explaining(served)
        self._refuse_unrecorded()
        try:
            rows = await explaining.explain_rows(features)
        except OverloadedError as error:
            raise overloaded(str(error)) from error
        if served.monitor is not None:
            served.monitor.observe(features, rows[:, 0])
        if record:
            probabilities = np.ascontiguousarray(rows[:, 0])
            self._record(served, fields, features, probabilities, positions=positions)
        return rows

    async def _predict_bulk(
        self,
        served: ServedModel,
        features: FeatureMatrix,
        reasons: int,
        fields: FieldValues,
        record: bool = True,
        positions: Positions = None,
    ) -> tuple[Probabilities, list[npt.NDArray[np.object_]]]:
        """Off the event loop, so single requests keep being served while a bulk job runs."""
        self._refuse_unrecorded()
        loop = asyncio.get_running_loop()
        probabilities, codes = await loop.run_in_executor(
            self._bulk_executor, self._score_bulk, served, features, reasons
        )
        if served.monitor is not None:
            served.monitor.observe(features, probabilities)
        if record:
            self._record(served, fields, features, probabilities, positions=positions)
        return probabilities, codes

    def _refuse_unrecorded(self) -> None:
        if self.recorder is not None:
            reason = self.recorder.refusal()
            if reason is not None:
                raise overloaded(reason)

    def _record(
        self,
        served: ServedModel,
        fields: FieldValues,
        features: FeatureMatrix,
        probabilities: Probabilities,
        challenger: Challenger | None = None,
        positions: Positions = None,
    ) -> None:
        """Hands the decisions to the recorder, which only enqueues them (`positions`: where
        the rows sit in their request, when not 0, 1, 2, ...)."""
        if self.recorder is None or len(probabilities) == 0:
            return
        if (
            len(probabilities) == 1
            and challenger is None
            and positions is None
            and type(fields) is list
        ):
            # One applicant (the /classify hot path): enqueued as plain values, no objects kept
            probability = float(probabilities[0])
            self.recorder.record_one(
                REQUEST_ID.get() or "-",
                ROUTE.get(),
                CLIENT.get(),
                served.model_tag,
                time.time(),
                probability,
                self.thresholds.status(probability),
                fields[0],
                features,
            )
            return
        # The status as the answer words it: row-wise routes per float, column-wise ones
        # vectorised (the two differ only for a float32 within rounding of a threshold).
        status: Sequence[str] | npt.NDArray[np.object_]
        if isinstance(fields, Mapping):
            status = STATUSES[self.thresholds.levels(probabilities)]
        else:
            status = [self.thresholds.status(p) for p in probabilities.tolist()]
        batch = DecisionBatch(
            REQUEST_ID.get() or "-",
            ROUTE.get(),
            CLIENT.get(),
            served.model_tag,
            time.time(),
            probabilities,
            status,
            fields,
            features,
            challenger,
            positions,
        )
        self.recorder.record(batch)

    def _score_bulk(
        self, served: ServedModel, features: FeatureMatrix, reasons: int
    ) -> tuple[Probabilities, list[npt.NDArray[np.object_]]]:
        """Runs on the bulk thread: probabilities, and the rank-1..`reasons` reason codes of
        MAYBE and DECLINED rows (None elsewhere)."""
        probabilities = served.bulk.predict(features)
        if not reasons or len(features) == 0:
            return probabilities, []
        explaining = _explaining(served)
        codes = [np.empty(len(features), dtype=object) for _ in range(reasons)]
        chunk = served.bulk.chunk_rows
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
        """After the last request: the bulk thread, then every decision record written."""
        self._bulk_executor.shutdown(wait=True)
        self._shadow_queue.close()
        if self.recorder is not None:
            self.recorder.close()


def _validate(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise from_validation_error(error) from error


def _explaining(served: ServedModel) -> Explaining:
    if served.explaining is None:
        raise RequestError(
            501,
            f"model {served.model_tag} was exported without training distributions, so it "
            "cannot give reasons; export it again (python -m export) to explain decisions",
        )
    return served.explaining
