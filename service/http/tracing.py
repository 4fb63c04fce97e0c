"""One OpenTelemetry span per request the front door answers, as BentoML's tracing middleware
makes for the requests it sees: under the caller's W3C `traceparent`, sampled by BentoML's
`tracing` configuration (`sample_rate`, parent-based), exported by its exporter (zipkin, jaeger,
otlp), with the route, method, status, model and request id as attributes. Off (no span, no
cost) when that configuration names no exporter.

The span is the request's current span while it is answered, so log lines carry its trace and
span ids (service/log_format.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Scope

from service.logs import REQUEST_ID

TRACE_HEADERS = (b"traceparent", b"tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Traced:
    """A request's span and the context token that made it current."""

    span: Span
    token: object


class DoorTracing:
    def __init__(
        self, tracer: Tracer, model: str, excluded: Callable[[str], bool] = lambda path: False
    ) -> None:
        self.tracer = tracer
        self.model = model
        self._excluded = excluded  # BentoML's `excluded_urls`
        self._traced: dict[str, bool] = {}  # route -> traced (the routes are few)

    def start(self, scope: Scope, route: str) -> Traced | None:
        """Start the span of a request to `route` (None: the route is not traced)."""
        traced = self._traced.get(route)
        if traced is None:
            traced = self._traced[route] = not self._excluded(route)
        if not traced:
            return None
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in TRACE_HEADERS
        }
        parent: Context | None = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope["method"]
        span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": scope["path"],
                "credit_risk.model": self.model,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        return Traced(span, token)

    def end(self, traced: Traced, status: int) -> None:
        span = traced.span
        if span.is_recording():
            span.set_attribute("http.response.status_code", status)
            request_id = REQUEST_ID.get()
            if request_id is not None:
                span.set_attribute("credit_risk.request_id", request_id)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        span.end()
        context.detach(traced.token)  # type: ignore[arg-type]


def from_bentoml(model: str) -> DoorTracing | None:
    """The door's tracing from BentoML's `tracing` configuration, read in the worker: BentoML's
    tracer provider (sampler, exporter) and excluded URLs, the ones its own middleware uses;
    None when no exporter is configured."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    if not BentoMLContainer.config.tracing.exporter_type.get():
        return None
    provider = BentoMLContainer.tracer_provider.get()
    excluded = BentoMLContainer.tracing_excluded_urls.get()
    return DoorTracing(provider.get_tracer("credit_risk.front_door"), model, excluded.url_disabled)
