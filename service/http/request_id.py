"""Request IDs: the outermost layer of a worker's app.

Every request gets an id: the client's `X-Request-ID` when it is short and plain
(`VALID_ID`: at most 128 of A-Z a-z 0-9 . _ : -), otherwise a new one (this worker's random
prefix and a counter: unique across workers and restarts without a syscall per request). The
id is
- echoed in an `X-Request-ID` header on every answer, whichever layer answered;
- added as `"request_id"` to every error body, in one place (here): the front door's and the
  API-key check's JSON errors get the key spliced in; an error BentoML answers in plain text
  (its 404 and 405) becomes the same JSON shape, `{"error", "details", "request_id"}`;
- in every log line about the request (`service.logs.REQUEST_ID`, read by the log records).
"""

import itertools
import re
import secrets
from collections.abc import Awaitable
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import RequestError
from service.http.asgi import Header
from service.logs import REQUEST_ID

HEADER = b"x-request-id"
VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


class RequestIds:
    """New ids for this worker: `<12 random hex digits>-<counter in hex>`."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}-{next(self._counter):x}"


def incoming_id(scope: Scope) -> str | None:
    """The client's X-Request-ID if it is valid (the first one sent), else None."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("ascii") if VALID_ID.fullmatch(value) else None
    return None


def error_with_id(start: Message, body: bytes, request_id: str) -> bytes:
    """The body of an error response with `request_id` in it; `start` (this layer's own copy of
    the start message) gets the matching content-type and content-length. Header names are
    lower case, as ASGI has them."""
    headers: list[Header] = start["headers"]
    content_type = b""
    for name, value in headers:
        if name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
            break
    if content_type in (b"text/plain", b""):
        text = body.decode("utf-8", "replace").strip() or HTTPStatus(start["status"]).phrase
        body = RequestError(start["status"], text).body()
    elif content_type != b"application/json" or not (body.startswith(b"{") and body.endswith(b"}")):
        return body  # neither plain text nor a compact JSON object: left as it is
    # The id is plain ASCII (VALID_ID or a generated one): spliced in without escaping.
    head = body[:-1] + b"," if body != b"{}" else b"{"
    body = b'%s"request_id":"%s"}' % (head, request_id.encode())
    headers[:] = [(k, v) for k, v in headers if k != b"content-length" and k != b"content-type"]
    headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return body


async def _done() -> None:
    return None


async def _in_order(send: Send, first: Message, second: Message) -> None:
    await send(first)
    await send(second)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_id(scope) or self.ids.new()
        id_header = (HEADER, request_id.encode())
        held: Message | None = None  # an error's start, until its body is known

        # A plain function returning the awaitable to await (the inner send's, on the hot path),
        # not a coroutine of its own: no extra coroutine per message.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal held
            if message["type"] == "http.response.start":
                # A copy: the app's message and headers may be shared (precomputed answers).
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
                if message["status"] >= 400:
                    held = message
                    return _done()
            elif held is not None and message["type"] == "http.response.body":
                start, held = held, None
                body = message.get("body", b"")
                if body and not message.get("more_body", False):
                    message = {**message, "body": error_with_id(start, body, request_id)}
                return _in_order(send, start, message)
            return send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
