"""The BentoML service: typed endpoints, health/readiness, metrics, OpenAPI docs.

`bentoml serve service.app:CreditRiskService` (or `bentoml serve` with bentofile.yaml).

Importing this module does nothing beyond definitions: reading `CreditRiskService` (or
`CreditRiskModel`) assembles the service once per process with `create_service(settings)`,
which installs the process-wide pieces (log records, BentoML's patches, the front door).

Over HTTP every route of the registry (service/registry.py) is answered by the front door
(service/http/), which stands in front of BentoML's app in each worker; the typed
`@bentoml.api` methods (service/typed_api.py) describe the scoring routes for BentoML's clients
and answer in-process callers through the same handlers.
"""

import asyncio
import gc
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import bentoml
import numpy as np
from bentoml._internal.context import server_context

from runners.batcher import OverloadedError
from runners.device import DeviceUnavailableError
from runners.model_store import ModelLoadError
from service import bentoml_fixes, log_format, logs
from service.http.api_keys import KeyFileError
from service.http.front_door import FrontDoor
from service.registry import ENDPOINTS
from service.settings import ServiceSettings, get_settings
from service.typed_api import typed_methods
from service.wiring import (
    WorkerApp,
    build_front_door,
    build_worker,
    build_worker_app,
    head_limits,
    keep_arrow_off_signals,
    limit_blas_threads,
    load_api_keys,
    load_engines,
    model_switch,
    route_context,
    use_arrow_memory_pool,
)

logger = logging.getLogger("credit_risk")
PUBLIC_BACKSTOP_S = 1.0  # BentoML's timeout past the door's, when BentoML stands in front


@dataclass(frozen=True)
class Services:
    service: Any  # the API service (a bentoml Service)
    model: Any  # the model service behind BentoML's batchable API (batching=bentoml)


def _refuse_to_start(reason: object) -> None:
    print(f"credit-risk: cannot serve: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def _preflight(settings: ServiceSettings) -> None:
    """Check once, before any worker starts, what would otherwise make workers restart forever
    behind a readiness probe that never turns green: the API key file and the configured models
    (a missing tag, a corrupt or mismatched ONNX file, a failed parity record). One clear line,
    exit code 2."""
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


def create_service(settings: ServiceSettings) -> Services:
    """Assemble this process's service from `settings`: its log records, BentoML's patches,
    one front door (opened when the worker's models load) behind the request-id and API-key
    layers, and the service classes."""
    logs.install()  # every log line of this process: its request's id, no exception messages
    log_format.install(settings.log_format)  # JSON lines when CREDIT_RISK_LOG_FORMAT=json
    parent = server_context.worker_index is None  # the `bentoml serve` parent, not a worker
    if parent:
        _preflight(settings)
    private = bentoml_fixes.private_hooks_usable(settings.private_hooks, warn=parent)
    if private:
        bentoml_fixes.listen_per_worker(settings.reuse_port)
        bentoml_fixes.extend_worker_startup(
            settings.accept_interval_ms / 1000,
            settings.coalesce_writes,
            head_limits(settings),
            settings.keep_alive_s,
        )
    front_door = build_front_door(settings)
    worker_app = build_worker_app(front_door, settings, inside_bentoml_chain=not private)
    model = _model_service(settings)
    service = _api_service(
        settings, front_door, worker_app, model, bentoml_traffic(settings, private)
    )
    if private:
        bentoml_fixes.serve_behind(service, worker_app.wrap)
    else:
        bentoml_fixes.public_door(service, worker_app.wrap)
    return Services(service, model)


def _model_service(settings: ServiceSettings) -> Any:
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

    return bentoml.service(
        name="credit_risk_model",
        workers=1,
        traffic={"timeout": settings.request_timeout_s},
        logging={"access": {"enabled": settings.access_log}},
    )(CreditRiskModel)


def bentoml_traffic(settings: ServiceSettings, door_in_front: bool) -> dict[str, float | int]:
    """BentoML's `traffic` for the API service. The door enforces the timeout and the
    concurrency limit on its routes, in the one error shape; BentoML's middleware enforces them
    on the rest (Swagger pages, probes, /metrics). Without the private hooks BentoML's
    middleware also stands in front of the door, so its limits are set one step looser there:
    the door, inside, answers first, in its shape (a second later; one request more per
    worker), and BentoML's stay as a backstop."""
    if door_in_front:
        return {"timeout": settings.request_timeout_s, "max_concurrency": settings.max_concurrency}
    return {
        "timeout": settings.request_timeout_s + PUBLIC_BACKSTOP_S,
        "max_concurrency": settings.max_concurrency + settings.workers,
    }


def _api_service(
    settings: ServiceSettings,
    front_door: FrontDoor,
    worker_app: WorkerApp,
    model: Any,
    traffic: dict[str, float | int],
) -> Any:
    class CreditRiskService:
        """Credit decisions: APPROVED / MAYBE / DECLINED with the probability of default."""

        if settings.batching == "bentoml":
            model_service = bentoml.depends(model)

        def __init__(self) -> None:
            self.blas_cap = limit_blas_threads(settings.model_threads)
            use_arrow_memory_pool(settings.arrow_memory_pool)
            keep_arrow_off_signals()
            self.worker = build_worker(
                settings, self._remote_predict if settings.batching == "bentoml" else None
            )
            self.scorer = self.worker.scorer
            self.route_context = route_context(self.worker, lambda: front_door.ready)
            worker_app.open(self.worker)
            front_door.drain.install(asyncio.get_running_loop())  # this runs in the main thread
            logs.install_loop_handler(asyncio.get_running_loop())
            # The models file (CREDIT_RISK_MODELS_FILE), watched on this worker's loop.
            switch = model_switch(self.worker)
            self.models_watch = (
                asyncio.get_running_loop().create_task(switch.run()) if switch else None
            )
            logger.warning(
                "serving %s: engine=%s device=%s batching=%s",
                self.scorer.model_tag,
                self.worker.runner.engine,
                self.worker.runner.device,
                settings.batching,
            )
            # Start-up objects live forever: keep them out of every later GC pass, and collect
            # less often (Python's default thresholds make GC pauses the p99 tail).
            gc.collect()
            gc.freeze()
            gc.set_threshold(*settings.gc_thresholds)

        @bentoml.on_shutdown
        async def close(self) -> None:
            """After the last request: write the metrics still buffered, free the engines'
            threads (waiting for them off the event loop)."""
            if self.models_watch is not None:
                self.models_watch.cancel()
            await self.scorer.finish_shadow()  # its records are written before the log closes
            self.worker.metrics.flush()
            await asyncio.to_thread(self.scorer.close)
            if self.worker.batcher is not None:
                await self.worker.batcher.close()

        async def _remote_predict(self, features: np.ndarray) -> np.ndarray:
            """One call through BentoML's dispatcher in the model service."""
            deadline_s = settings.model_service_timeout_s
            try:
                return await asyncio.wait_for(
                    self.model_service.to_async.predict(features), deadline_s
                )
            except TimeoutError as error:
                raise OverloadedError(
                    f"model service did not answer within {deadline_s}s"
                ) from error
            except bentoml.exceptions.ServiceUnavailable as error:  # its dispatcher shed load
                raise OverloadedError(f"model service overloaded: {error}") from error
            except Exception as error:  # any other failure of the dependency: unavailable
                logger.warning("model service call failed: %s", type(error).__name__)
                raise OverloadedError(
                    f"model service unavailable: {type(error).__name__}"
                ) from error

        async def __is_ready__(self) -> bool:
            """False from SIGTERM on, so balancers stop sending while the worker drains."""
            return front_door.ready

    for name, method in typed_methods(ENDPOINTS, lambda self: self.route_context).items():
        setattr(CreditRiskService, name, method)
    return bentoml.service(
        name="credit_risk",
        workers=settings.workers,
        traffic=traffic,
        logging={"access": {"enabled": settings.access_log}},
        tracing={"excluded_urls": settings.tracing_excluded_urls},
    )(CreditRiskService)


_assembled: list[Services] = []


def __getattr__(name: str) -> Any:
    """`CreditRiskService` and `CreditRiskModel`, assembled on first use from the settings."""
    if name not in ("CreditRiskService", "CreditRiskModel"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _assembled:
        _assembled.append(create_service(get_settings()))
    return _assembled[0].service if name == "CreditRiskService" else _assembled[0].model
