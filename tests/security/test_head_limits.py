"""The guarded HTTP protocol in process: uvicorn's real httptools protocol fed bytes through a
recording transport, its deadlines swept on a clock turned by hand (no sleeps, no sockets)."""

import asyncio
import logging
from collections.abc import Callable, Iterator

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.http.head_limits import Deadlines, Guard, HeadLimits, RateLimitedLog, guarded
from service.http.request_id import RequestIds

LIMITS = HeadLimits(max_head_bytes=2048, max_headers=10, head_timeout_s=5, body_timeout_s=8)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Transport(asyncio.Transport):
    """Records what the protocol writes and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 3000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Connect = Callable[[], tuple[HttpToolsProtocol, "Transport"]]


async def _ok(scope: object, receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    pending = asyncio.all_tasks(loop)  # requests a test left unanswered
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deadlines(loop: asyncio.AbstractEventLoop, clock: Clock) -> Deadlines:
    """The sweep a worker's timer calls, on the test's clock."""
    return Deadlines(loop, tick_s=1, clock=clock)


@pytest.fixture
def connect(loop: asyncio.AbstractEventLoop, deadlines: Deadlines) -> Iterator[Connect]:
    guard = Guard(LIMITS, RequestIds(), deadlines)
    config = Config(app=_ok, http="httptools", log_config=None)
    config.load()
    protocol_class = guarded(HttpToolsProtocol, guard)

    def make() -> tuple[HttpToolsProtocol, Transport]:
        protocol = protocol_class(  # type: ignore[call-arg]
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
        transport = Transport()
        protocol.connection_made(transport)
        return protocol, transport

    yield make


def _status(transport: Transport) -> int:
    return int(transport.written[9:12])


def _error(transport: Transport) -> dict[str, object]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"connection: close" in head and b"content-type: application/json" in head
    parsed: dict[str, object] = orjson.loads(body)
    assert set(parsed) == {"error", "details", "request_id"}
    assert f"x-request-id: {parsed['request_id']}".encode() in head
    return parsed


def test_a_head_past_the_byte_limit_is_refused_before_the_parser_sees_it(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nx-big: " + b"a" * 1000)
    assert transport.written == b""  # within the limit so far
    protocol.data_received(b"a" * 1500)  # the head passes 2,048 bytes within this read
    assert _status(transport) == 431 and transport.closed
    assert "2048 bytes" in str(_error(transport)["error"])


def test_a_head_that_ends_within_the_limit_in_a_large_read_is_served(
    connect: Connect, loop: asyncio.AbstractEventLoop
) -> None:
    protocol, transport = connect()
    body = b"x" * 100_000
    head = b"POST / HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(body)
    protocol.data_received(head + body)  # one read far over the head limit: the body's bytes
    loop.run_until_complete(asyncio.sleep(0))
    assert _status(transport) == 200, transport.written


def test_too_many_fields_get_431(connect: Connect) -> None:
    protocol, transport = connect()
    fields = b"".join(b"x-%d: 1\r\n" % i for i in range(11))
    protocol.data_received(b"GET / HTTP/1.1\r\nx-request-id: mine.1\r\n" + fields + b"\r\n")
    assert _status(transport) == 431
    assert _error(transport)["request_id"] == "mine.1"


def test_late_heads_and_bodies_get_408_on_the_clock(
    connect: Connect, clock: Clock, deadlines: Deadlines
) -> None:
    _, silent_transport = connect()
    partial, partial_transport = connect()
    partial.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n")
    slow_body, slow_transport = connect()
    slow_body.data_received(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n12345")
    clock.now += 4.9
    assert deadlines.sweep() == 0
    clock.now += 0.2  # past the head timeout (5 s from the connections' start)
    assert deadlines.sweep() == 2
    assert silent_transport.closed and silent_transport.written == b""
    assert _status(partial_transport) == 408 and "head" in str(_error(partial_transport)["error"])
    assert not slow_transport.closed
    clock.now += 8  # the body's 8 s from its head
    assert deadlines.sweep() == 1
    assert _status(slow_transport) == 408 and "body" in str(_error(slow_transport)["error"])
    assert len(deadlines) == 0


def test_a_request_in_one_read_leaves_nothing_to_watch(
    connect: Connect, loop: asyncio.AbstractEventLoop, deadlines: Deadlines
) -> None:
    protocol, transport = connect()
    for _ in range(3):  # kept alive: each request whole in one read
        protocol.data_received(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}")
        loop.run_until_complete(asyncio.sleep(0))
        assert len(deadlines) == 0
    assert transport.written.count(b"HTTP/1.1 200") == 3


def test_a_malformed_head_gets_400_as_json(connect: Connect) -> None:
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nx-request-id: lb-1\r\nhost: x\r\nno colon\r\n\r\n")
    assert _status(transport) == 400 and transport.closed
    assert _error(transport)["request_id"] == "lb-1"


def test_warnings_are_rate_limited_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(10, clock)
    with caplog.at_level(logging.WARNING, logger="credit_risk"):
        written = [log.warning("refused") for _ in range(5)]
        clock.now += 10
        written.append(log.warning("refused"))
    assert written == [True, False, False, False, False, True]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["refused", "refused (4 more since the last such line)"]
