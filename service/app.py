"""The BentoML service: typed endpoints, health/readiness, metrics, OpenAPI docs.

`bentoml serve service.app:CreditRiskService` (or `bentoml serve` with bentofile.yaml).
"""

import asyncio
import gc
import logging
import os
import sys
from typing import Any

import bentoml
import numpy as np
from bentoml._internal.context import server_context

from runners.batcher import OverloadedError
from runners.device import DeviceUnavailableError
from runners.model_store import ModelLoadError
from service import bentoml_fixes
from service.errors import RequestError
from service.lean_routes import LeanRoutesMiddleware, ScorerHolder
from service.schemas import Applicant, ApplicantBatch, ApplicantColumns, BulkDecisions, Decision
from service.settings import get_settings
from service.wiring import build_worker, load_engines

logger = logging.getLogger("credit_risk")
settings = get_settings()
bentoml_fixes.apply()


def _preflight() -> None:
    """Load the configured models once before any worker starts: a missing tag, a corrupt or
    mismatched ONNX file or a failed parity record stops `bentoml serve` with one clear line
    instead of workers restarting forever behind a readiness probe that never turns green."""
    cores = os.cpu_count() or 1
    if settings.workers * settings.model_threads > cores:
        logger.warning(
            "workers (%d) x model threads (%d) exceeds the %d cores: expect contention",
            settings.workers,
            settings.model_threads,
            cores,
        )
    try:
        load_engines(settings)
    except (ModelLoadError, DeviceUnavailableError) as error:
        print(f"credit-risk: cannot serve: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if server_context.worker_index is None:  # the `bentoml serve` parent, not a worker
    _preflight()


class BadRequest(bentoml.exceptions.BentoMLException):
    """A RequestError raised on the typed BentoML path, carrying its HTTP status."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error_code = _status(error.status)


def _status(code: int) -> Any:
    from http import HTTPStatus

    return HTTPStatus(code)


@bentoml.service(
    name="credit_risk_model",
    workers=1,
    traffic={"timeout": settings.request_timeout_s},
    logging={"access": {"enabled": settings.access_log}},
)
class CreditRiskModel:
    """The model behind BentoML's own batchable API (used when batching=bentoml)."""

    def __init__(self) -> None:
        runner, _ = load_engines(settings)
        self.runner = runner

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_rows,
        max_latency_ms=settings.bentoml_max_latency_ms,
    )
    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.runner.predict(np.ascontiguousarray(features, dtype=np.float32))


@bentoml.service(
    name="credit_risk",
    workers=settings.workers,
    traffic={"timeout": settings.request_timeout_s, "max_concurrency": settings.max_concurrency},
    logging={"access": {"enabled": settings.access_log}},
    tracing={"excluded_urls": settings.tracing_excluded_urls},
)
class CreditRiskService:
    """Credit decisions: APPROVED / MAYBE / DECLINED with the probability of default."""

    if settings.batching == "bentoml":
        model_service = bentoml.depends(CreditRiskModel)

    def __init__(self) -> None:
        self.worker = build_worker(
            settings, self._remote_predict if settings.batching == "bentoml" else None
        )
        self.scorer = self.worker.scorer
        ScorerHolder.scorer = self.scorer
        ScorerHolder.batcher = self.worker.batcher
        ScorerHolder.info = self.worker.info()
        logger.warning(
            "serving %s: engine=%s device=%s batching=%s lean_routes=%s",
            self.scorer.model_tag,
            self.worker.runner.engine,
            self.worker.runner.device,
            settings.batching,
            settings.lean_routes,
        )
        # Start-up objects live forever: keep them out of every later GC pass, and collect
        # less often: with Python's default thresholds, GC pauses were the whole p99 tail
        # (wrk, 64 connections, 1 worker: p99 76 ms with defaults, 16 ms with these).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*settings.gc_thresholds)

    async def _remote_predict(self, features: np.ndarray) -> np.ndarray:
        """One call through BentoML's dispatcher in the model service (endpoints resolve late)."""
        deadline_s = settings.model_service_timeout_s
        try:
            return await asyncio.wait_for(self.model_service.to_async.predict(features), deadline_s)
        except TimeoutError as error:
            raise OverloadedError(f"model service did not answer within {deadline_s}s") from error
        except bentoml.exceptions.ServiceUnavailable as error:  # its dispatcher shed the load
            raise OverloadedError(f"model service overloaded: {error}") from error
        except Exception as error:  # any other failure of the dependency: unavailable, not 500
            logger.warning("model service call failed: %r", error)
            raise OverloadedError(f"model service unavailable: {type(error).__name__}") from error

    def __is_ready__(self) -> bool:
        return ScorerHolder.scorer is self.scorer

    @bentoml.api(route="/classify", input_spec=Applicant, output_spec=Decision)
    async def classify(self, **fields: Any) -> Decision:
        """Score one applicant (the body is the applicant object itself)."""
        applicant = Applicant.model_construct(**fields)
        probabilities = await self._score([applicant])
        return Decision(**self.scorer.decision(float(probabilities[0])))

    @bentoml.api(route="/classify_batch", input_spec=ApplicantBatch)
    async def classify_batch(self, root: list[Applicant]) -> list[Decision]:
        """Score a bare JSON array of applicants; decisions come back in the same order."""
        probabilities = await self._score(root)
        return [Decision(**self.scorer.decision(p)) for p in probabilities.tolist()]

    @bentoml.api(route="/classify_bulk", input_spec=ApplicantColumns, output_spec=BulkDecisions)
    async def classify_bulk(self, **columns: Any) -> BulkDecisions:
        """Bulk scoring, column-wise: one array per field, row i is applicant i. The same
        route also takes `text/csv` (a header with the 13 field names, one applicant per row)
        and Apache Arrow IPC (`application/vnd.apache.arrow.stream` or `.file`: one column
        per field, numbers as integer or float columns, categories as plain or
        dictionary-encoded strings), the fastest body for large arrays."""
        try:
            values = self.scorer.checked_columns(ApplicantColumns.model_construct(**columns))
            probabilities = await self.scorer.score_columns(values)
        except RequestError as error:
            raise BadRequest(error) from error
        decisions = self.scorer.bulk_decisions(probabilities)
        return BulkDecisions(
            model=decisions["model"],
            probability=decisions["probability"].tolist(),
            status=decisions["status"],
        )

    async def _score(self, applicants: list[Applicant]) -> np.ndarray:
        try:
            return await self.scorer.score_applicants(applicants)
        except RequestError as error:
            raise BadRequest(error) from error


CreditRiskService.add_asgi_middleware(  # type: ignore[attr-defined]
    LeanRoutesMiddleware,
    enabled=settings.lean_routes,
    max_bulk_bytes_in_flight=settings.max_bulk_bytes_in_flight,
)
