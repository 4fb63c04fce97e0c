"""The door's sampling, in process: `sample_rate` of the requests without a parent get a span,
every request under a sampled parent does, none under an unsampled one; exported through the
processor given (BentoML's, in a worker)."""

import secrets

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.http.tracing import DoorTracing, door_tracer

REQUESTS = 4000


def _scope(traceparent: str | None = None) -> dict[str, object]:
    headers = [(b"host", b"door")]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent.encode()))
    return {"method": "POST", "path": "/classify", "headers": headers}


def _exported(rate: float, traceparent_flags: str | None) -> int:
    exporter = InMemorySpanExporter()
    tracer = door_tracer(Resource.create({}), SimpleSpanProcessor(exporter))
    tracing = DoorTracing(tracer, lambda: "model:1", sample_rate=rate)
    for _ in range(REQUESTS):
        parent = None
        if traceparent_flags is not None:
            parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{traceparent_flags}"
        traced = tracing.start(_scope(parent), "/classify")
        if traced is not None:
            tracing.end(traced, 200)
    return len(exporter.get_finished_spans())


@pytest.mark.parametrize("rate", [0.0, 0.05, 1.0])
def test_requests_without_a_parent_are_sampled_at_the_rate(rate: float) -> None:
    expected = rate * REQUESTS
    spread = 4 * (REQUESTS * rate * (1 - rate)) ** 0.5  # four standard deviations
    assert abs(_exported(rate, None) - expected) <= spread


def test_the_callers_decision_wins_over_the_rate() -> None:
    assert _exported(0.0, "01") == REQUESTS
    assert _exported(1.0, "00") == 0


def test_each_span_names_the_champion_served_when_it_starts() -> None:
    """A models switch changes the champion: the spans after it name the new one."""
    exporter = InMemorySpanExporter()
    served = ["model:1"]
    tracer = door_tracer(Resource.create({}), SimpleSpanProcessor(exporter))
    tracing = DoorTracing(tracer, lambda: served[0])
    for tag in ("model:1", "model:2"):
        served[0] = tag
        traced = tracing.start(_scope(), "/classify")
        assert traced is not None
        tracing.end(traced, 200)
    spans = exporter.get_finished_spans()
    assert [span.attributes["credit_risk.model"] for span in spans] == ["model:1", "model:2"]
