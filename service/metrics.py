"""Prometheus metrics on BentoML's /metrics, counted in process and written in batches.

BentoML runs prometheus_client in multiprocess mode: every `observe()` or `inc()` takes a lock,
checks the pid and writes to a memory-mapped file (~2-5 µs), which at thousands of requests per
second per worker was a fifth of a worker's time. Here observations are counted in plain Python
lists and written to the same metric children (so the same names, labels and buckets reach
/metrics) once per `flush_interval_s`, off the request path.

prometheus_client is imported only when a worker creates its metrics: BentoML sets
PROMETHEUS_MULTIPROC_DIR in each worker after importing the service module, and a client
imported before that would count in a registry /metrics never reads.
"""

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from runners.batcher import BatchRecord

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536, 262144)
SECONDS_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
FLUSH_INTERVAL_S = 1.0


class BufferedHistogram:
    """Observations of one labelled histogram child, counted per bucket until `flush`.

    Writes through prometheus_client's per-bucket values (`_upper_bounds`, `_buckets`, `_sum`):
    private attributes of the pinned prometheus-client version, guarded by
    tests/service/test_metrics.py (a flush must equal the same observations made one by one).
    """

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)  # ends with +Inf
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # first bound >= value, as upstream
        self._sum += value

    def observe_many(self, values: npt.NDArray[np.floating[Any]]) -> None:
        """Every value of an array, in one vectorised pass."""
        slots = np.searchsorted(self._bounds, values, side="left")
        for slot, count in enumerate(np.bincount(slots, minlength=len(self._bounds)).tolist()):
            self._counts[slot] += count
        self._sum += float(values.sum(dtype=np.float64))

    def flush(self) -> None:
        if not any(self._counts):
            return
        self._child._sum.inc(self._sum)
        for bucket, count in zip(self._child._buckets, self._counts, strict=True):
            if count:
                bucket.inc(count)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0


class BufferedCounter:
    __slots__ = ("_child", "count")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.count = 0

    def flush(self) -> None:
        if self.count:
            self._child.inc(self.count)
            self.count = 0


