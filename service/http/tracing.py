"""One OpenTelemetry span per request the front door answers, as BentoML's tracing middleware
makes for the requests it sees: under the caller's W3C `traceparent`, sampled by BentoML's
`tracing` configuration (`sample_rate` for a request without a parent, the parent's decision
otherwise), exported by its exporter (zipkin, jaeger, otlp), with the route, method, status,
model and request id as attributes. Off (no span, no cost) when that configuration names no
exporter. An unsampled request gets no span (BentoML's middleware records one anyway).

The span is the request's current span while it is answered, so log lines carry its trace and
span ids (service/log_format.py).
"""

from collections.abc import Callable
from dataclasses import dataclass
from random import random

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Scope

from service.logs import REQUEST_ID

TRACE_HEADERS = (b"traceparent", b"tracestate")
TRACER_NAME = "credit_risk.front_door"
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Traced:
    """A request's span and the context token that made it current."""

    span: Span
    token: object


class DoorTracing:
    """`tracer` must sample every root span it is asked for (`door_tracer`): the draw for a
    request without a parent is made here, at `sample_rate`, before any span is made."""

    def __init__(
        self,
        tracer: Tracer,
        model: Callable[[], str],
        excluded: Callable[[str], bool] = lambda path: False,
        sample_rate: float = 1.0,
    ) -> None:
        self.tracer = tracer
        self.model = model
        self.sample_rate = sample_rate
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
        parent: Context | None = None
        if carrier:
            parent = _PROPAGATOR.extract(carrier)
            if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
                return None  # the caller's decision (an invalid traceparent: not sampled)
        elif random() >= self.sample_rate:
            return None
        method = scope["method"]
        span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": scope["path"],
                "credit_risk.model": self.model(),  # the champion served now
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        return Traced(span, token)

    def end(self, traced: Traced, status: int) -> None:
        span = traced.span
        span.set_attribute("http.response.status_code", status)
        request_id = REQUEST_ID.get()
        if request_id is not None:
            span.set_attribute("credit_risk.request_id", request_id)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        context.detach(traced.token)  # type: ignore[arg-type]


def from_bentoml(model: Callable[[], str]) -> DoorTracing | None:
    """The door's tracing from BentoML's `tracing` configuration, read in the worker: its
    sample rate and excluded URLs, spans exported by the span processor of BentoML's tracer
    provider (its exporter); None when no exporter is configured."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    config = BentoMLContainer.config.tracing
    if not config.exporter_type.get():
        return None
    bentoml_provider = BentoMLContainer.tracer_provider.get()
    excluded = BentoMLContainer.tracing_excluded_urls.get()
    sample_rate = float(config.sample_rate.get() or 0.0)
    processor = getattr(bentoml_provider, "_active_span_processor", None)
    if processor is None:  # BentoML's tracer and sampler (same exports, slower)
        tracer = bentoml_provider.get_tracer(TRACER_NAME)
        return DoorTracing(tracer, model, excluded.url_disabled)
    tracer = door_tracer(bentoml_provider.resource, processor)
    return DoorTracing(tracer, model, excluded.url_disabled, sample_rate)


def door_tracer(resource: Resource, processor: SpanProcessor) -> Tracer:
    """A tracer that samples the root spans it is asked for and follows a remote parent's
    decision, exporting through `processor`. BentoML's own sampler makes and *records* a span
    for every request, sampled or not (~50 us each, measured in process: 30% of /classify's
    throughput at sample rate 0.01, bench/tracing.py); with the draw made first
    (`DoorTracing.start`) an unsampled request costs one random number. BentoML's span processor
    (its exporter) is reached through the SDK provider's `_active_span_processor`."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), resource=resource)
    provider.add_span_processor(processor)
    return provider.get_tracer(TRACER_NAME)
