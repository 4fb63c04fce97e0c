"""An asyncio event loop on virtual time, for tests of timer-driven code without sleeping.

The loop is asyncio's own selector loop (real tasks, futures, callbacks, signal wake-ups), with
one change: its clock is a number the loop moves itself. Whenever it would wait for its next
timer with nothing else to do, the clock jumps to that timer instead, so
`await asyncio.sleep(60)` returns at once with `loop.time()` 60 s later, and timers run in
order at exactly their due times. `busy(seconds)` is a loop iteration that took that long (as a
turn serving many requests does): the clock moves on while nothing runs, and the timers due
meanwhile then run late. Like uvicorn's `MockLoop` (tests/protocols), but whole.

Only for code whose waits are all on the loop: real time still passes for threads and sockets,
which a jumping clock would outrun.
"""

import asyncio
import contextvars
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; a wait for a timer moves the loop's clock to it instead."""

    def __init__(self, loop: "VirtualTimeLoop") -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer and nothing ready: only a real event can come
            return super().select(None)
        events = super().select(0)
        if not events and timeout > 0:
            self._loop.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        self.timer_callbacks: list[Callable[..., object]] = []  # every one ever scheduled
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        self.timer_callbacks.append(callback)  # call_later comes here too
        return super().call_at(when, callback, *args, context=context)

    def timers_of(self, owner: object) -> int:
        """How many timers have been scheduled so far for methods of `owner`."""
        return sum(
            getattr(callback, "__self__", None) is owner for callback in self.timer_callbacks
        )

    def busy(self, seconds: float) -> None:
        """The current iteration takes `seconds` more (a blocked loop, without blocking)."""
        self.now += seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """`main` to completion on a fresh `VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


async def turn(busy_s: float = 0.0) -> None:
    """End this loop iteration after it took `busy_s`, and let the timers due by then run
    (they run after the callbacks already ready, so it takes two yields)."""
    loop().busy(busy_s)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def loop() -> VirtualTimeLoop:
    """The running loop, which must be a `VirtualTimeLoop`."""
    running = asyncio.get_running_loop()
    assert isinstance(running, VirtualTimeLoop), running
    return running
