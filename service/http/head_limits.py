"""Limits on what a client may cost before its request reaches the app: head size, header
count, and the time to send a head and a body; and the parser's own refusals in the one error
shape.

uvicorn's httptools protocol puts no bound on a request head: it feeds every byte it reads to
the parser, which holds an unterminated header in memory and copies it as it grows (a 64 MB
header held ~64 MB and took 7.9 s to parse), and a connection that sends a head or a body
slowly, or nothing at all, stays open for ever. `guarded()` subclasses the worker's protocol
class so that

- a head whose bytes pass `max_head_bytes` gets 431 and the connection is closed: the bytes
  past the limit are never parsed (the count starts at a connection's first byte and again when
  a request's body is complete; a head pipelined behind a request in the same read is counted
  from the next read);
- a head with more than `max_headers` fields gets 431 (the byte limit already bounds its cost);
- a head not complete within `head_timeout_s` (from the connection's start, or from the first
  byte of a later head) gets 408; a new connection that sent nothing is closed silently;
- a body not complete within `body_timeout_s` of its head gets 408 while unanswered (the app's
  `receive` sees a disconnect), or is closed if the app has answered already;
- a head the parser refuses gets 400 as JSON, `{"error", "details", "request_id"}`, with an
  `X-Request-ID` (the client's, when its header was read and valid), and the warning uvicorn
  logs for each becomes at most one line per `LOG_INTERVAL_S` per kind, counting the rest.

Every such answer carries `Connection: close` and the connection is closed after it.

Cost on the hot path: a request whose head and body arrive in one read adds one length
comparison, two attribute writes and one attribute test per read; no timer is armed for it.
Deadlines are watched by one sweep per worker (`Deadlines`), which only holds connections
that are mid-head or mid-body after a read; connections are registered, never timers.
"""

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.request_id import RequestIds, incoming_id

logger = logging.getLogger("credit_risk")

LOG_INTERVAL_S = 10.0
HEAD, BODY = 1, 2  # what a watched connection is waiting for


@dataclass(frozen=True)
class HeadLimits:
    max_head_bytes: int
    max_headers: int
    head_timeout_s: float
    body_timeout_s: float


class RateLimitedLog:
    """One warning per `interval_s` at most; the next one says how many were not written."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._next = float("-inf")
        self.suppressed = 0

    def warning(self, message: str) -> bool:
        """Log `message` unless one was logged less than `interval_s` ago; True if logged."""
        now = self._clock()
        if now < self._next:
            self.suppressed += 1
            return False
        more = f" ({self.suppressed} more since the last such line)" if self.suppressed else ""
        logger.warning("%s%s", message, more)
        self.suppressed = 0
        self._next = now + self.interval_s
        return True


class Deadlines:
    """The deadlines of one worker's connections that are mid-head or mid-body, checked by one
    sweep every `tick_s` (a deadline is met within one tick of its time)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tick_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.loop = loop
        self.tick_s = tick_s
        self.clock = clock or loop.time
        self._waiting: dict[Any, float] = {}  # protocol -> deadline
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def watch(self, protocol: Any, seconds: float) -> None:
        self._waiting[protocol] = self.clock() + seconds
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick_s, self._tick)

    def forget(self, protocol: Any) -> None:
        self._waiting.pop(protocol, None)

    def sweep(self) -> int:
        """Tell every connection whose deadline has passed; how many there were."""
        now = self.clock()
        late = [protocol for protocol, deadline in self._waiting.items() if deadline <= now]
        for protocol in late:
            del self._waiting[protocol]
            protocol.deadline_passed()
        return len(late)

    def _tick(self) -> None:
        self._timer = None
        self.sweep()
        if self._waiting:
            self._timer = self.loop.call_later(self.tick_s, self._tick)


class Refused(Exception):
    """Raised in a parser callback: the head breaks a limit (answered with `status`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 error response in the app's error shape, closing the connection."""
    body = orjson.dumps({"error": message, "details": [], "request_id": request_id})
    reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason.get(status, b"Error")),
            b"content-type: application/json\r\n",
            b"x-request-id: %s\r\n" % request_id.encode(),
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


