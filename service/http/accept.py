"""Take every connection waiting in the kernel's accept queue, not one per event-loop turn.

libuv (under uvloop, since libuv 1.45) accepts a single connection each time the loop polls.
Under overload one loop turn serves every ready connection and takes hundreds of milliseconds,
so new connections wait in the accept queue for seconds and their clients time out before the
front door's admission control ever sees them. `GreedyAccept` polls the listening socket every
`interval_s` and accepts all that is waiting into the same loop and protocol as the server's
own accepts; the front door then admits each request or refuses it at once with a 503.
When the loop keeps up, libuv has already taken each connection and a poll costs one
non-blocking accept() that finds nothing.

Invariant: the accepter only adds accepts on the same listening socket (a duplicate of its
descriptor, so the same kernel queue); it never closes or re-binds that socket, and it stops
before uvicorn stops its own servers.
"""

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable

logger = logging.getLogger("credit_risk")

ProtocolFactory = Callable[[], asyncio.Protocol]

MAX_PER_POLL = 1024  # bounds one poll's work; the rest waits for the next poll


class GreedyAccept:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listener: socket.socket,
        protocol_factory: ProtocolFactory,
        *,
        interval_s: float,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self._loop = loop
        self._listener = listener.dup()
        self._listener.setblocking(False)
        self._protocol_factory = protocol_factory
        self._ssl = ssl
        self._interval_s = interval_s
        self._timer: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self.accepted = 0  # connections this accepter took (the rest were libuv's)

    def start(self) -> "GreedyAccept":
        self._timer = self._loop.call_later(self._interval_s, self._poll)
        return self

    def close(self) -> None:
        """Stop accepting; connections already taken stay with the server's protocol."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._listener.close()

    def _poll(self) -> None:
        for _ in range(MAX_PER_POLL):
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as error:  # out of descriptors or memory: uvloop's accepts go on
                logger.warning("accepting connections: %s; retrying in the next poll", error)
                break
            self._adopt(connection)
        self._timer = self._loop.call_later(self._interval_s, self._poll)

    def _adopt(self, connection: socket.socket) -> None:
        try:
            connection.setblocking(False)
            if connection.family in (socket.AF_INET, socket.AF_INET6):
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as libuv's
        except OSError:  # the client already reset it
            connection.close()
            return
        self.accepted += 1
        task = self._loop.create_task(self._connect(connection))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._protocol_factory, connection, ssl=self._ssl
            )
        except OSError as error:  # also ssl.SSLError and TimeoutError
            # The client left, or its TLS handshake failed: as for a connection libuv took.
            logger.info("accepted connection dropped before serving: %s", type(error).__name__)
            connection.close()
