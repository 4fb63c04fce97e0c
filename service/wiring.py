"""Builds one worker from the settings: engines, batching design, metrics, front door, and the
layers in front of the door (request ids, API keys)."""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
from starlette.types import ASGIApp
from threadpoolctl import threadpool_limits

from features.distributions import METADATA_KEY, FieldDistribution, from_metadata, medians
from features.drift import DriftMonitor
from features.encoder import FeatureEncoder
from features.reasons import ReasonCoder
from features.thresholds import STATUSES, Thresholds
from runners.base import FeatureMatrix, JoinedCall, Probabilities, Runner
from runners.batcher import AdaptiveBatcher, JoinedModel
from runners.bulk import ChunkedPredictor
from runners.device import DeviceUnavailableError
from runners.explainer import Explainer
from runners.factory import load_runner
from runners.model_store import ModelLoadError, get_stored_model
from runners.onnx_runner import OnnxRunner
from service import __version__, openapi
from service.http.admission import Admission, LagAdmission
from service.http.api_keys import ApiKeys
from service.http.auth import ApiKeyMiddleware
from service.http.concurrency import per_worker
from service.http.drain import Drain
from service.http.front_door import DoorLimits, FrontDoor
from service.http.head_limits import HeadLimits
from service.http.request_id import RequestIdMiddleware
from service.http.request_metrics import RequestMetrics, bentoml_metrics_config
from service.http.routes import RefusalReason, RouteContext, route_table
from service.http.tracing import from_bentoml as tracing_from_bentoml
from service.metrics import (
    ChallengerMetrics,
    LoadReadings,
    MetricsBuffer,
    RecordMetrics,
    ServingMetrics,
    WorkerGauges,
    models_reload_failures,
)
from service.model_switch import LoadedModels, ModelSwitch
from service.models_file import ModelsFileError, ModelsSpec, read_models
from service.monitoring import DecisionMonitor
from service.openapi import DocumentFacts
from service.records.assemble import ModelReasons, explainer_reasons
from service.records.readings import record_readings
from service.records.schema import REASONS
from service.records.target import build_recorder
from service.registry import ENDPOINTS
from service.scoring import (
    CreditScorer,
    Explaining,
    Limits,
    RowPredictor,
    ServedModel,
    ServedModels,
)
from service.settings import ServiceSettings
from service.v2 import OpenInferenceProtocol

RemotePredict = Callable[[FeatureMatrix], Awaitable[Probabilities]]
EXPLAINER = "explainer"  # the engine label of explanation batches in the model metrics
logger = logging.getLogger("credit_risk")