@dataclass
class Guard:
    """What every guarded connection of a worker shares."""

    limits: HeadLimits
    ids: RequestIds
    deadlines: Deadlines | None = None  # made on the first connection (needs the running loop)
    logs: dict[int, RateLimitedLog] | None = None

    def deadlines_for(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        if self.deadlines is None or self.deadlines.loop is not loop:
            tick = min(self.limits.head_timeout_s, self.limits.body_timeout_s) / 4
            self.deadlines = Deadlines(loop, max(0.05, min(tick, 1.0)))
        return self.deadlines

    def warn(self, status: int, message: str) -> None:
        if self.logs is None:
            self.logs = {}
        log = self.logs.get(status)
        if log is None:
            log = self.logs[status] = RateLimitedLog(LOG_INTERVAL_S)
        log.warning(message)


def guarded(protocol_class: type[asyncio.Protocol], guard: Guard) -> type[asyncio.Protocol]:
    """`protocol_class` (uvicorn's httptools protocol, or a subclass) under `guard`'s limits.
    Another protocol class (h11) is returned unchanged: uvicorn bounds its heads itself
    (`h11_max_incomplete_event_size`), but not the time to send them."""
    if not issubclass(protocol_class, HttpToolsProtocol):
        logger.warning(
            "HTTP protocol %s: request heads are bounded by its own limits only "
            "(no header-count limit, no head or body timeout)",
            protocol_class.__name__,
        )
        return protocol_class
    limits = guard.limits
    max_head_bytes, max_headers = limits.max_head_bytes, limits.max_headers
    # The parent's callbacks, called directly: cheaper than super() once per request.
    parent_headers_complete = protocol_class.on_headers_complete
    parent_message_complete = protocol_class.on_message_complete

    class Guarded(protocol_class):  # type: ignore[valid-type, misc]
        _in_head = True  # the next bytes read belong to a request head
        _head_bytes = 0
        _waiting_for = 0  # HEAD or BODY while registered with the deadlines, else 0
        _deadlines: Deadlines

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._deadlines = guard.deadlines_for(self.loop)
            self._waiting_for = HEAD
            self._deadlines.watch(self, limits.head_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._waiting_for:
                self._waiting_for = 0
                self._deadlines.forget(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                if len(data) > max_head_bytes - self._head_bytes:
                    self._feed_bounded(data)
                    return
                self._head_bytes += len(data)
            if self.timeout_keep_alive_task is not None:
                self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                self._feed_failed()
                return
            self._watch_partial()

        def _feed_bounded(self, data: bytes) -> None:
            """The slow path: a read that may carry a head past the limit, fed in slices so
            that no byte of a head past `max_head_bytes` reaches the parser."""
            view = memoryview(data)
            while view:
                if self._in_head:
                    room = max_head_bytes - self._head_bytes
                    if room <= 0:
                        self._refuse(431, f"request head over the limit of {max_head_bytes} bytes")
                        return
                    piece, view = view[:room], view[room:]
                    self._head_bytes += len(piece)
                else:
                    piece, view = view, view[len(view) :]
                self._feed(bytes(piece))
                if self.transport.is_closing():
                    return
            self._watch_partial()

        def _feed(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                self._feed_failed()

        def _feed_failed(self) -> None:
            """In an `except` of `feed_data`: what uvicorn does for an upgrade; our answer
            for a head we refuse or the parser cannot read."""
            error = sys.exc_info()[1]
            if isinstance(error, httptools.HttpParserUpgrade):
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            refused = error.__context__ if error is not None else None
            if isinstance(refused, Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._refuse(400, "malformed HTTP request", type(error).__name__)

        def _watch_partial(self) -> None:
            """After a read: a request left mid-body or mid-head gets its deadline."""
            if not self._waiting_for:
                if not self._in_head:
                    self._wait(BODY, limits.body_timeout_s)
                elif self._head_bytes:
                    self._wait(HEAD, limits.head_timeout_s)

        def _wait(self, what: int, seconds: float) -> None:
            self._waiting_for = what
            self._deadlines.watch(self, seconds)

        def _done_waiting(self, what: int) -> None:
            if self._waiting_for == what:
                self._waiting_for = 0
                self._deadlines.forget(self)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._waiting_for:
                self._done_waiting(HEAD)
            if len(self.headers) > max_headers:
                raise Refused(431, f"request has over {max_headers} header fields")
            parent_headers_complete(self)

        def on_message_complete(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            if self._waiting_for:
                self._done_waiting(BODY)
            parent_message_complete(self)

        def deadline_passed(self) -> None:
            """Called by the sweep once: the head or body this connection waits for is late."""
            what, self._waiting_for = self._waiting_for, 0
            if self.transport is None or self.transport.is_closing():
                return
            cycle = self.cycle
            if what == HEAD and cycle is not None and not cycle.response_complete:
                self._wait(HEAD, limits.head_timeout_s)  # a pipelined head: the server is late
            elif what == HEAD and not self._head_bytes and cycle is None:
                self.transport.close()  # a new connection that never sent a byte
            elif what == BODY and cycle is not None and cycle.response_started:
                self.transport.close()  # answered already; the rest of the body is not wanted
            else:
                if what == BODY and cycle is not None:
                    cycle.disconnected = True  # the app's receive() now returns a disconnect
                    cycle.message_event.set()
                timeout = limits.head_timeout_s if what == HEAD else limits.body_timeout_s
                part = "head" if what == HEAD else "body"
                self._refuse(408, f"request {part} not received within {timeout:g} s")

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, "malformed HTTP request", msg)

        def _refuse(self, status: int, message: str, cause: str = "") -> None:
            """Answer `status` in the error shape and close (nothing more is read)."""
            headers = self.headers if self._in_head or status == 431 else None
            request_id = (incoming_id({"headers": headers}) if headers else None) or guard.ids.new()
            if self._waiting_for:
                self._waiting_for = 0
                self._deadlines.forget(self)
            self._in_head = False  # nothing more is fed
            detail = f" ({cause})" if cause else ""
            guard.warn(status, f"refused a request with {status}: {message}{detail}")
            if not self.transport.is_closing():
                self.transport.write(error_response(status, message, request_id))
                self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{protocol_class.__name__}"
    return Guarded
