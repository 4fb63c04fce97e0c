"""A steady, bounded scoring load through a balancer that records the fate of every request.

Raw asyncio sockets with keep-alive (cheap on a 2-core machine shared with the servers and the
balancer). Lanes of clients post /classify (one applicant) or /classify_bulk (column-wise JSON,
a few thousand rows, so that requests are in flight long enough to be caught by a shutdown);
each client sends its next request when the previous answer is complete, then pauses. A request
ends as an HTTP status plus the model tag and how far its probabilities are from that model's
own (computed in-process beforehand), or as a socket error; nothing is retried or dropped here,
so a lost request shows up as a failure.
"""

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from features.schema import FIELDS

ANSWER_TIMEOUT_S = 60.0  # longer than the server's request timeout: a stuck request is an error


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic() when the request was written
    path: str
    status: int  # HTTP status; 0: no answer (socket error, reset, timeout)
    model: str = ""
    max_error: float = float("nan")  # |probability - the model's own| over the answer's rows
    error: str = ""


@dataclass(frozen=True)
class Lane:
    path: str  # /classify or /classify_bulk
    connections: int
    pause_s: float
    bulk_rows: int = 0  # rows per bulk request (the records, repeated)


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class SteadyLoad:
    """The lanes' clients to 127.0.0.1:`port` in a background thread; `outcomes` grows as
    answers complete. `expected[tag][i]`: model `tag`'s probability for `records[i]`."""

    def __init__(
        self,
        port: int,
        records: Sequence[Mapping[str, object]],
        expected: Mapping[str, np.ndarray],
        lanes: Sequence[Lane],
    ) -> None:
        self.port = port
        self.records = records
        self.expected = expected
        self.lanes = lanes
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> "SteadyLoad":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=ANSWER_TIMEOUT_S + 10)
        assert not self._thread.is_alive(), "load clients did not stop"

    def answered_since(self, since: float) -> list[Outcome]:
        return [o for o in list(self.outcomes) if o.sent >= since]

    def wait_answers(self, count: int, since: float, timeout_s: float = 120) -> None:
        """Until `count` requests sent at or after `since` have their outcome."""
        deadline = time.monotonic() + timeout_s
        while len(self.answered_since(since)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} answers within {timeout_s} s")
            time.sleep(0.05)

    def _max_error(self, model: str, rows: np.ndarray, got: list[float]) -> float:
        if model not in self.expected or len(got) != len(rows):
            return float("nan")
        return float(np.abs(np.asarray(got) - self.expected[model][rows]).max())

    async def _run(self) -> None:
        clients = []
        for lane in self.lanes:
            for i in range(lane.connections):
                clients.append(self._client(lane, i))
        await asyncio.gather(*clients)

    def _next(self, lane: Lane, index: int) -> tuple[bytes, np.ndarray]:
        """The request for the `index`-th send of a lane, and the record numbers it scores."""
        n = len(self.records)
        if lane.path == "/classify":
            row = index % n
            return _request(lane.path, orjson.dumps(self.records[row])), np.array([row])
        rows = (np.arange(lane.bulk_rows) + index) % n
        columns = {name: [self.records[r][name] for r in rows] for name in FIELDS}
        return _request(lane.path, orjson.dumps(columns)), rows

    async def _client(self, lane: Lane, first: int) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        index = first
        while not self._stop.is_set():
            request, rows = self._next(lane, index)
            index += lane.connections
            sent = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                assert reader is not None
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT_S)
                headers = dict(
                    line.lower().split(b": ", 1)
                    for line in head.split(b"\r\n")[1:]
                    if b": " in line
                )
                body = await reader.readexactly(int(headers[b"content-length"]))
            except (OSError, asyncio.IncompleteReadError, TimeoutError, KeyError) as error:
                self.outcomes.append(Outcome(sent, lane.path, 0, error=repr(error)))
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            status = int(head[9:12])
            if status == 200:
                answer = orjson.loads(body)
                got = answer["probability"]
                got = got if isinstance(got, list) else [got]
                error = self._max_error(answer["model"], rows, got)
                self.outcomes.append(Outcome(sent, lane.path, status, answer["model"], error))
            else:
                self.outcomes.append(Outcome(sent, lane.path, status, error=body[:300].decode()))
            if headers.get(b"connection") == b"close":
                writer.close()
                reader = writer = None
            await asyncio.sleep(lane.pause_s)
        if writer is not None:
            writer.close()
