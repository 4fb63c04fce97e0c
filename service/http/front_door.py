"""The outermost ASGI app of an API worker: the routes in its table are answered here, in full;
every other request (Swagger, /docs.json, /livez, /readyz, /metrics, CORS preflights) goes to
BentoML's app unchanged.

Answering here, in front of BentoML's middleware chain (request metrics, tracing, timeout,
concurrency limit, error middleware), is what makes a one-applicant request cheap; what those
layers did for these routes is done here the lean way: request metrics counted in process under
BentoML's names (`request_metrics.py`), the request timeout (`timeout.py`) and max concurrency
(`concurrency.py`) with BentoML's settings, overload refused early (`admission.py`, the batcher's
queue bound, bulk bytes in flight), every failure answered in one JSON shape (`responses.py`),
disconnected clients dropped (`disconnect.py`), SIGTERM drained (`drain.py`).

Invariant: every request that reaches `_serve` gets exactly one response (an answer, a JSON
error, or 499 with no body when its client has gone) and one metrics observation.
"""

import time
from asyncio import CancelledError, Task, current_task, get_running_loop
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import RequestError, overloaded
from service.http.access_log import log_access
from service.http.admission import Admission
from service.http.asgi import Header, request_head, respond
from service.http.body import ClientGone, read_body
from service.http.concurrency import ConcurrencyLimit
from service.http.disconnect import DisconnectWatch
from service.http.drain import Drain
from service.http.media import JSON
from service.http.request_metrics import RequestMetrics
from service.http.responses import CLIENT_CLOSED, as_request_error, error_headers
from service.http.routes import Answer, Call, Route, RouteTable
from service.http.timeout import RequestDeadlines
from service.http.tracing import DoorTracing
from service.records.context import ROUTE

PASSED_ON_METHODS = ("HEAD", "OPTIONS")  # CORS preflights and HEAD: BentoML's app answers


@dataclass(frozen=True)
class DoorLimits:
    max_body_bytes: int
    max_bulk_bytes_in_flight: int
    retry_after_s: int
    request_timeout_s: float
    max_concurrency: int  # this worker's share
    access_log: bool = False  # an access line per request (access_log.py)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the door until `wrap` gives it BentoML's (in-process tests use this)."""
    await respond(send, 404, RequestError(404, "no such route").body(), [])


