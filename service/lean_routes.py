"""Lean ASGI front door for the scoring routes.

BentoML's `@bentoml.api` path regenerates a JSON schema, builds OpenTelemetry spans and parses the
body through several layers for every request; for a 6 µs model that is most of the cost. This
middleware answers POST /classify, /classify_batch and /classify_bulk itself, calling the same
`CreditScorer` (same validation, same errors, same answers) the typed API methods call, and
passes every other request (docs, health, metrics, GET, ...) on to BentoML unchanged. The typed
`@bentoml.api` methods stay registered, so the OpenAPI document and Swagger UI describe these
routes exactly; set CREDIT_RISK_LEAN_ROUTES=false to serve the JSON bodies through BentoML
instead (CSV and Arrow bulk uploads are always read here: BentoML's typed route cannot).
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from runners.batcher import AdaptiveBatcher
from service.arrow_io import ARROW_FILE, ARROW_STREAM
from service.errors import RequestError
from service.scoring import CSV, JSON, RETRY_AFTER_S, CreditScorer

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[bytes], Awaitable[bytes]]  # body in, answer body out

Header = tuple[bytes, bytes]
JSON_HEADERS: list[Header] = [(b"content-type", b"application/json")]
WATCH_AFTER_S = 0.005  # a request pending this long (up to twice) gets its connection watched
CLIENT_CLOSED = 499  # nginx's "client closed request": shows in BentoML's request metrics


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


BULK_ROUTE = "/classify_bulk"  # the other routes' rows go through the batcher

UPLOADS = (CSV, ARROW_STREAM, ARROW_FILE)  # bulk bodies only this middleware can read

# path -> the body content types it reads
ROUTES: dict[str, tuple[str, ...]] = {
    "/classify": (JSON,),
    "/classify_batch": (JSON,),
    BULK_ROUTE: (JSON, *UPLOADS),
}


class ScorerHolder:
    """The worker's scorer, set by the service instance once its models are loaded."""

    scorer: CreditScorer | None = None
    batcher: AdaptiveBatcher | None = None  # to refuse before parsing when it is saturated
    info: dict[str, object] = {}


class LeanRoutesMiddleware:
    def __init__(
        self, app: ASGIApp, enabled: bool = True, max_bulk_bytes_in_flight: int = 16 << 20
    ) -> None:
        self.app = app
        self.enabled = enabled
        self.disconnects = DisconnectWatch()
        self.max_bulk_bytes_in_flight = max_bulk_bytes_in_flight
        self.bulk_bytes_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scorer = ScorerHolder.scorer
        if scope["type"] == "http" and scope["path"] == "/info" and scope["method"] == "GET":
            await _respond(send, 200, orjson.dumps(ScorerHolder.info), JSON_HEADERS)
            return
        if (
            scorer is None
            or scope["type"] != "http"
            or scope["path"] not in ROUTES
            or not (self.enabled or _is_upload(scope))
        ):
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self._not_post(scope, receive, send)
            return
        try:
            handler, headers = _handler_for(scope, scorer)
            if scope["path"] == BULK_ROUTE:
                payload = await self._bulk(scope, receive, scorer, handler)
            else:
                _refuse_if_saturated()
                body = await _read_body(scope, receive, scorer.limits.max_body_bytes)
                payload = await self.disconnects.guard(handler(body), receive)
            status = 200
        except RequestError as error:
            status, payload = error.status, error.body()
            headers = JSON_HEADERS + [
                (k.lower().encode(), v.encode()) for k, v in error.headers.items()
            ]
        except ClientGone:
            # Nothing reaches the client (the server drops sends after a disconnect), but the
            # response must still be "sent": BentoML's timeout middleware otherwise waits out
            # request_timeout_s for its start, and its metrics count requests as they answer.
            status, payload, headers = CLIENT_CLOSED, b"", []
        except Exception:  # a bug, never the client's fault: log it, answer 500, keep serving
            logger.exception("unexpected error serving %s", scope["path"])
            status, payload = 500, RequestError(500, "internal error").body()
            headers = JSON_HEADERS
        await _respond(send, status, payload, headers)

    async def _not_post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """405 in the same JSON shape as every other client error (CORS preflights and HEAD
        go on to BentoML)."""
        if scope["method"] in ("OPTIONS", "HEAD"):
            await self.app(scope, receive, send)
            return
        error = RequestError(405, f"method {scope['method']} is not allowed here; use POST")
        await _respond(send, 405, error.body(), [*JSON_HEADERS, (b"allow", b"POST")])

    async def _bulk(
        self, scope: Scope, receive: Receive, scorer: CreditScorer, handler: Handler
    ) -> bytes:
        """Bulk requests skip the batcher's bounded queue: they wait for the worker's one bulk
        thread, each holding its parsed body. So the body bytes a worker holds are bounded here,
        before a body is read (a chunked body counts as the largest allowed)."""
        size = _content_length(scope) or scorer.limits.max_body_bytes
        held = self.bulk_bytes_in_flight
        if held and held + size > self.max_bulk_bytes_in_flight:
            raise RequestError(
                503,
                f"{held} bytes of bulk requests in progress in this worker; this one "
                f"({size} bytes) would pass the limit of {self.max_bulk_bytes_in_flight}",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        self.bulk_bytes_in_flight += size
        try:
            body = await _read_body(scope, receive, scorer.limits.max_body_bytes)
            return await self.disconnects.guard(handler(body), receive)
        finally:
            self.bulk_bytes_in_flight -= size


class _Watched:
    """One request's scoring task and its `receive`; once its body has been read, the only
    message that can come is http.disconnect, which cancels the task."""

    __slots__ = ("gone", "receive", "stopped", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.gone = False
        self.stopped = False  # the answer is ready: a late disconnect must not cancel its send
        self.watcher: asyncio.Future[Message] | None = None

    def start(self) -> None:
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._on_message)

    def _on_message(self, watcher: asyncio.Future[Message]) -> None:
        if self.stopped or watcher.cancelled() or watcher.exception() is not None:
            return
        if watcher.result()["type"] == "http.disconnect":
            self.gone = True
            self.task.cancel()

    def stop(self) -> None:
        self.stopped = True
        if self.watcher is not None:
            self.watcher.remove_done_callback(self._on_message)
            self.watcher.cancel()


class DisconnectWatch:
    """Cancels the scoring of a request whose client has gone, so a request still queued in the
    batcher is dropped before it costs a model call (the batch it would have joined goes on
    without it).

    Watching a connection takes a task awaiting the ASGI `receive()`, ~10 µs: more than the
    model call for one applicant, so it is spent only on requests that keep waiting. A request
    answered within its first loop tick (the batcher's direct path) pays for one cancelled loop
    callback; one still pending then joins a list, and a single loop timer, running every
    `interval_s` while requests wait, starts watchers for those it already saw pending at its
    previous run. So watching begins after 1-2 intervals of waiting, and a request answered
    sooner (nearly all of them, merged or not) never pays for it. Measured in
    tests/reliability/test_disconnect.py: ~2 µs per request, against ~5-8 µs for a watcher task
    per request.
    """

    def __init__(self, interval_s: float = WATCH_AFTER_S) -> None:
        self.interval_s = interval_s
        self._new: list[_Watched] = []  # pending for a tick, registered since the last sweep
        self._aged: list[_Watched] = []  # pending at the last sweep
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def guard(self, work: Awaitable[bytes], receive: Receive) -> bytes:
        """The result of `work`; raises ClientGone if the client disconnected first."""
        task = asyncio.current_task()
        assert task is not None
        watched = _Watched(task, receive)
        loop = asyncio.get_running_loop()
        register = loop.call_soon(self._register, watched, loop)
        try:
            return await work
        except asyncio.CancelledError:
            if watched.gone:
                task.uncancel()
                raise ClientGone from None
            raise
        finally:
            register.cancel()
            watched.stop()

    def _register(self, watched: _Watched, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweep_loop is not loop:  # a new event loop (tests): forget the old loop's work
            self._new, self._aged, self._sweep = [], [], None
            self._sweep_loop = loop
        self._new.append(watched)
        if self._sweep is None:
            self._sweep = loop.call_later(self.interval_s, self._run_sweep, loop)

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        for watched in self._aged:
            if not watched.stopped:
                watched.start()
        self._aged = [watched for watched in self._new if not watched.stopped]
        self._new = []
        self._sweep = None
        if self._aged:
            self._sweep = loop.call_later(self.interval_s, self._run_sweep, loop)


async def _respond(
    send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _refuse_if_saturated() -> None:
    """503 before the body is read or parsed: a request the batcher would refuse anyway must
    not cost the CPU that the admitted requests need."""
    batcher = ScorerHolder.batcher
    if batcher is not None:
        reason = batcher.saturated()
        if reason is not None:
            raise RequestError(503, reason, headers={"Retry-After": RETRY_AFTER_S})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _content_type(scope: Scope) -> str:
    return (_header(scope, b"content-type") or JSON).split(";")[0].strip().lower()


def _is_upload(scope: Scope) -> bool:
    """A CSV or Arrow bulk body: only this middleware reads those, so it serves them even when
    the JSON routes go through BentoML's typed pipeline (CREDIT_RISK_LEAN_ROUTES=false)."""
    return scope["path"] == BULK_ROUTE and _content_type(scope) in UPLOADS


def _handler_for(scope: Scope, scorer: CreditScorer) -> tuple[Handler, list[Header]]:
    """The scorer call for this route and body type, and the answer's headers."""
    path = scope["path"]
    content_type = _content_type(scope)
    if content_type not in ROUTES[path]:
        accepted = ", ".join(ROUTES[path])
        raise RequestError(
            415, f"content-type {content_type!r} is not accepted here; use {accepted}"
        )
    if path == "/classify":
        return scorer.classify_json, JSON_HEADERS
    if path == "/classify_batch":
        return scorer.classify_batch_json, JSON_HEADERS
    answer_type = ARROW_STREAM if ARROW_STREAM in (_header(scope, b"accept") or "") else JSON
    handler = functools.partial(
        scorer.classify_bulk, content_type=content_type, answer_type=answer_type
    )
    return handler, [(b"content-type", answer_type.encode())]


def _content_length(scope: Scope) -> int | None:
    declared = _header(scope, b"content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise RequestError(413, f"body has {declared} bytes, over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
