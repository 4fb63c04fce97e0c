"""The BentoML service: typed endpoints, health/readiness, metrics, OpenAPI docs.

`bentoml serve service.app:CreditRiskService` (or `bentoml serve` with bentofile.yaml).

Over HTTP every scoring route is answered by the front door (service/http/), which stands in
front of BentoML's app in each worker; the typed `@bentoml.api` methods below describe those
routes for the OpenAPI document, Swagger and BentoML's clients, and answer in-process callers
through the same scorer.
"""

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import bentoml
import numpy as np
import orjson
from bentoml._internal.context import server_context

from runners.batcher import OverloadedError
from runners.device import DeviceUnavailableError
from runners.model_store import ModelLoadError
from service import bentoml_fixes, logs
from service.errors import RequestError
from service.http.api_keys import KeyFileError
from service.schemas import (
    Applicant,
    ApplicantBatch,
    ApplicantColumns,
    BulkDecisions,
    Decision,
    Explanation,
)
from service.settings import get_settings
from service.wiring import (
    build_front_door,
    build_worker,
    build_worker_app,
    limit_blas_threads,
    load_api_keys,
    load_engines,
)

logger = logging.getLogger("credit_risk")
settings = get_settings()
logs.install()  # every log line of this process: its request's id, no exception messages


def _refuse_to_start(reason: object) -> None:
    print(f"credit-risk: cannot serve: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def _preflight() -> None:
    """Check once, before any worker starts, what would otherwise make workers restart forever
    behind a readiness probe that never turns green: the BentoML version this server's patches
    were tested with, and the configured models (a missing tag, a corrupt or mismatched ONNX
    file, a failed parity record). One clear line, exit code 2."""
    try:
        bentoml_fixes.check_version()
    except bentoml_fixes.UntestedVersionError as error:
        _refuse_to_start(error)
    try:
        load_api_keys(settings)
    except KeyFileError as error:
        _refuse_to_start(error)
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
        _refuse_to_start(error)


if server_context.worker_index is None:  # the `bentoml serve` parent, not a worker
    _preflight()
bentoml_fixes.apply()
bentoml_fixes.listen_per_worker(settings.reuse_port)
bentoml_fixes.extend_worker_startup(settings.accept_interval_ms / 1000, settings.coalesce_writes)
front_door = build_front_door(settings)  # one per process; opened when the worker's models load
worker_app = build_worker_app(front_door, settings)  # request ids and API keys around the door


class BadRequest(bentoml.exceptions.BentoMLException):
    """A RequestError raised on an in-process call of a typed method, with its HTTP status."""

    def __init__(self, error: RequestError) -> None:
        from http import HTTPStatus

        super().__init__(str(error))
        self.error_code = HTTPStatus(error.status)


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
        self.blas_cap = limit_blas_threads(settings.model_threads)
        self.worker = build_worker(
            settings, self._remote_predict if settings.batching == "bentoml" else None
        )
        self.scorer = self.worker.scorer
        worker_app.open(self.worker, bentoml_openapi=_bentoml_openapi())
        front_door.drain.install(asyncio.get_running_loop())  # this runs in the main thread
        logs.install_loop_handler(asyncio.get_running_loop())
        logger.warning(
            "serving %s: engine=%s device=%s batching=%s",
            self.scorer.model_tag,
            self.worker.runner.engine,
            self.worker.runner.device,
            settings.batching,
        )
        # Start-up objects live forever: keep them out of every later GC pass, and collect
        # less often (Python's default thresholds make GC pauses the p99 tail: RELIABILITY.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*settings.gc_thresholds)

    @bentoml.on_shutdown
    async def close(self) -> None:
        """After the last request: write the metrics still buffered, free the engines' threads."""
        self.worker.metrics.flush()
        self.scorer.close()
        if self.worker.batcher is not None:
            await self.worker.batcher.close()

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
            logger.warning("model service call failed: %s", type(error).__name__)
            raise OverloadedError(f"model service unavailable: {type(error).__name__}") from error

    async def __is_ready__(self) -> bool:
        """False from SIGTERM on, so balancers stop sending while the worker drains."""
        return front_door.ready

    @bentoml.api(route="/classify", input_spec=Applicant, output_spec=Decision)
    async def classify(self, **fields: Any) -> Decision:
        """Score one applicant (the body is the applicant object itself)."""
        probabilities = await self._score([Applicant.model_construct(**fields)])
        return Decision(**self.scorer.decision(float(probabilities[0])))

    @bentoml.api(route="/classify_batch")
    async def classify_batch(self, applicants: ApplicantBatch, /) -> list[Decision]:
        """Score a bare JSON array of applicants; decisions come back in the same order.
        (Positional-only: BentoML's clients send the list itself as the body.)"""
        probabilities = await self._score(_applicants(applicants))
        return [Decision(**self.scorer.decision(p)) for p in probabilities.tolist()]

    @bentoml.api(route="/explain", input_spec=Applicant, output_spec=Explanation)
    async def explain(self, **fields: Any) -> Explanation:
        """Score one applicant and say why: each form field's contribution to the log-odds of
        default, and for MAYBE and DECLINED the principal reasons, largest first."""
        body = Applicant.model_construct(**fields).model_dump_json().encode()
        return Explanation.model_validate_json(await self._call(self.scorer.explain_json, body))

    @bentoml.api(route="/explain_batch")
    async def explain_batch(self, applicants: ApplicantBatch, /) -> list[Explanation]:
        """/explain for a bare JSON array of applicants, in the same order."""
        body = orjson.dumps([a.model_dump() for a in _applicants(applicants)])
        answer = orjson.loads(await self._call(self.scorer.explain_batch_json, body))
        return [Explanation.model_validate(item) for item in answer]

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

    @staticmethod
    async def _call(handler: Callable[[bytes], Awaitable[bytes]], body: bytes) -> bytes:
        try:
            return await handler(body)
        except RequestError as error:
            raise BadRequest(error) from error


def _bentoml_openapi() -> dict[str, Any]:
    """The document BentoML generates from the typed methods (service/openapi.py completes it)."""
    service: Any = CreditRiskService  # the decorator made the class a bentoml Service
    return dict(service.openapi_spec.asdict())


def _applicants(batch: ApplicantBatch | list[Applicant]) -> list[Applicant]:
    """A root input arrives as the model or as its list, depending on the caller."""
    return batch.root if isinstance(batch, ApplicantBatch) else list(batch)


bentoml_fixes.serve_behind(CreditRiskService, worker_app.wrap)
