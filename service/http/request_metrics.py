"""BentoML's HTTP request metrics for the routes the front door serves itself.

Requests the front door answers never reach BentoML's traffic-metrics middleware, so they are
counted here under BentoML's own metric names, labels, help texts and duration buckets (those
of `RunnerTrafficMetricsMiddleware`, which BentoML 1.4 installs for new-style services): an
operator's dashboards and alerts see one set of series whichever layer answered. The counts go
through the worker's `MetricsBuffer` (written once a second, not per request).

The definitions are BentoML's (bentoml/_internal/server/http/instruments.py, pinned version);
tests/service/test_metrics.py fails if upstream changes them.
"""

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from service.metrics import BufferedHistogram, MetricsBuffer

REQUEST_LABELS = (
    "endpoint", "service_name", "service_version", "http_response_code", "runner_name",
)  # fmt: skip
IN_PROGRESS_LABELS = ("endpoint", "service_name", "service_version", "runner_name")
LAST_REQUEST_LABELS = ("service_name", "service_version", "runner_name")


@dataclass(frozen=True)
class ServerLabels:
    """The label values BentoML puts on every request series of this server."""

    service_name: str  # BentoML's server_context.bento_name
    service_version: str  # server_context.bento_version
    runner_name: str  # server_context.service_name


def bentoml_metrics_config() -> tuple[bool, str, tuple[float, ...], ServerLabels]:
    """Whether BentoML's request metrics are on, their namespace and duration buckets, and this
    worker's label values, from BentoML's configuration (read in the worker)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.context import server_context

    config = BentoMLContainer.api_server_config.metrics
    labels = ServerLabels(
        service_name=str(server_context.bento_name),
        service_version=str(server_context.bento_version),
        runner_name=str(server_context.service_name),
    )
    return (
        bool(config.enabled.get()),
        str(config.namespace.get()),
        tuple(BentoMLContainer.duration_buckets.get()),
        labels,
    )


class RequestMetrics:
    def __init__(
        self,
        buffer: MetricsBuffer,
        namespace: str,
        buckets: tuple[float, ...],
        labels: ServerLabels,
    ) -> None:
        import prometheus_client as prom

        # registry=None: BentoML's middleware registers the same names in the default registry
        # for the routes it serves; in multiprocess mode both write to the same series.
        self._duration = prom.Histogram(
            "request_duration_seconds",
            "runner RPC duration in seconds",
            REQUEST_LABELS,
            namespace=namespace,
            buckets=buckets,
            registry=None,
        )
        self._total = prom.Counter(
            "request_total", "Total number of runner RPC", REQUEST_LABELS,
            namespace=namespace, registry=None,
        )  # fmt: skip
        self._in_progress_gauge = prom.Gauge(
            "request_in_progress",
            "Total number of runner RPC in progress now",
            IN_PROGRESS_LABELS,
            namespace=namespace,
            multiprocess_mode="livesum",
            registry=None,
        )
        self._last_request_gauge = prom.Gauge(
            "last_request_timestamp_seconds",
            "Timestamp of the last received request",
            LAST_REQUEST_LABELS,
            namespace=namespace,
            registry=None,
        )
        self._buffer = buffer
        self._labels = labels
        self._series: dict[tuple[str, int], tuple[BufferedHistogram, Any]] = {}
        self.in_progress: Counter[str] = Counter()  # by endpoint, kept by the front door
        self._last_request: float | None = None  # perf_counter() of the last answer
        buffer.before_flush(self._set_gauges)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """One answered request (called after its response was sent)."""
        series = self._series.get((endpoint, status))
        if series is None:
            series = self._series[endpoint, status] = self._new_series(endpoint, status)
        duration, total = series
        duration.observe(seconds)
        total.count += 1
        self._last_request = time.perf_counter()
        self._buffer.touch()

    def _new_series(self, endpoint: str, status: int) -> tuple[BufferedHistogram, Any]:
        labels = (
            endpoint, self._labels.service_name, self._labels.service_version, status,
            self._labels.runner_name,
        )  # fmt: skip
        return (
            self._buffer.histogram(self._duration, *labels),
            self._buffer.counter(self._total, *labels),
        )

    def _set_gauges(self) -> None:
        server = (self._labels.service_name, self._labels.service_version)
        for endpoint, count in self.in_progress.items():
            self._in_progress_gauge.labels(endpoint, *server, self._labels.runner_name).set(count)
        if self._last_request is not None:
            at = time.time() - (time.perf_counter() - self._last_request)
            self._last_request_gauge.labels(*server, self._labels.runner_name).set(at)
            self._last_request = None
