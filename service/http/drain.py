"""Graceful stop on SIGTERM: stop reporting ready, keep serving for a drain delay, then stop.

A load balancer (Kubernetes endpoints, HAProxy health checks) needs a moment after SIGTERM to
stop sending new requests; a server that closed its connections at once would reset the ones
already on their way. So on SIGTERM the worker
1. answers /readyz with 503 at once, and marks every answer `Connection: close` (a client's
   next request opens a new connection, which the balancer sends elsewhere);
2. keeps accepting and answering everything for `delay_s`;
3. then hands the signal to uvicorn, which stops accepting, finishes every request in progress
   and closes the connections.
A second SIGTERM during the delay changes nothing; SIGINT (Ctrl-C) is left to uvicorn and stops
at once.
"""

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("credit_risk")

SignalHandler = Callable[[int, FrameType | None], Any]


class Drain:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.draining = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wrap the SIGTERM handler in place (uvicorn's, installed before the app starts).
        Must run in the main thread, as signal handlers must."""
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # nobody would stop the server on SIGTERM: nothing to delay

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                return
            self.draining = True
            # A signal handler may only hand work to the loop in a thread-safe way.
            loop.call_soon_threadsafe(self._stop_later, loop, previous, sig, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _stop_later(
        self,
        loop: asyncio.AbstractEventLoop,
        stop: SignalHandler,
        sig: int,
        frame: FrameType | None,
    ) -> None:
        logger.warning("SIGTERM: draining for %.1fs before stopping", self.delay_s)
        loop.call_later(self.delay_s, stop, sig, frame)