class MetricsBuffer:
    """Every buffered metric child of a worker, flushed together on one loop timer that runs
    only while there is something to write."""

    def __init__(self, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.flush_interval_s = flush_interval_s
        self._histograms: dict[tuple[int, tuple[object, ...]], BufferedHistogram] = {}
        self._counters: dict[tuple[int, tuple[object, ...]], BufferedCounter] = {}
        self._before_flush: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None

    def histogram(self, metric: Any, *labels: object) -> BufferedHistogram:
        key = (id(metric), labels)
        buffered = self._histograms.get(key)
        if buffered is None:
            child = metric.labels(*labels) if labels else metric
            buffered = self._histograms[key] = BufferedHistogram(child)
        return buffered

    def counter(self, metric: Any, *labels: object) -> BufferedCounter:
        key = (id(metric), labels)
        buffered = self._counters.get(key)
        if buffered is None:
            child = metric.labels(*labels) if labels else metric
            buffered = self._counters[key] = BufferedCounter(child)
        return buffered

    def before_flush(self, callback: Any) -> None:
        """`callback()` runs at every flush, before the write (gauges set from live state)."""
        self._before_flush.append(callback)

    def touch(self) -> None:
        """Something was observed: make sure a flush is coming."""
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_interval_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        for callback in self._before_flush:
            callback()
        for histogram in self._histograms.values():
            histogram.flush()
        for counter in self._counters.values():
            counter.flush()


@dataclass
class ServingMetrics:
    """What matters for a batching model server, beside BentoML's request metrics."""

    buffer: MetricsBuffer
    batch_rows: BufferedHistogram
    batch_requests: BufferedHistogram
    queue_wait: BufferedHistogram
    model_latency: dict[tuple[str, str], BufferedHistogram]

    @classmethod
    def create(cls, buffer: MetricsBuffer, engines: Sequence[str]) -> "ServingMetrics":
        import prometheus_client as prom

        # registry=None throughout: /metrics reads the multiprocess files, not a registry, and a
        # second worker built in one process (in-process tests) must not clash with the first.
        latency = prom.Histogram(
            "credit_risk_model_seconds", "Model call latency", ["engine", "path"],
            buckets=SECONDS_BUCKETS, registry=None,
        )  # fmt: skip
        return cls(
            buffer=buffer,
            batch_rows=buffer.histogram(
                prom.Histogram(
                    "credit_risk_batch_rows",
                    "Rows per queued (merged) model call",
                    buckets=ROW_BUCKETS,
                    registry=None,
                )
            ),
            batch_requests=buffer.histogram(
                prom.Histogram(
                    "credit_risk_batch_requests",
                    "Requests merged into one queued model call",
                    buckets=ROW_BUCKETS,
                    registry=None,
                )
            ),
            queue_wait=buffer.histogram(
                prom.Histogram(
                    "credit_risk_queue_wait_seconds",
                    "Longest wait in the batch queue before a model call",
                    buckets=SECONDS_BUCKETS,
                    registry=None,
                )
            ),
            model_latency={
                (engine, path): buffer.histogram(latency, engine, path)
                for engine in engines
                for path in ("direct", "batch")
            },
        )

    def observe_batch(self, record: BatchRecord, engine: str) -> None:
        """Queued (merged) calls fill every histogram; a direct light-load call only the model
        latency (path="direct")."""
        if record.direct:
            self.model_latency[engine, "direct"].observe(record.model_s)
        else:
            self.batch_rows.observe(record.rows)
            self.batch_requests.observe(record.requests)
            self.queue_wait.observe(record.max_queue_wait_s)
            self.model_latency[engine, "batch"].observe(record.model_s)
        self.buffer.touch()


@dataclass(frozen=True)
class LoadReadings:
    """Where a worker's load gauges read their values: each a cheap read of live state, taken
    at every metrics flush (about once a second while requests arrive)."""

    admission_lag_s: Callable[[], float]  # the event-loop lag overload control last measured
    admitted_fraction: Callable[[], float]  # the share of new requests it admits (1: all)
    queued_rows: Mapping[str, Callable[[], int]]  # rows waiting in each batcher, by its name
    bulk_bytes_in_flight: Callable[[], int]


class WorkerGauges:
    """The worker's load and identity on /metrics: admission lag and admitted fraction (the
    worst worker's), batcher queue depth and bulk bytes in flight (summed over workers), a
    model-info gauge (1, its labels say what is served) and a counter of worker starts (a
    restarted worker adds one: the counters of dead workers stay in the sum)."""

    def __init__(
        self, buffer: MetricsBuffer, readings: LoadReadings, info: Mapping[str, str]
    ) -> None:
        import prometheus_client as prom

        self._readings = readings
        self._lag = prom.Gauge(
            "credit_risk_admission_lag_seconds",
            "Event-loop lag last measured by overload control: the wait of a request before it "
            "is read (highest among workers)",
            multiprocess_mode="livemax",
            registry=None,
        )
        self._admitted = prom.Gauge(
            "credit_risk_admitted_fraction",
            "Share of new requests overload control admits, 1 when it admits all (lowest "
            "among workers)",
            multiprocess_mode="livemin",
            registry=None,
        )
        queued = prom.Gauge(
            "credit_risk_batch_queue_rows",
            "Rows waiting in the adaptive batcher's queue (summed over workers)",
            ["queue"],
            multiprocess_mode="livesum",
            registry=None,
        )
        self._queued = {name: queued.labels(name) for name in readings.queued_rows}
        self._bulk = prom.Gauge(
            "credit_risk_bulk_bytes_in_flight",
            "Bytes of bulk request bodies held (being read, parsed or scored), summed over workers",
            multiprocess_mode="livesum",
            registry=None,
        )
        self._model_info = prom.Gauge(
            "credit_risk_model_info",
            "The model a worker serves and how (1; the labels carry the facts; 0: what it "
            "served before a models switch)",
            sorted(info),
            multiprocess_mode="livemax",
            registry=None,
        )
        self._info = dict(info)
        self._model_info.labels(**info).set(1)
        prom.Counter(
            "credit_risk_worker_starts", "API worker processes started", registry=None
        ).inc()
        self.set()  # every series exists from the start, idle workers included
        buffer.before_flush(self.set)

    def serving(self, info: Mapping[str, str]) -> None:
        """After a models switch: `info` (the same facts) is what is served now. The series of
        what was served before drops to 0 rather than going away: in multiprocess mode it lives
        on in the worker's file anyway."""
        if dict(info) == self._info:
            return
        self._model_info.labels(**self._info).set(0)
        self._model_info.labels(**info).set(1)
        self._info = dict(info)

    def set(self) -> None:
        readings = self._readings
        self._lag.set(readings.admission_lag_s())
        self._admitted.set(readings.admitted_fraction())
        for name, child in self._queued.items():
            child.set(readings.queued_rows[name]())
        self._bulk.set(readings.bulk_bytes_in_flight())


@dataclass(frozen=True)
class RecordReadings:
    """Where the decision-record metrics read their values (service/records/): counts since
    the worker started, and live state."""

    written: Callable[[], int]  # records in the sink (replayed ones included)
    spooled: Callable[[], int]  # records put in the spool while the sink was down
    dropped: Callable[[], int]  # records lost by the drop policy
    lag_s: Callable[[], float]  # age of the oldest record not yet in the sink or spool
    spool_bytes: Callable[[], int]  # the spool's size (shared by the workers)


class RecordMetrics:
    """Decision records on /metrics: written, spooled and dropped counters (summed over
    workers), the writer's lag (the worst worker's) and the spool's size. Set at every
    metrics flush from the recorder's own counts (the writer thread never touches
    prometheus_client)."""

    def __init__(self, buffer: MetricsBuffer, readings: RecordReadings) -> None:
        import prometheus_client as prom

        self._readings = readings
        # prometheus_client adds the _total suffix: credit_risk_decision_records_written_total
        self._counters = [
            (prom.Counter(f"credit_risk_decision_records_{name}", text, registry=None), read)
            for name, text, read in (
                ("written", "Decision records written to the sink", readings.written),
                ("spooled", "Decision records spooled while the sink was down", readings.spooled),
                ("dropped", "Decision records lost because the spool was full", readings.dropped),
            )
        ]
        self._seen = [0] * len(self._counters)
        self._lag = prom.Gauge(
            "credit_risk_decision_log_lag_seconds",
            "Age of the oldest decision record not yet written (highest among workers)",
            multiprocess_mode="livemax",
            registry=None,
        )
        self._spool = prom.Gauge(
            "credit_risk_decision_spool_bytes",
            "Bytes of decision records waiting in the spool",
            multiprocess_mode="livemax",
            registry=None,
        )
        self.set()
        buffer.before_flush(self.set)

    def set(self) -> None:
        for i, (counter, read) in enumerate(self._counters):
            value = read()
            if value > self._seen[i]:
                counter.inc(value - self._seen[i])
                self._seen[i] = value
        self._lag.set(self._readings.lag_s())
        self._spool.set(self._readings.spool_bytes())


def models_reload_failures() -> Any:
    """credit_risk_models_reload_failures_total: models-file changes not applied (unreadable,
    invalid, or a model that does not load or pass its checks)."""
    import prometheus_client as prom

    return prom.Counter(
        "credit_risk_models_reload_failures",
        "Models-file changes that could not be used (the current models were kept)",
        registry=None,
    )


DELTA_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class ChallengerMetrics:
    """Shadow mode on /metrics: the decision matrix of champion and challenger on the same
    applicants, the challenger's probability minus the champion's, and the shadow rows dropped
    under overload (never scored by the challenger)."""

    def __init__(self, buffer: MetricsBuffer, statuses: Sequence[str]) -> None:
        import prometheus_client as prom

        decisions = prom.Counter(
            "credit_risk_challenger_decisions",
            "Applicants scored by champion and challenger (shadow), by both decisions",
            ["champion_status", "challenger_status"],
            registry=None,
        )
        delta = prom.Histogram(
            "credit_risk_challenger_probability_delta",
            "Challenger's probability of default minus the champion's, per shadowed applicant",
            buckets=DELTA_BUCKETS,
            registry=None,
        )
        dropped = prom.Counter(
            "credit_risk_challenger_dropped_rows",
            "Applicants the challenger did not score in shadow mode (dropped under overload)",
            registry=None,
        )
        self._buffer = buffer
        self._n = len(statuses)
        self._matrix = [buffer.counter(decisions, a, b) for a in statuses for b in statuses]
        self._delta = buffer.histogram(delta)
        self._dropped = buffer.counter(dropped)

    def observe(
        self,
        champion_levels: npt.NDArray[np.int8],
        challenger_levels: npt.NDArray[np.int8],
        delta: npt.NDArray[np.float32],
    ) -> None:
        cells = champion_levels.astype(np.intp) * self._n + challenger_levels
        for counter, count in zip(
            self._matrix, np.bincount(cells, minlength=self._n * self._n).tolist(), strict=True
        ):
            counter.count += count
        self._delta.observe_many(delta)
        self._buffer.touch()

    def dropped(self, rows: int) -> None:
        self._dropped.count += rows
        self._buffer.touch()