@dataclass
class Worker:
    """Everything one API worker holds; `info` feeds GET /info."""

    settings: ServiceSettings
    runner: Runner
    bulk: ChunkedPredictor
    scorer: CreditScorer
    batcher: AdaptiveBatcher | None
    metrics: MetricsBuffer  # every buffered metric of this worker, flushed together
    explain_batcher: AdaptiveBatcher | None = None
    serving_metrics: ServingMetrics | None = None  # shared by every model the worker loads
    models: ModelsSpec | None = None  # the models file's spec served (None: no file)
    engines: "ModelSet | None" = None  # what a models-file switch replaces
    # Called on the event loop after a models-file switch, the worker already updated: what was
    # built from the served models at start-up (the door's routes and document) follows.
    on_switch: list[Callable[[], None]] = field(default_factory=list)

    def info(self) -> dict[str, object]:
        meta = self.runner_metadata
        s = self.settings
        return {
            "model": self.scorer.model_tag,
            "models": self.models_info(),
            "native_model": meta.get("native_tag", ""),
            "engine": self.runner.engine,
            "bulk_engine": s.bulk_engine,
            "provider": self.runner.device,
            "batching": s.batching,
            "workers": s.workers,
            "model_threads": s.model_threads,
            "arrow_memory_pool": pa.default_memory_pool().backend_name,  # the one in use
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

    def models_info(self) -> dict[str, object]:
        """Champion, challenger, mode and canary fraction as served now."""
        served = self.scorer.models
        challenger = served.challenger
        return {
            "champion": served.champion.model_tag,
            "challenger": challenger.model_tag if challenger is not None else None,
            "mode": self.models.mode if challenger is not None and self.models else None,
            "canary_fraction": served.canary_fraction,
            "models_file": str(self.settings.models_file) if self.settings.models_file else None,
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
    # One engine thread per call: a bulk request's threads are its pieces (runners/bulk.py).
    if settings.bulk_engine == "auto":
        small, large = engine("onnx", 1), engine("xgboost", 1)
    else:
        small = large = engine(settings.bulk_engine, 1)
    bulk = ChunkedPredictor(
        small=small,
        large=large,
        large_min_rows=settings.bulk_xgboost_min_rows,
        chunk_rows=settings.bulk_chunk_rows,
        threads=settings.bulk_engine_threads,
    )
    return runner, bulk


def limit_blas_threads(threads: int) -> threadpool_limits:
    """Cap NumPy's BLAS at `threads` threads in this process (the engine threads per worker).
    OpenBLAS otherwise starts a thread per core for a matrix product (the explainer's per-field
    grouping, reason codes, the drift window) and keeps them spinning after it, taking the CPU
    of the other workers (one per core) and their p99 (bench/REPORT_NOTES.md). Keep the result
    referenced for as long as the cap should hold."""
    return threadpool_limits(limits=threads, user_api="blas")


ARROW_POOLS: dict[str, Callable[[], pa.MemoryPool]] = {
    "system": pa.system_memory_pool,
    "mimalloc": pa.mimalloc_memory_pool,
    "jemalloc": pa.jemalloc_memory_pool,
}


def use_arrow_memory_pool(name: str) -> None:
    """Arrow's default memory pool in this process (see the setting arrow_memory_pool for why
    not pyarrow's own default); a pool this pyarrow build lacks keeps the default, with a
    warning."""
    try:
        pa.set_memory_pool(ARROW_POOLS[name]())
    except NotImplementedError:
        logger.warning(
            "Arrow memory pool %s is not in this pyarrow build; keeping %s",
            name,
            pa.default_memory_pool().backend_name,
        )


def keep_arrow_off_signals() -> None:
    """SIGTERM belongs to the drain (service/http/drain.py): every request accepted before it
    is answered. pyarrow, by default, swaps in a handler of its own for SIGINT and SIGTERM
    during a long call on the main thread (a bulk body's CSV parse runs on the event loop) and
    cancels that call when the signal comes: the request was answered 500 (ArrowCancelled).
    Off, the parse finishes and the signal reaches the drain's handler as usual."""
    pa.enable_signal_handlers(False)


@dataclass
class ModelEngines:
    """One served model with the engines behind it: what a models-file switch replaces."""

    served: ServedModel
    runner: Runner
    bulk: ChunkedPredictor
    batcher: AdaptiveBatcher | None
    explain_batcher: AdaptiveBatcher | None

    async def close(self) -> None:
        for batcher in (self.batcher, self.explain_batcher):
            if batcher is not None:
                await batcher.close()
        self.bulk.close()


@dataclass
class ModelSet:
    """The models a models-file spec names, loaded: what the scorer serves after a switch."""

    spec: ModelsSpec
    champion: ModelEngines
    challenger: ModelEngines | None = None
    # A canary's champion and challenger in one session (runners/pair.py; `join_canary`):
    # its flushes holding rows of both make one call.
    joined: JoinedCall | None = None

    @property
    def served(self) -> ServedModels:
        engines = self.challenger
        challenger = engines.served if engines is not None else None
        canary = self.spec.canary_fraction if self.spec.mode == "canary" else 0.0
        shadow = challenger is not None and self.spec.mode == "shadow"
        batcher = self.champion.batcher
        if engines is not None and canary > 0.0 and batcher is not None:
            # The canary's rows ride the champion's batcher (its queue, flushes and limits),
            # scored by the challenger's model: a second batcher would add its own model calls
            # and flushes a tick for a few requests, and cost more than the split's share
            # (bench/REPORT_NOTES.md, champion and challenger). Joined, a flush holding rows of
            # both models is one call.
            model: Callable[[FeatureMatrix], Probabilities] = engines.runner.predict
            if self.joined is not None:
                model = JoinedModel(engines.runner.predict, self.joined)
            predict_rows = partial(batcher.predict, model=model)
            challenger = replace(engines.served, predict_rows=predict_rows)
        return ServedModels(self.champion.served, challenger, canary, shadow)

    def engines(self) -> list[ModelEngines]:
        return [e for e in (self.champion, self.challenger) if e is not None]

    def join_canary(self, settings: ServiceSettings) -> None:
        """Joins a canary's two models in one session (off the event loop: ~30 ms) when the
        settings allow it and both are ONNX models on the CPU scored through the champion's
        batcher; else they keep scoring in two calls."""
        challenger = self.challenger
        if not settings.canary_joined_calls or self.spec.mode != "canary" or challenger is None:
            return
        if self.champion.batcher is None:
            return
        first, second = self.champion.runner, challenger.runner
        if not (isinstance(first, OnnxRunner) and isinstance(second, OnnxRunner)):
            return
        try:
            from runners.pair import join  # the onnx package: only where a canary joins
        except ImportError:
            return
        pair = join(first, second, threads=settings.model_threads)
        self.joined = pair.predict if pair is not None else None

    async def close(self) -> None:
        for engines in self.engines():
            await engines.close()


@dataclass
class Replaced:
    """Engines a switch replaced and no longer serves (those it kept are not closed)."""

    gone: list[ModelEngines]

    async def close(self) -> None:
        for engines in self.gone:
            await engines.close()


def build_model(
    settings: ServiceSettings,
    buffer: MetricsBuffer,
    metrics: ServingMetrics,
    remote_predict: RemotePredict | None,
) -> ModelEngines:
    """The model `settings.model_tag` with its engines, batchers and monitor."""
    runner, bulk = load_engines(settings)
    batcher, predict_rows = _row_predictor(settings, runner, metrics, remote_predict)
    thresholds = Thresholds(settings.maybe_threshold, settings.declined_threshold)
    distributions = _training_distributions(runner)
    explaining, explain_batcher = _explaining(settings, runner, metrics, distributions)
    drift = (
        DriftMonitor(
            distributions, runner.stored.feature_names, window_rows=settings.drift_window_rows
        )
        if distributions
        else None
    )
    # Rows the batcher scores with the engine bulk scoring would use for them (V2 requests).
    same_engine = batcher is not None and runner.engine == bulk.small.engine
    served = ServedModel(
        model_tag=runner.tag,
        predict_rows=predict_rows,
        bulk=bulk,
        monitor=DecisionMonitor(buffer, runner.tag, thresholds, drift)
        if settings.monitoring
        else None,
        explaining=explaining,
        batched_below_rows=bulk.large_min_rows if same_engine else 0,
    )
    return ModelEngines(served, runner, bulk, batcher, explain_batcher)


def build_worker(settings: ServiceSettings, remote_predict: RemotePredict | None = None) -> Worker:
    buffer = MetricsBuffer()
    spec = starting_models(settings, remote_predict is not None)
    if spec is not None:
        settings = settings.model_copy(update={"model_tag": spec.champion})
    # The engine label of model calls: the request engine's name (runner.engine).
    metrics = ServingMetrics.create(buffer, engines=(settings.engine, EXPLAINER))
    engines = build_model(settings, buffer, metrics, remote_predict)
    runner, served, explaining = engines.runner, engines.served, engines.served.explaining
    reasons = ModelReasons()  # records' reason codes, by the model that decided
    _add_reasons(reasons, engines)
    scorer = CreditScorer(
        model_tag=served.model_tag,
        encoder=FeatureEncoder(runner.stored.feature_names),
        predict_rows=served.predict_rows,
        bulk=served.bulk,
        thresholds=Thresholds(settings.maybe_threshold, settings.declined_threshold),
        limits=Limits(settings.max_batch_items, settings.max_bulk_rows, settings.max_body_bytes),
        monitor=served.monitor,
        explaining=explaining,
        batched_below_rows=served.batched_below_rows,
        recorder=build_recorder(settings, reasons),
    )
    models = ModelSet(spec or ModelsSpec(champion=served.model_tag), engines)
    if spec is not None and spec.challenger is not None:
        try:
            challenger = settings.model_copy(update={"model_tag": spec.challenger})
            models.challenger = build_model(challenger, buffer, metrics, None)
            check_model(models.challenger, runner.stored.feature_names)
            _add_reasons(reasons, models.challenger)
        except (ModelLoadError, DeviceUnavailableError) as error:
            logger.warning("challenger %s not used: %s", spec.challenger, error)
            models = ModelSet(replace(spec, challenger=None), engines)
        models.join_canary(settings)
        scorer.switch(models.served)
    scorer.challenger_metrics = ChallengerMetrics(buffer, STATUSES.tolist())
    worker = Worker(
        settings,
        runner,
        engines.bulk,
        scorer,
        engines.batcher,
        buffer,
        engines.explain_batcher,
        metrics,
        models.spec if spec is not None else None,
        models,
    )

    def reason_with_the_served() -> None:
        if worker.engines is not None:
            for served_engines in worker.engines.engines():
                _add_reasons(reasons, served_engines)

    worker.on_switch.append(reason_with_the_served)
    return worker


def _add_reasons(reasons: ModelReasons, engines: ModelEngines) -> None:
    """Reason codes for the records of `engines`' model (none when it cannot explain)."""
    explaining = engines.served.explaining
    if explaining is not None:
        codes = explainer_reasons(explaining.explainer, explaining.matrix_coder, REASONS)
        reasons.add(engines.served.model_tag, codes)


def starting_models(settings: ServiceSettings, remote_batching: bool) -> ModelsSpec | None:
    """The models file's spec at start-up when it is usable (its champion loads), else None:
    CREDIT_RISK_MODEL_TAG is served, with one warning."""
    if settings.models_file is None:
        return None
    if remote_batching:
        logger.warning(
            "CREDIT_RISK_MODELS_FILE is ignored with batching=bentoml (its model service "
            "holds one model); serving %s",
            settings.model_tag,
        )
        return None
    try:
        spec = read_models(settings.models_file)
        get_stored_model(spec.champion)
    except (ModelsFileError, ModelLoadError) as error:
        logger.warning("models file not used, serving %s: %s", settings.model_tag, error)
        return None
    return spec


def check_model(engines: ModelEngines, feature_names: tuple[str, ...]) -> None:
    """A loaded model may serve beside (or instead of) the current one: the same features, and
    a warm-up call of each engine answering probabilities. Raises ModelLoadError."""
    runner, tag = engines.runner, engines.served.model_tag
    if runner.stored.feature_names != feature_names:
        raise ModelLoadError(f"model {tag} has other features than the served model")
    probe = np.zeros((2, len(feature_names)), dtype=np.float32)
    answers = [runner.predict(probe), engines.bulk.small.predict(probe)]
    answers.append(engines.bulk.large.predict(probe))
    if engines.served.explaining is not None:
        answers.append(engines.served.explaining.explainer.contributions(probe).probability)
    for answer in answers:
        values = np.asarray(answer, dtype=np.float64)
        if values.shape != (2,) or not np.all((values >= 0) & (values <= 1)):
            raise ModelLoadError(f"model {tag} failed its warm-up: no probabilities")


def model_switch(worker: Worker) -> ModelSwitch | None:
    """Watch the models file (None when there is none): load, check and switch the worker's
    models when it changes. Call on the worker's event loop; run `.run()` as a task."""
    settings = worker.settings
    if settings.models_file is None or settings.batching == "bentoml":
        return None
    failures = worker.metrics.counter(models_reload_failures())
    feature_names = worker.scorer.encoder.feature_names
    start = worker.models or ModelsSpec(champion=worker.scorer.model_tag)

    def engines_of(tag: str) -> ModelEngines:
        """The served engines of `tag` when it is served (a mode or fraction change reloads
        nothing), else a newly loaded and checked model."""
        if worker.engines is not None:
            for engines in worker.engines.engines():
                if engines.served.model_tag == str(get_stored_model(tag).tag):
                    return engines
        wanted = settings.model_copy(update={"model_tag": tag})
        assert worker.serving_metrics is not None
        engines = build_model(wanted, worker.metrics, worker.serving_metrics, None)
        check_model(engines, feature_names)
        return engines

    def load(spec: ModelsSpec) -> ModelSet:
        challenger = engines_of(spec.challenger) if spec.challenger is not None else None
        models = ModelSet(spec, engines_of(spec.champion), challenger)
        models.join_canary(settings)
        return models

    switch: ModelSwitch

    def apply(spec: ModelsSpec, loaded: LoadedModels) -> None:
        assert isinstance(loaded, ModelSet)
        worker.scorer.switch(loaded.served)
        previous = worker.engines
        worker.engines, worker.models = loaded, spec
        champion = loaded.champion
        worker.runner, worker.bulk = champion.runner, champion.bulk
        worker.batcher, worker.explain_batcher = champion.batcher, champion.explain_batcher
        if previous is not None:
            kept = [id(engines) for engines in loaded.engines()]
            gone = [engines for engines in previous.engines() if id(engines) not in kept]
            switch.retire(Replaced(gone))
        for follow in worker.on_switch:
            try:
                follow()
            except Exception as error:  # served already: the watch and the other hooks go on
                logger.error(
                    "after the models switch, %s failed: %s",
                    getattr(follow, "__qualname__", "a hook"),
                    type(error).__name__,
                )

    def count() -> None:
        failures.count += 1
        worker.metrics.touch()

    switch = ModelSwitch(
        settings.models_file,
        settings.models_reload_s,
        start,
        load,
        apply,
        count,
        retire_after_s=settings.request_timeout_s + 1,
    )
    return switch


def _row_predictor(
    settings: ServiceSettings,
    runner: Runner,
    metrics: ServingMetrics,
    remote_predict: RemotePredict | None,
) -> tuple[AdaptiveBatcher | None, RowPredictor]:
    """How /classify and /classify_batch rows reach the model, per the batching setting."""
    if settings.batching == "adaptive":
        batcher = _batcher(settings, runner.predict, metrics, runner.engine)
        return batcher, batcher.predict
    if settings.batching == "bentoml":
        if remote_predict is None:
            raise ValueError("batching=bentoml needs the model service dependency")
        return None, remote_predict
    return None, _direct(runner.predict, metrics, runner.engine)


def _batcher(
    settings: ServiceSettings,
    predict: Callable[[FeatureMatrix], npt.NDArray[np.float32]],
    metrics: ServingMetrics,
    engine: str,
) -> AdaptiveBatcher:
    return AdaptiveBatcher(
        predict,
        max_batch_rows=settings.max_batch_rows,
        max_queue_rows=settings.max_queue_rows,
        max_queue_delay_s=settings.max_queue_delay_ms / 1000,
        offload_to_thread=settings.offload_model_calls,
        observer=lambda record: metrics.observe_batch(record, engine),
    )


def _direct(
    predict: Callable[[FeatureMatrix], npt.NDArray[np.float32]],
    metrics: ServingMetrics,
    engine: str,
) -> RowPredictor:
    """One model call per request (batching=none)."""
    latency = metrics.model_latency[engine, "direct"]

    async def predict_now(features: FeatureMatrix) -> npt.NDArray[np.float32]:
        started = time.perf_counter()
        result = predict(features)
        latency.observe(time.perf_counter() - started)
        metrics.buffer.touch()
        return result

    return predict_now


def _training_distributions(runner: Runner) -> dict[str, FieldDistribution]:
    """The served model's training distributions; empty (no reasons, no drift) for a model
    exported before they were stored."""
    stored = runner.stored.metadata.get(METADATA_KEY)
    if stored is None:
        logger.warning(
            "model %s has no %s: explanations and drift monitoring are off",
            runner.tag,
            METADATA_KEY,
        )
        return {}
    return from_metadata(stored)


def _explaining(
    settings: ServiceSettings,
    runner: Runner,
    metrics: ServingMetrics,
    distributions: dict[str, FieldDistribution],
) -> tuple[Explaining | None, AdaptiveBatcher | None]:
    """The explainer of the served model's native twin, behind a batcher of its own."""
    if not distributions:
        return None, None
    explainer = Explainer.load(
        settings.model_tag, threads=settings.model_threads, device=settings.device
    )

    def explain(features: FeatureMatrix) -> npt.NDArray[np.float32]:
        explained = explainer.contributions(features)
        return np.column_stack((explained.probability, explained.contributions))

    batcher = None
    explain_rows: RowPredictor
    if settings.batching == "adaptive":
        batcher = _batcher(settings, explain, metrics, EXPLAINER)
        explain_rows = batcher.predict
    else:
        explain_rows = _direct(explain, metrics, EXPLAINER)
    coder = ReasonCoder(medians(distributions))
    probe = np.zeros((1, len(runner.stored.feature_names)), dtype=np.float32)
    explaining = Explaining(
        explain_rows=explain_rows,
        explainer=explainer,
        coder=coder,
        matrix_coder=coder.matrix_coder(runner.stored.feature_names),
        top_n=settings.reasons,
        bias=explainer.contributions(probe).bias,
        refusal_reason=batcher.refusal_reason if batcher is not None else None,
    )
    return explaining, batcher


def build_front_door(settings: ServiceSettings) -> FrontDoor:
    """The worker's front door, closed (no routes) until `open_front_door`."""
    limits = DoorLimits(
        max_body_bytes=settings.max_body_bytes,
        max_bulk_bytes_in_flight=settings.max_bulk_bytes_in_flight,
        retry_after_s=settings.retry_after_s,
        request_timeout_s=settings.request_timeout_s,
        max_concurrency=per_worker(settings.max_concurrency, settings.workers),
        access_log=settings.access_log,
    )
    lag = LagAdmission(
        target_lag_s=settings.admission_target_lag_ms / 1000,
        window_s=settings.admission_window_ms / 1000,
    )
    return FrontDoor(limits, Drain(settings.drain_delay_s), Admission(lag))


def open_front_door(
    door: FrontDoor,
    worker: Worker,
    *,
    bentoml_metrics: bool = True,
    open_paths: frozenset[str] | None = None,
) -> None:
    """Serve the registry's routes (service/registry.py) through `door`, with BentoML's request
    metrics and tracing as its configuration sets them (only inside a BentoML worker); `open_paths`:
    with API keys on, the paths that need none (the document says so)."""
    metrics = None
    if bentoml_metrics:
        enabled, namespace, buckets, labels = bentoml_metrics_config()
        if enabled:
            metrics = RequestMetrics(worker.metrics, namespace, buckets, labels)
    gauges = WorkerGauges(worker.metrics, _load_readings(door, worker), _model_info(worker))
    worker.on_switch.append(lambda: gauges.serving(_model_info(worker)))
    if worker.scorer.recorder is not None:
        RecordMetrics(worker.metrics, record_readings(worker.scorer.recorder))
    lag = door.admission.lag
    if lag is not None:  # shadow work is dropped as soon as the door sheds any load
        worker.scorer.shadow_pressure = lambda: lag.state.fraction < 1.0
    tracing = tracing_from_bentoml(lambda: worker.scorer.model_tag) if bentoml_metrics else None

    def serve_routes() -> None:
        """The routes of the models served now: the batcher queues they join, and the
        document with the model's tag and version (a models switch serves them anew)."""
        context = route_context(worker, lambda: door.ready, open_paths)
        door.open(route_table(ENDPOINTS, context, _queues(worker)), metrics, tracing)

    serve_routes()
    worker.on_switch.append(serve_routes)


def route_context(
    worker: Worker, ready: Callable[[], bool], open_paths: frozenset[str] | None = None
) -> RouteContext:
    """What the worker's handlers reach, its OpenAPI document included."""
    settings = worker.settings
    v2 = OpenInferenceProtocol(worker.scorer, __version__)
    facts = DocumentFacts(
        model_tag=worker.scorer.model_tag,
        model_version=v2.version,
        max_batch_items=settings.max_batch_items,
        max_bulk_rows=settings.max_bulk_rows,
        open_paths=open_paths,
    )
    document = orjson.dumps(openapi.document(facts))
    return RouteContext(
        worker.scorer,
        v2,
        orjson.dumps(worker.info()),
        ready,
        document,
        describe=lambda: orjson.dumps(worker.info()),  # models switch: /info follows
    )


def _queues(worker: Worker) -> dict[str, RefusalReason | None]:
    """The bound of each batcher queue a route may join (None: no batcher, no bound)."""
    explaining = worker.scorer.explaining
    return {
        "scoring": worker.batcher.refusal_reason if worker.batcher is not None else None,
        "explaining": explaining.refusal_reason if explaining is not None else None,
    }


def _load_readings(door: FrontDoor, worker: Worker) -> LoadReadings:
    """The worker's load, read from the batchers it serves at the time of each reading (a
    models switch replaces them)."""
    lag = door.admission.lag
    batchers: dict[str, Callable[[], AdaptiveBatcher | None]] = {
        "score": lambda: worker.batcher,
        "explain": lambda: worker.explain_batcher,
    }
    return LoadReadings(
        admission_lag_s=(lambda: lag.state.lag_s) if lag is not None else lambda: 0.0,
        admitted_fraction=(lambda: lag.state.fraction) if lag is not None else lambda: 1.0,
        queued_rows={
            name: _queued_rows(batcher) for name, batcher in batchers.items() if batcher()
        },
        bulk_bytes_in_flight=lambda: door.bulk_bytes_in_flight,
    )


def _queued_rows(batcher: Callable[[], AdaptiveBatcher | None]) -> Callable[[], int]:
    def rows() -> int:
        served = batcher()
        return served.queued_rows if served is not None else 0

    return rows


def _model_info(worker: Worker) -> dict[str, str]:
    info = worker.info()
    facts = ("model", "native_model", "engine", "bulk_engine", "provider", "batching")
    return {**{name: str(info[name]) for name in facts}, "version": __version__}


def head_limits(settings: ServiceSettings) -> HeadLimits:
    """What a client may cost below the app: head size, header count, head and body time."""
    return HeadLimits(
        max_head_bytes=settings.max_head_bytes,
        max_headers=settings.max_headers,
        head_timeout_s=settings.head_timeout_s,
        body_timeout_s=settings.body_timeout_s,
    )


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
    # Inside BentoML's middleware chain (bentoml_fixes.public_door): its request metrics and
    # tracing see every request, so the door neither counts nor traces.
    inside_bentoml_chain: bool = False

    def wrap(self, bentoml_app: ASGIApp) -> ASGIApp:
        """For `bentoml_fixes.serve_behind`: the whole stack in front of BentoML's app."""
        self.door.wrap(bentoml_app)
        return self.app

    def open(self, worker: Worker, *, bentoml_metrics: bool = True) -> None:
        """The worker's models are loaded: serve its routes, count requests by client."""
        open_paths = self.api_keys.open_paths if self.api_keys is not None else None
        open_front_door(
            self.door,
            worker,
            bentoml_metrics=bentoml_metrics and not self.inside_bentoml_chain,
            open_paths=open_paths,
        )
        api_keys, door = self.api_keys, self.door
        if api_keys is not None and bentoml_metrics:

            def count_clients() -> None:  # the door's paths now (a switch changes V2's)
                api_keys.count_clients(worker.metrics, frozenset(door.routes.current()))

            count_clients()
            worker.on_switch.append(count_clients)  # after the door's own (added first)


def build_worker_app(
    door: FrontDoor, settings: ServiceSettings, *, inside_bentoml_chain: bool = False
) -> WorkerApp:
    keys = load_api_keys(settings)
    inner: ASGIApp = door
    api_keys = None
    if keys is not None:
        metrics_clients = frozenset(
            name.strip() for name in settings.metrics_clients.split(",") if name.strip()
        )
        if metrics_clients - keys.clients:
            logger.warning(
                "CREDIT_RISK_METRICS_CLIENTS names clients the key file does not have: %s",
                ", ".join(sorted(metrics_clients - keys.clients)),
            )
        api_keys = ApiKeyMiddleware(
            door, keys, ops_open=settings.ops_routes == "open", metrics_clients=metrics_clients
        )
        inner = api_keys
    return WorkerApp(door, api_keys, RequestIdMiddleware(inner), inside_bentoml_chain)
