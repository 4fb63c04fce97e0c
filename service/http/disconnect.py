"""Cancels the scoring of a request whose client has gone, cheaply.

A request still queued in the batcher when its client disconnects is dropped before it costs a
model call (the batch it would have joined goes on without it).
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.types import Message, Receive

from service.http.body import ClientGone

T = TypeVar("T")
WATCH_AFTER_S = 0.005  # a request pending this long (up to twice) gets its connection watched


class Watched:
    """One request's scoring task and its `receive`; once its body has been read, the only
    message that can come is http.disconnect, which cancels the task."""

    __slots__ = ("gone", "receive", "stopped", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.gone = False
        self.stopped = False  # the answer is ready: a late disconnect must not cancel its send
        self.watcher: asyncio.Future[Message] | None = None

    def start(self) -> None:
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._on_message)

    def _on_message(self, watcher: asyncio.Future[Message]) -> None:
        if self.stopped or watcher.cancelled() or watcher.exception() is not None:
            return
        if watcher.result()["type"] == "http.disconnect":
            self.gone = True
            self.task.cancel()

    def gone_error(self) -> ClientGone | None:
        """For a CancelledError in the task: ClientGone when the disconnect cancelled it (the
        cancellation is then taken back), else None (cancelled for another reason)."""
        if not self.gone:
            return None
        self.task.uncancel()
        return ClientGone()

    def stop(self) -> None:
        self.stopped = True
        if self.watcher is not None:
            self.watcher.remove_done_callback(self._on_message)
            self.watcher.cancel()


class DisconnectWatch:
    """Cancels the scoring of a request whose client has gone, so a request still queued in the
    batcher is dropped before it costs a model call (the batch it would have joined goes on
    without it).

    Watching a connection takes a task awaiting the ASGI `receive()`, ~10 µs: more than the
    model call for one applicant, so it is spent only on requests that keep waiting. Every
    request joins a list (an append), and a single loop timer, running every `interval_s` while
    requests are in progress, starts watchers for those it already saw pending at its previous
    run. So watching begins after 1-2 intervals of waiting, and a request answered
    sooner (nearly all of them, merged or not) never pays for it
    (tests/reliability/test_disconnect.py measures the cost per request).
    """

    def __init__(self, interval_s: float = WATCH_AFTER_S) -> None:
        self.interval_s = interval_s
        self._new: list[Watched] = []  # registered since the last sweep
        self._aged: list[Watched] = []  # pending at the last sweep
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def guard(self, work: Awaitable[T], receive: Receive) -> T:
        """The result of `work`; raises ClientGone if the client disconnected first."""
        task = asyncio.current_task()
        assert task is not None
        watched = self.watch(task, receive, asyncio.get_running_loop())
        try:
            return await work
        except asyncio.CancelledError:
            gone = watched.gone_error()
            if gone is None:
                raise
            raise gone from None
        finally:
            watched.stop()

    def watch(
        self, task: asyncio.Task[Any], receive: Receive, loop: asyncio.AbstractEventLoop
    ) -> Watched:
        """`guard` in parts, for a caller that awaits its work itself (the front door: no
        coroutine layer per request): its `stop()` must follow in a `finally`, and a
        CancelledError in between goes through its `gone_error()`."""
        if self._sweep_loop is not loop:  # a new event loop (tests): forget the old loop's work
            self._new, self._aged, self._sweep = [], [], None
            self._sweep_loop = loop
        watched = Watched(task, receive)
        # Registered at once (a list append); a request answered before the next sweep is
        # dropped from the list there, never watched.
        self._new.append(watched)
        if self._sweep is None:
            self._sweep = loop.call_later(self.interval_s, self._run_sweep, loop)
        return watched

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        for watched in self._aged:
            if not watched.stopped:
                watched.start()
        self._aged = [watched for watched in self._new if not watched.stopped]
        self._new = []
        self._sweep = None
        if self._aged:
            self._sweep = loop.call_later(self.interval_s, self._run_sweep, loop)
