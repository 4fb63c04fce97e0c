"""One write per response (service/http/writes.py), on real sockets; and no access line built
for nobody (`service.logs.skip_unwritten_access_lines`).

A real uvicorn server (uvloop, httptools) in a thread, its protocol class wrapped as the
workers' is, and a blocking raw client: every response of a kept-alive connection, pipelined
or not, arrives in one piece, in order; a HEAD answer (head only) and a streamed body (writes
in several loop turns) still arrive whole. The transport-level cases count the writes that
reach a real TCP transport."""

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from harness.rawhttp import post_request
from service.http.writes import CoalescingTransport, coalescing
from service.logs import skip_unwritten_access_lines

BODY = b'{"status":"APPROVED","probability":0.125}'


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)  # each part in a later loop turn
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


@contextmanager
def _server() -> Iterator[int]:
    config = uvicorn.Config(_app, loop="none", http=coalescing(HttpToolsProtocol), log_config=None)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    thread = threading.Thread(target=lambda: uvloop.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            thread.join(0.01)
            assert thread.is_alive(), "the server did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _post(path: str = "/classify") -> bytes:
    return post_request(path, b"{}")


def _expected_response(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200 OK") and body == BODY


def test_each_response_arrives_in_one_piece() -> None:
    with _server() as port, socket.create_connection(("127.0.0.1", port)) as client:
        for _ in range(50):
            client.sendall(_post())
            first_read = client.recv(65536)  # returns as soon as any byte has arrived
            assert _expected_response(first_read), first_read


def test_pipelined_responses_come_whole_and_in_order() -> None:
    with _server() as port, socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(_post("/a") + _post("/b") + _post("/c"))
        received = b""
        while received.count(BODY) < 3:
            chunk = client.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
        responses = received.split(b"HTTP/1.1 ")[1:]
        assert len(responses) == 3
        assert all(_expected_response(b"HTTP/1.1 " + r) for r in responses)


def test_head_and_streamed_answers_still_arrive() -> None:
    with _server() as port, socket.create_connection(("127.0.0.1", port)) as client:
        client.settimeout(5)
        client.sendall(b"HEAD /classify HTTP/1.1\r\nhost: test\r\n\r\n")
        head = client.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
        client.sendall(_post("/stream"))
        received = b""
        while not received.endswith(b"0\r\n\r\n"):
            chunk = client.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
        body = received.partition(b"\r\n\r\n")[2]
        assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


class _CountingProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def _pair() -> tuple[asyncio.Transport, _CountingProtocol, list[bytes]]:
    """A real TCP transport whose writes are recorded, and the peer's protocol."""
    loop = asyncio.get_running_loop()
    peers: list[_CountingProtocol] = []

    def make_peer() -> _CountingProtocol:
        peers.append(_CountingProtocol())
        return peers[-1]

    server = await loop.create_server(make_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    while not peers:
        await asyncio.sleep(0.001)
    recording = _Recording(transport)
    return recording, peers[0], recording.writes  # type: ignore[return-value]


class _Recording:
    """A real transport, its writes recorded, one entry per call (uvloop's transports cannot
    be patched)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.writes.append(b"".join(lines))
        self.transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_writes_of_one_turn_reach_the_transport_as_one(loop_factory: Any) -> None:
    async def main() -> None:
        transport, peer, writes = await _pair()
        coalesced = CoalescingTransport(transport, asyncio.get_running_loop())
        coalesced.write(b"head;")
        coalesced.write(bytearray(b"body;"))
        assert writes == [] and coalesced.get_write_buffer_size() == 10  # held this turn
        await asyncio.sleep(0)
        assert writes == [b"head;body;"]
        coalesced.write(b"next;")
        coalesced.close()  # what is held goes out before the close
        await asyncio.wait_for(peer.closed, 5)
        assert writes == [b"head;body;", b"next;"]
        assert peer.received == b"head;body;next;"

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def test_abort_drops_what_is_held() -> None:
    async def main() -> None:
        transport, peer, writes = await _pair()
        coalesced = CoalescingTransport(transport, asyncio.get_running_loop())
        coalesced.write(b"never sent")
        coalesced.abort()
        await asyncio.wait_for(peer.closed, 5)
        await asyncio.sleep(0)  # the flush that was due finds nothing
        assert writes == [] and peer.received == b""

    asyncio.run(main())


@pytest.mark.parametrize(
    ("level", "builds_lines"), [(logging.WARNING, False), (logging.INFO, True)]
)
def test_uvicorn_builds_access_lines_only_when_they_can_be_written(
    level: int, builds_lines: bool
) -> None:
    """With a handler on the root logger (as in a worker), uvicorn's protocol builds an access
    line per response unless `skip_unwritten_access_lines` stopped its logger propagating; it
    does so only when the line would be dropped anyway."""
    access = logging.getLogger("uvicorn.access")
    saved = (access.level, access.propagate, access.handlers)
    access.handlers = []  # as in a worker: BentoML configures no handler of its own there
    root_handler = logging.NullHandler()
    logging.getLogger().addHandler(root_handler)
    try:
        access.setLevel(level)
        access.propagate = True
        config = uvicorn.Config(_app, log_config=None)  # as BentoML builds it
        config.load()
        assert HttpToolsProtocol(
            config, ServerState(), {}, _loop=asyncio.new_event_loop()
        ).access_log  # what the fix is for
        skip_unwritten_access_lines()
        assert (
            HttpToolsProtocol(config, ServerState(), {}, _loop=asyncio.new_event_loop()).access_log
            is builds_lines
        )
    finally:
        logging.getLogger().removeHandler(root_handler)
        access.setLevel(saved[0])
        access.propagate = saved[1]
        access.handlers = saved[2]
