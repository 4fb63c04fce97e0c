"""A raw-socket HTTP/1.1 client for load tests: pre-encoded requests on kept-alive asyncio
connections, every answer read to its last byte.

It costs ~10x less CPU per request than httpx, so on a shared 2-core machine the server, not
the client, is what a load test measures. Loopback only; every run is bounded in time.
"""

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
import uvloop

HOST = "127.0.0.1"


def post_request(
    path: str, body: bytes, content_type: str = "application/json", headers: str = ""
) -> bytes:
    """A complete POST request; `headers` adds lines ("name: value\\r\\n" each)."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n{headers}\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]  # lower-case names
    body: bytes


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response with a content-length body (all the servers under test send one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = dict(
        line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
    )
    body = await reader.readexactly(int(headers[b"content-length"]))
    return Answer(int(head[9:12]), headers, body)


@dataclass
class LoadResult:
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    retry_after: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # resets, bad bodies: answers lost
    timeouts: int = 0  # requests with no answer within the client's timeout (also failures)

    def merge(self, other: "LoadResult") -> None:
        """Add another client process's counts (same run, same duration)."""
        self.statuses.update(other.statuses)
        for status, latencies in other.latencies.items():
            self.latencies.setdefault(status, []).extend(latencies)
        self.retry_after.update(other.retry_after)
        self.failures.extend(other.failures)
        self.timeouts += other.timeouts

    def rate(self, status: int) -> float:
        return self.statuses[status] / self.seconds

    @property
    def offered_rate(self) -> float:
        return sum(self.statuses.values()) / self.seconds

    def p(self, status: int, q: float) -> float:
        """The q-th latency percentile of answers with `status`, seconds (0 without any)."""
        found = self.latencies.get(status)
        return float(np.percentile(found, q)) if found else 0.0


async def _client(
    port: int,
    request: bytes,
    deadline: float,
    check: Callable[[bytes], bool],
    out: LoadResult,
    timeout_s: float | None,
) -> None:
    """Re-sends `request` as soon as each answer arrives (a client that ignores Retry-After);
    a request unanswered after `timeout_s` is given up, its connection closed."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            assert reader is not None
            writer.write(request)
            answer = await asyncio.wait_for(read_answer(reader), timeout_s)
        except TimeoutError:
            out.timeouts += 1
            out.failures.append("timeout")
            if writer is not None:
                writer.close()
            writer = None
            continue
        except (OSError, asyncio.IncompleteReadError) as error:
            out.failures.append(repr(error))
            writer = None
            continue
        out.statuses[answer.status] += 1
        out.latencies.setdefault(answer.status, []).append(time.perf_counter() - started)
        if answer.status == 200 and not check(answer.body):
            out.failures.append(f"incomplete answer: {answer.body[:200]!r}")
        elif answer.status in (429, 503):
            out.retry_after[answer.headers.get(b"retry-after", b"").decode()] += 1
        elif answer.status >= 400 and not orjson.loads(answer.body).get("error"):
            out.failures.append(f"{answer.status} without an error message")
        if answer.headers.get(b"connection") == b"close":
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def run_load(
    port: int,
    request: bytes,
    connections: int,
    seconds: float,
    check: Callable[[bytes], bool],
    timeout_s: float | None = None,
) -> LoadResult:
    """`connections` clients sending `request` back to back for `seconds`."""
    out = LoadResult(seconds)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(port, request, deadline, check, out, timeout_s) for _ in range(connections))
        )

    uvloop.run(main())
    return out


def read_response(sock: socket.socket, timeout_s: float) -> Answer | None:
    """One response read from a blocking socket (None: the connection closed or was reset
    before a whole head arrived); a body without a content-length is read to the close."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(
            line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
        )
        length = int(headers.get(b"content-length", b"-1"))
        while len(body) < length or length < 0:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except ConnectionResetError:
        return None
    return Answer(int(head[9:12]), headers, body)


def is_closed(sock: socket.socket, timeout_s: float) -> bool:
    """True once the server has closed (or reset) the connection, within `timeout_s`."""
    sock.settimeout(timeout_s)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def bytes_accepted(sock: socket.socket, total: int, timeout_s: float) -> int:
    """How many of `total` more bytes the server lets this connection send before it closes
    it (or `timeout_s` passes): a server that stopped reading takes no more than the socket
    buffers hold."""
    sock.settimeout(timeout_s)
    chunk = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + timeout_s
    try:
        while sent < total and time.monotonic() < deadline:
            sent += sock.send(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent
