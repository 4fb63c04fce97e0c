"""The request timeout of the front door's routes: a request not answered within `timeout_s`
(BentoML's `traffic.timeout`, CREDIT_RISK_REQUEST_TIMEOUT_S) gets 504 in the one error shape.

The clock starts when the door takes the request and stops when its answer is ready (reading
the body, waiting for admission, the batcher and the model all count). A request past its
deadline has its task cancelled; whatever it awaited is dropped (a bulk chunk already running in
the bulk thread finishes there, unanswered).

Cost: a request pays a dict insert and delete; no timer per request. One loop timer sweeps the
requests in progress every `tick_s` while there are any, so a deadline is enforced within
[timeout_s, timeout_s + tick_s] (tick_s: a twentieth of the timeout, at most 1 s).
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from service.errors import RequestError

T = TypeVar("T")
MAX_TICK_S = 1.0


def timed_out(timeout_s: float) -> RequestError:
    return RequestError(504, f"the request was not answered within {timeout_s:g} seconds")


class RequestDeadlines:
    def __init__(self, timeout_s: float, tick_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.tick_s = tick_s if tick_s is not None else min(timeout_s / 20, MAX_TICK_S)
        self._deadlines: dict[asyncio.Task[Any], float] = {}  # requests in progress
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled by the sweep
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Awaitable[T]) -> T:
        """The result of `work`; raises a 504 RequestError once the deadline has passed."""
        task = asyncio.current_task()
        assert task is not None
        self.enter(task, asyncio.get_running_loop())
        try:
            return await work
        except asyncio.CancelledError:
            error = self.timeout_error(task)
            if error is None:
                raise  # cancelled for another reason (the server stopping)
            raise error from None
        finally:
            self.leave(task)

    # The same in three calls, for a caller that awaits its work itself (the front door: no
    # coroutine layer per request). enter, then leave in a `finally`; a CancelledError in
    # between goes through `timeout_error`.
    def enter(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Start `task`'s clock (`loop`: the running loop)."""
        if loop is not self._loop:  # a new event loop (tests): forget the old loop's requests
            self._deadlines, self._expired, self._sweep, self._loop = {}, set(), None, loop
        self._deadlines[task] = loop.time() + self.timeout_s
        if self._sweep is None:
            self._sweep = loop.call_later(self.tick_s, self._run_sweep, loop)

    def timeout_error(self, task: asyncio.Task[Any]) -> RequestError | None:
        """For a CancelledError in `task`: the 504 to raise when the sweep cancelled it (the
        cancellation is then taken back), else None (cancelled for another reason)."""
        if task not in self._expired:
            return None
        task.uncancel()
        return timed_out(self.timeout_s)

    def leave(self, task: asyncio.Task[Any]) -> None:
        del self._deadlines[task]
        if self._expired:
            self._expired.discard(task)

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in self._deadlines.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._sweep = (
            loop.call_later(self.tick_s, self._run_sweep, loop) if self._deadlines else None
        )
