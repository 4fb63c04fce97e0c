"""Builds one worker from the settings: engines, batching design, metrics, front door, and the
layers in front of the door (request ids, API keys)."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp

from features.encoder import FeatureEncoder
from runners.base import FeatureMatrix, Probabilities, Runner
from runners.batcher import AdaptiveBatcher
from runners.bulk import ChunkedPredictor
from runners.factory import load_runner
from service.decisions import Thresholds
from service.http.admission import Admission, LagAdmission
from service.http.api_keys import ApiKeys
from service.http.auth import ApiKeyMiddleware
from service.http.drain import Drain
from service.http.front_door import DoorLimits, FrontDoor
from service.http.request_id import RequestIdMiddleware
from service.http.request_metrics import RequestMetrics, bentoml_metrics_config
from service.http.routes import scoring_routes
from service.metrics import MetricsBuffer, ServingMetrics
from service.scoring import CreditScorer, Limits, RowPredictor
from service.settings import ServiceSettings

RemotePredict = Callable[[FeatureMatrix], Awaitable[Probabilities]]


@dataclass
class Worker:
    """Everything one API worker holds; `info` feeds GET /info."""

    settings: ServiceSettings
    runner: Runner
    bulk: ChunkedPredictor
    scorer: CreditScorer
    batcher: AdaptiveBatcher | None
    metrics: MetricsBuffer  # every buffered metric of this worker, flushed together

    def info(self) -> dict[str, object]:
        meta = self.runner_metadata
        s = self.settings
        return {
            "model": self.scorer.model_tag,
            "native_model": meta.get("native_tag", ""),
            "engine": self.runner.engine,
            "bulk_engine": s.bulk_engine,
            "provider": self.runner.device,
            "batching": s.batching,
            "workers": s.workers,
            "model_threads": s.model_threads,
            "bulk": {
                "threads": s.bulk_engine_threads,
                "xgboost_min_rows": s.bulk_xgboost_min_rows,
                "chunk_rows": s.bulk_chunk_rows,
            },
            "n_features": self.runner.n_features,
            "test_auc": meta.get("test_auc", 0.0),
            "parity_max_abs_diff": meta.get("parity_max_abs_diff", 0.0),
            "thresholds": {"maybe": s.maybe_threshold, "declined": s.declined_threshold},
            "limits": {
                "max_batch_items": s.max_batch_items,
                "max_bulk_rows": s.max_bulk_rows,
                "max_body_bytes": s.max_body_bytes,
                "max_batch_rows": s.max_batch_rows,
                "max_queue_rows": s.max_queue_rows,
            },
        }

    @property
    def runner_metadata(self) -> dict[str, object]:
        return dict(self.runner.stored.metadata)


def load_engines(settings: ServiceSettings) -> tuple[Runner, ChunkedPredictor]:
    """The request engine and the bulk predictor; raises ModelLoadError for a bad model."""
    engines: dict[tuple[str, int], Runner] = {}

    def engine(name: str, threads: int) -> Runner:
        if (name, threads) not in engines:
            engines[name, threads] = load_runner(
                name,  # type: ignore[arg-type]
                settings.model_tag,
                threads=threads,
                device=settings.device,
            )
        return engines[name, threads]

    runner = engine(settings.engine, settings.model_threads)
    bulk_threads = settings.bulk_engine_threads
    if settings.bulk_engine == "auto":
        small, large = engine("onnx", bulk_threads), engine("xgboost", bulk_threads)
    else:
        small = large = engine(settings.bulk_engine, bulk_threads)
    bulk = ChunkedPredictor(
        small=small,
        large=large,
        large_min_rows=settings.bulk_xgboost_min_rows,
        chunk_rows=settings.bulk_chunk_rows,
    )
    return runner, bulk


def build_worker(settings: ServiceSettings, remote_predict: RemotePredict | None = None) -> Worker:
    runner, bulk = load_engines(settings)
    buffer = MetricsBuffer()
    metrics = ServingMetrics.create(buffer, engines=(runner.engine,))
    batcher: AdaptiveBatcher | None = None
    predict_rows: RowPredictor
    if settings.batching == "adaptive":
        batcher = AdaptiveBatcher(
            runner.predict,
            max_batch_rows=settings.max_batch_rows,
            max_queue_rows=settings.max_queue_rows,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            offload_to_thread=settings.offload_model_calls,
            observer=lambda record: metrics.observe_batch(record, runner.engine),
        )
        predict_rows = batcher.predict
    elif settings.batching == "bentoml":
        if remote_predict is None:
            raise ValueError("batching=bentoml needs the model service dependency")
        predict_rows = remote_predict
    else:
        latency = metrics.model_latency[runner.engine, "direct"]

        async def predict_rows(features: FeatureMatrix) -> Probabilities:
            started = time.perf_counter()
            probabilities = runner.predict(features)
            latency.observe(time.perf_counter() - started)
            buffer.touch()
            return probabilities

    scorer = CreditScorer(
        model_tag=runner.tag,
        encoder=FeatureEncoder(runner.stored.feature_names),
        predict_rows=predict_rows,
        bulk=bulk,
        thresholds=Thresholds(settings.maybe_threshold, settings.declined_threshold),
        limits=Limits(settings.max_batch_items, settings.max_bulk_rows, settings.max_body_bytes),
    )
    return Worker(settings, runner, bulk, scorer, batcher, buffer)


def build_front_door(settings: ServiceSettings) -> FrontDoor:
    """The worker's front door, closed (no routes) until `open_front_door`."""
    limits = DoorLimits(
        max_body_bytes=settings.max_body_bytes,
        max_bulk_bytes_in_flight=settings.max_bulk_bytes_in_flight,
        retry_after_s=settings.retry_after_s,
    )
    lag = LagAdmission(
        target_lag_s=settings.admission_target_lag_ms / 1000,
        window_s=settings.admission_window_ms / 1000,
    )
    return FrontDoor(limits, Drain(settings.drain_delay_s), Admission(lag))


