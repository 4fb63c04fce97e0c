"""Metrics counted in process and written in batches equal what per-request writes would give,
under BentoML's own names, labels, help texts and buckets."""

import time

import httpx
import prometheus_client as prom
import pytest
from prometheus_client.samples import Sample

from harness.process import ServedProcess
from service.http.request_metrics import RequestMetrics, ServerLabels
from service.metrics import BufferedHistogram, MetricsBuffer
from tests.contract_cases import GOOD
from tests.metrics_text import metric_total

VALUES = [0.0, 1e-5, 0.0001, 0.00025, 0.0003, 0.004, 0.004, 0.3, 2.5, 7.0, 11.0, 1e9]


def _samples(metric: prom.Histogram) -> list[Sample]:
    (family,) = metric.collect()
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for s in family.samples
        if not s.name.endswith("_created")
    )  # type: ignore[return-value]


def test_buffered_histogram_flush_equals_observing_one_by_one() -> None:
    """Guards the prometheus_client internals the buffer writes through (pinned version)."""
    buckets = (0.0001, 0.00025, 0.004, 0.3, 10.0)
    direct = prom.Histogram("direct_seconds", "h", ["a"], buckets=buckets, registry=None)
    buffered_metric = prom.Histogram("direct_seconds", "h", ["a"], buckets=buckets, registry=None)
    buffered = BufferedHistogram(buffered_metric.labels("x"))
    for value in VALUES:
        direct.labels("x").observe(value)
        buffered.observe(value)
    buffered.flush()
    buffered.flush()  # a second flush with nothing new writes nothing
    assert _samples(buffered_metric) == _samples(direct)


def test_request_metrics_are_defined_like_bentomls() -> None:
    """Same names, types, help texts, label names and buckets as the middleware BentoML 1.4
    puts in front of new-style services (fails when upstream changes them)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    namespace = "bentoml_service"
    buckets = tuple(BentoMLContainer.duration_buckets.get())
    theirs = RunnerTrafficMetricsMiddleware(app=None, namespace=namespace)  # type: ignore[arg-type]
    theirs._setup()
    ours = RequestMetrics(MetricsBuffer(), namespace, buckets, ServerLabels("s", "v", "r"))
    pairs = [
        (ours._duration, theirs.metrics_request_duration),
        (ours._total, theirs.metrics_request_total),
        (ours._in_progress_gauge, theirs.metrics_request_in_progress),
        (ours._last_request_gauge, theirs.metrics_last_request_timestamp),
    ]
    for mine, upstream in pairs:
        assert type(mine) is type(upstream)
        for attribute in ("_name", "_documentation", "_labelnames", "_type"):
            assert getattr(mine, attribute) == getattr(upstream, attribute), attribute
        for attribute in ("_upper_bounds", "_multiprocess_mode"):
            assert getattr(mine, attribute, None) == getattr(upstream, attribute, None)


@pytest.mark.slow
def test_front_door_requests_show_on_bentomls_metrics(server: ServedProcess) -> None:
    def scrape() -> str:
        return httpx.get(f"{server.url}/metrics", timeout=30).text

    labels = {"endpoint": "/classify", "http_response_code": "200"}
    before = metric_total(scrape(), "bentoml_service_request_total", **labels)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(25):
            assert client.post("/classify", json=GOOD).status_code == 200
        assert client.get("/docs.json").status_code == 200  # a route BentoML's app answers
    # A scrape reads the workers' files in no set order, so one taken while a worker writes
    # its once-a-second flush may hold the new count of one metric and the old of another:
    # wait for a scrape with both.
    deadline = time.monotonic() + 10
    while True:
        text = scrape()
        total = metric_total(text, "bentoml_service_request_total", **labels)
        timed = metric_total(text, "bentoml_service_request_duration_seconds_count", **labels)
        if total >= before + 25 and timed == total:
            break
        assert time.monotonic() < deadline, f"/metrics: {total} requests, {timed} timed"
        time.sleep(0.2)
    assert total == before + 25
    # The same label names on a series the front door wrote and one BentoML's middleware wrote.
    ours = _label_names(text, 'endpoint="/classify"')
    theirs = _label_names(text, 'endpoint="/docs.json"')
    assert ours == theirs and "runner_name" in ours


def _label_names(metrics: str, marker: str) -> set[str]:
    for line in metrics.splitlines():
        if line.startswith("bentoml_service_request_total{") and marker in line:
            inside = line[line.index("{") + 1 : line.index("}")]
            return {part.split("=")[0] for part in inside.split('",') if part}
    raise AssertionError(f"no request_total series with {marker}")
