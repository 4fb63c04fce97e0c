"""GreedyAccept on a real uvloop loop whose turns are slow, as under overload: uvloop alone takes
one waiting connection per turn; with the accepter every waiting connection is taken within a
poll or two. The control case fails if libuv goes back to accepting greedily itself (then the
accepter can go)."""

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvloop

from service.http.accept import GreedyAccept
from tests.virtual_time import loop as vt_loop
from tests.virtual_time import run as vt_run

CLIENTS = 30
TURN_S = 0.1  # each loop turn blocks this long, as a turn serving hundreds of requests does
DEADLINE_S = 1.0  # greedy: a few turns; uvloop alone: ~CLIENTS turns


class Counting(asyncio.Protocol):
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        type(self).made += 1


@contextmanager
def _listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield sock
    finally:
        sock.close()


def _slow_turns(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    if not stop.is_set():
        time.sleep(TURN_S)
        loop.call_soon(_slow_turns, loop, stop)


async def _accepted_within_deadline(greedy: bool) -> int:
    Counting.made = 0
    loop = asyncio.get_running_loop()
    with _listener() as sock:
        server = await loop.create_server(Counting, sock=sock)
        accepter = GreedyAccept(loop, sock, Counting, interval_s=0.01).start() if greedy else None
        clients = [socket.create_connection(sock.getsockname()) for _ in range(CLIENTS)]
        stop = asyncio.Event()
        loop.call_soon(_slow_turns, loop, stop)
        started = time.monotonic()
        while Counting.made < CLIENTS and time.monotonic() - started < DEADLINE_S:
            await asyncio.sleep(0)
        made = Counting.made
        stop.set()
        if accepter is not None:
            accepter.close()
            assert accepter.accepted > 0
        for client in clients:
            client.close()
        server.close()
    return made


def _run(greedy: bool) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_accepted_within_deadline(greedy))


def test_every_waiting_connection_is_taken_while_the_loop_is_busy() -> None:
    assert _run(greedy=True) == CLIENTS


def test_uvloop_alone_takes_one_connection_per_turn() -> None:
    made = _run(greedy=False)
    assert made <= DEADLINE_S / TURN_S + 2, made  # one per turn, give or take the first turns


def test_one_poll_takes_every_waiting_connection() -> None:
    """In virtual time (tests/virtual_time.py), with real sockets waiting in the kernel's queue:
    nothing is taken before the first poll, one interval after start, and everything then."""
    interval_s = 0.01

    async def scenario() -> tuple[int, int, int]:
        Counting.made = 0
        with _listener() as sock:
            clients = [socket.create_connection(sock.getsockname()) for _ in range(CLIENTS)]
            accepter = GreedyAccept(vt_loop(), sock, Counting, interval_s=interval_s).start()
            await asyncio.sleep(interval_s * 0.9)
            before = Counting.made
            await asyncio.sleep(interval_s * 0.2)  # the first poll, and its connections set up
            taken, made = accepter.accepted, Counting.made
            accepter.close()
            for client in clients:
                client.close()
        return before, taken, made

    assert vt_run(scenario()) == (0, CLIENTS, CLIENTS)


def test_closed_accepter_stops_accepting() -> None:
    interval_s = 0.001

    async def scenario() -> int:
        Counting.made = 0
        with _listener() as sock:
            accepter = GreedyAccept(vt_loop(), sock, Counting, interval_s=interval_s).start()
            accepter.close()
            client = socket.create_connection(sock.getsockname())
            await asyncio.sleep(1000 * interval_s)  # virtual: a thousand polls' time
            client.close()
            return Counting.made

    assert vt_run(scenario()) == 0
