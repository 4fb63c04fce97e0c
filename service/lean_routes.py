"""Lean ASGI front door for the scoring routes.

BentoML's `@bentoml.api` path regenerates a JSON schema, builds OpenTelemetry spans and parses the
body through several layers for every request; for a 6 µs model that is most of the cost. This
middleware answers POST /classify, /classify_batch and /classify_bulk itself, calling the same
`CreditScorer` (same validation, same errors, same answers) the typed API methods call, and
passes every other request (docs, health, metrics, GET, ...) on to BentoML unchanged. The typed
`@bentoml.api` methods stay registered, so the OpenAPI document and Swagger UI describe these
routes exactly; set CREDIT_RISK_LEAN_ROUTES=false to serve them through BentoML instead.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from service.errors import RequestError
from service.scoring import CreditScorer

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[CreditScorer, bytes], Awaitable[bytes]]

JSON = "application/json"
CSV = "text/csv"
JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


async def _classify(scorer: CreditScorer, body: bytes) -> bytes:
    return await scorer.classify_json(body)


async def _classify_batch(scorer: CreditScorer, body: bytes) -> bytes:
    return await scorer.classify_batch_json(body)


async def _classify_bulk(scorer: CreditScorer, body: bytes) -> bytes:
    return await scorer.classify_bulk_json(body)


async def _classify_bulk_csv(scorer: CreditScorer, body: bytes) -> bytes:
    return await scorer.classify_bulk_csv(body)


# path -> {content type -> handler}
ROUTES: dict[str, dict[str, Handler]] = {
    "/classify": {JSON: _classify},
    "/classify_batch": {JSON: _classify_batch},
    "/classify_bulk": {JSON: _classify_bulk, CSV: _classify_bulk_csv},
}


class ScorerHolder:
    """The worker's scorer, set by the service instance once its models are loaded."""

    scorer: CreditScorer | None = None
    info: dict[str, object] = {}


class LeanRoutesMiddleware:
    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scorer = ScorerHolder.scorer
        if scope["type"] == "http" and scope["path"] == "/info" and scope["method"] == "GET":
            await _respond(send, 200, orjson.dumps(ScorerHolder.info), JSON_HEADERS)
            return
        if (
            not self.enabled
            or scorer is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in ROUTES
        ):
            await self.app(scope, receive, send)
            return
        try:
            handler = _handler_for(scope)
            body = await _read_body(scope, receive, scorer.limits.max_body_bytes)
            payload = await _unless_client_gone(handler(scorer, body), receive)
            status, headers = 200, JSON_HEADERS
        except RequestError as error:
            status, payload = error.status, error.body()
            headers = JSON_HEADERS + [
                (k.lower().encode(), v.encode()) for k, v in error.headers.items()
            ]
        except ClientGone:
            return
        except Exception:  # a bug, never the client's fault: log it, answer 500, keep serving
            logger.exception("unexpected error serving %s", scope["path"])
            status, payload = 500, RequestError(500, "internal error").body()
            headers = JSON_HEADERS
        await _respond(send, status, payload, headers)


async def _unless_client_gone(work: Awaitable[bytes], receive: Receive) -> bytes:
    """Score while watching the connection: if the client disconnects first, the scoring is
    cancelled, so a request still queued in the batcher is dropped before it costs a model call
    (the batch it would have joined goes on without it)."""
    task = asyncio.current_task()
    gone = False

    def on_message(watcher: asyncio.Future[Message]) -> None:
        nonlocal gone
        if not watcher.cancelled() and watcher.result()["type"] == "http.disconnect":
            gone = True
            if task is not None:
                task.cancel()

    watcher = asyncio.ensure_future(receive())
    watcher.add_done_callback(on_message)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            raise ClientGone from None
        raise
    finally:
        watcher.remove_done_callback(on_message)
        watcher.cancel()


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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _handler_for(scope: Scope) -> Handler:
    handlers = ROUTES[scope["path"]]
    content_type = (_header(scope, b"content-type") or JSON).split(";")[0].strip().lower()
    handler = handlers.get(content_type)
    if handler is None:
        accepted = ", ".join(handlers)
        raise RequestError(
            415, f"content-type {content_type!r} is not accepted here; use {accepted}"
        )
    return handler


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
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
