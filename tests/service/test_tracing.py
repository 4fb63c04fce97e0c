"""BentoML's `tracing` configuration on the routes the front door answers: one span per request,
under the caller's W3C traceparent, with route, method, status, model and request id, exported
over OTLP/HTTP (the exporter BentoML's config names, installed with the server) to a collector
this test runs on loopback."""

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from tests.contract_cases import CASES, GOOD

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Span:
    trace_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any]


class Collector:
    """An OTLP/HTTP trace receiver: decodes each export with opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                export = ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    for resource in export.resource_spans:
                        for scope in resource.scope_spans:
                            collector.spans.extend(_span(s) for s in scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def of_trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


def _span(span: Any) -> Span:
    values = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value"))
    return Span(span.trace_id.hex(), span.parent_span_id.hex(), span.name, values)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture(scope="module")
def traced_server(
    exported: ExportSummary, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    folder = tmp_path_factory.mktemp("tracing")
    config = folder / "bentoml config.yaml"
    config.write_text(
        "services:\n  credit_risk:\n    tracing:\n      exporter_type: otlp\n"
        "      sample_rate: 0.0\n      otlp:\n        protocol: http\n"
        f"        endpoint: http://127.0.0.1:{collector.port}/v1/traces\n"
    )
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "BENTOML_CONFIG": str(config),
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s, not 5 s
    }
    with served(env, log_path=Path(folder) / "serve.log") as process:
        yield process


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def _wait_for(collector: Collector, trace_ids: list[str]) -> dict[str, list[Span]]:
    """The spans of each trace, once the last one sent has some (bounded wait)."""
    for _ in range(400):
        if collector.of_trace(trace_ids[0]):
            break
        threading.Event().wait(0.05)
    return {trace_id: collector.of_trace(trace_id) for trace_id in trace_ids}


def test_every_route_gives_one_span_under_the_callers_trace(
    traced_server: ServedProcess, collector: Collector
) -> None:
    """Sample rate 0: only the caller's sampled traceparent makes these spans (parent-based)."""
    requests = [
        ("POST", "/classify", orjson.dumps(GOOD), {}, 200),
        *((c.method, c.path, c.body, c.headers, c.status) for c in CASES),
    ]
    sent: list[tuple[str, str, str, int, str, str]] = []
    with httpx.Client(base_url=traced_server.url, timeout=30) as client:
        for index, (method, path, body, headers, status) in enumerate(requests):
            trace_id, parent, traceparent = _traceparent()
            request_id = f"traced-{index}"
            answer = client.request(
                method,
                path,
                content=body,
                headers={
                    "content-type": "application/json",
                    **headers,
                    "traceparent": traceparent,
                    "x-request-id": request_id,
                },
            )
            assert answer.status_code == status, (path, answer.text)
            sent.append((trace_id, parent, method, status, request_id, path))
    spans = _wait_for(collector, [trace_id for trace_id, *_ in reversed(sent)])
    model = httpx.get(f"{traced_server.url}/info").json()["model"]
    for trace_id, parent, method, status, request_id, path in sent:
        [span] = spans[trace_id]  # exactly one
        assert span.parent_span_id == parent, path
        attributes = span.attributes
        assert attributes["http.response.status_code"] == status, path
        assert attributes["http.request.method"] == method, path
        assert attributes["credit_risk.request_id"] == request_id, path
        assert attributes["credit_risk.model"] == model, path
        assert attributes["url.path"] == path.partition("?")[0]
        assert span.name == f"{method} {attributes['http.route']}"


def test_without_a_sampled_parent_rate_zero_sends_nothing(
    traced_server: ServedProcess, collector: Collector
) -> None:
    """An unsampled caller's trace gets no span; a sampled one sent after it does (spans are
    exported in order, so by then the first would have been)."""
    trace_id, parent, _ = _traceparent()
    with httpx.Client(base_url=traced_server.url, timeout=30) as client:
        unsampled = client.post(
            "/classify", json=GOOD, headers={"traceparent": f"00-{trace_id}-{parent}-00"}
        )
        assert unsampled.status_code == 200
        sampled_id, _, traceparent = _traceparent()
        assert (
            client.post("/classify", json=GOOD, headers={"traceparent": traceparent}).status_code
            == 200
        )
    spans = _wait_for(collector, [sampled_id, trace_id])
    assert len(spans[sampled_id]) == 1 and spans[trace_id] == []