class FrontDoor:
    def __init__(self, limits: DoorLimits, drain: Drain, admission: Admission) -> None:
        self.limits = limits
        self.drain = drain
        self.admission = admission
        self.app: ASGIApp = _not_found
        self.routes = RouteTable({})
        self.metrics: RequestMetrics | None = None
        self.disconnects = DisconnectWatch()
        self.bulk_bytes_in_flight = 0
        self.deadlines = RequestDeadlines(limits.request_timeout_s)
        self.concurrency = ConcurrencyLimit(limits.max_concurrency)
        self.tracing: DoorTracing | None = None

    def wrap(self, app: ASGIApp) -> "FrontDoor":
        """Stand in front of `app` (BentoML's app for this worker)."""
        self.app = app
        return self

    def open(
        self,
        routes: RouteTable,
        metrics: RequestMetrics | None,
        tracing: DoorTracing | None = None,
    ) -> None:
        """Start answering `routes` (the worker's models are loaded), with a span per request
        when `tracing`."""
        self.metrics = metrics
        self.tracing = tracing
        self.routes = routes

    @property
    def ready(self) -> bool:
        return bool(self.routes.routes) and not self.drain.draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.routes.find(scope["path"])
            if found is not None and scope["method"] not in PASSED_ON_METHODS:
                token = ROUTE.set(found[0])  # names the route in decision records
                try:
                    await self._serve(*found, scope, receive, send)
                finally:
                    ROUTE.reset(token)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, path: str, route: Route, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """`path`: the route's name in the metrics (a fallback's prefix, not the raw path)."""
        started = time.perf_counter()
        metrics = self.metrics
        if metrics is not None:
            metrics.in_progress[path] += 1
        headers: list[Header]
        tracing = self.tracing
        traced = tracing.start(scope, path) if tracing is not None else None
        concurrency = self.concurrency
        deadlines = self.deadlines
        # The deadline and the disconnect watch are kept here, around the one await of the
        # request's work, not as coroutine layers of their own (each layer costs every request
        # a coroutine and a frame on every resumption).
        task = current_task()
        assert task is not None
        try:
            concurrency.enter()
            deadlines.enter(task, get_running_loop())
            try:
                body, headers = await self._answer(route, scope, receive, task)
            except CancelledError:
                timeout = deadlines.timeout_error(task)
                if timeout is None:
                    raise  # cancelled for another reason (the server stopping)
                raise timeout from None
            finally:
                deadlines.leave(task)
                concurrency.leave()
            status = 200
        except ClientGone:
            # Nothing reaches a client that has gone; the response still ends the request.
            status, body, headers = CLIENT_CLOSED, b"", []
        except Exception as raised:
            error = as_request_error(raised, path)
            status, body = error.status, error.body()
            headers = error_headers(error, self.limits.retry_after_s, route.allow)
            del error  # its traceback holds this frame: kept, every error would be a GC cycle
        if self.drain.draining or status == 413:
            # 413: the rest of the body is not wanted; uvicorn closes instead of reading it.
            headers.append((b"connection", b"close"))
        await respond(send, status, body, headers)
        if metrics is not None:
            metrics.in_progress[path] -= 1
            metrics.observe(path, status, time.perf_counter() - started)
        if self.limits.access_log:
            log_access(scope, status, len(body), time.perf_counter() - started)
        if traced is not None:
            tracing.end(traced, status)  # type: ignore[union-attr]

    async def _answer(
        self, route: Route, scope: Scope, receive: Receive, task: Task[Any]
    ) -> tuple[bytes, list[Header]]:
        method = scope["method"]
        if method not in route.methods:
            raise RequestError(405, f"method {method} is not allowed here; use {route.allow}")
        if method == "GET":
            return _content(await route.handler(Call(b"", "", "", scope["query_string"])))
        media, declared, accept = request_head(scope, JSON)
        if media not in route.media_types:
            accepted = ", ".join(route.media_types)
            raise RequestError(415, f"content-type {media!r} is not accepted here; use {accepted}")
        self.admission.check(route.refusal_reason)
        if route.bulk:
            return await self._bulk(route, scope, receive, (media, declared, accept))
        body = await read_body(receive, declared, self.limits.max_body_bytes)
        call = Call(body, media, accept, scope["query_string"], scope["headers"])
        # DisconnectWatch.guard, inline (see _serve).
        watched = self.disconnects.watch(task, receive, get_running_loop())
        try:
            answer = await route.handler(call)
        except CancelledError:
            gone = watched.gone_error()
            if gone is None:
                raise
            raise gone from None
        finally:
            watched.stop()
        return _content(answer)

    async def _bulk(
        self, route: Route, scope: Scope, receive: Receive, head: tuple[str, int | None, str]
    ) -> tuple[bytes, list[Header]]:
        """Bulk requests wait for the worker's one bulk thread, each holding its parsed body,
        outside the batcher's bounded queue: so the body bytes a worker holds are bounded here,
        before a body is read (a chunked body counts as the largest allowed). One request is
        always admitted when no other is in progress."""
        media, declared, accept = head
        limit = self.limits.max_body_bytes
        size = min(declared or limit, limit)
        held = self.bulk_bytes_in_flight
        if held and held + size > self.limits.max_bulk_bytes_in_flight:
            raise overloaded(
                f"{held} bytes of bulk requests in progress in this worker; this one "
                f"({size} bytes) would pass the limit of {self.limits.max_bulk_bytes_in_flight}"
            )
        self.bulk_bytes_in_flight += size
        try:
            body = await read_body(receive, declared, limit)
            call = Call(body, media, accept, scope["query_string"], scope["headers"])
            return _content(await self.disconnects.guard(route.handler(call), receive))
        finally:
            self.bulk_bytes_in_flight -= size


JSON_TYPE: Header = (b"content-type", JSON.encode())


def _content(answer: Answer) -> tuple[bytes, list[Header]]:
    body, media_type, headers = answer
    if media_type == JSON and not headers:  # nearly every answer
        return body, [JSON_TYPE]
    return body, [(b"content-type", media_type.encode()), *headers]