def open_front_door(door: FrontDoor, worker: Worker, *, bentoml_metrics: bool = True) -> None:
    """Serve the worker's routes through `door`, with BentoML's request metrics when its
    configuration has them on (only inside a BentoML worker)."""
    metrics = None
    if bentoml_metrics:
        enabled, namespace, buckets, labels = bentoml_metrics_config()
        if enabled:
            metrics = RequestMetrics(worker.metrics, namespace, buckets, labels)
    if worker.batcher is not None:
        door.admission.batcher_saturated = worker.batcher.saturated
    door.open(scoring_routes(worker.scorer, worker.info()), metrics)


def load_api_keys(settings: ServiceSettings) -> ApiKeys | None:
    """The configured API keys (None: keys are off); raises KeyFileError for an unusable file."""
    if settings.api_keys_file is None:
        return None
    return ApiKeys(settings.api_keys_file, settings.api_keys_reload_s)


@dataclass
class WorkerApp:
    """What a worker serves: RequestIdMiddleware(ApiKeyMiddleware(FrontDoor(BentoML's app))),
    the API-key layer only when keys are configured."""

    door: FrontDoor
    api_keys: ApiKeyMiddleware | None
    app: ASGIApp  # the outermost layer

    def wrap(self, bentoml_app: ASGIApp) -> ASGIApp:
        """For `bentoml_fixes.serve_behind`: the whole stack in front of BentoML's app."""
        self.door.wrap(bentoml_app)
        return self.app

    def open(self, worker: Worker, *, bentoml_metrics: bool = True) -> None:
        """The worker's models are loaded: serve its routes, count requests by client."""
        open_front_door(self.door, worker, bentoml_metrics=bentoml_metrics)
        if self.api_keys is not None and bentoml_metrics:
            self.api_keys.count_clients(worker.metrics, frozenset(self.door.routes))


def build_worker_app(door: FrontDoor, settings: ServiceSettings) -> WorkerApp:
    keys = load_api_keys(settings)
    inner: ASGIApp = door
    api_keys = None
    if keys is not None:
        api_keys = ApiKeyMiddleware(door, keys, ops_open=settings.ops_routes == "open")
        inner = api_keys
    return WorkerApp(door, api_keys, RequestIdMiddleware(inner))
