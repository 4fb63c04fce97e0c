"""Adaptive micro-batching in the API worker's event loop.

Requests queue as row blocks with a future each. One dispatcher task sends whatever is queued to
the model as soon as the model is free: at light load a request goes out on the next loop tick
(no fixed wait), under load everything that arrived while the model was busy is merged into the
next call, up to `max_batch_rows`. The queue is bounded (rows) and a request that waited longer
than `max_queue_delay_s` before dispatch is failed rather than served late. Requests whose caller
went away (cancelled future) are dropped before they cost a model call.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from runners.base import FeatureMatrix, Probabilities


class OverloadedError(RuntimeError):
    """The queue is full or a request waited too long: the caller should retry later."""


@dataclass(frozen=True)
class BatchRecord:
    """What one model call looked like; the service turns these into metrics."""

    requests: int
    rows: int
    max_queue_wait_s: float
    model_s: float


@dataclass
class _Pending:
    rows: FeatureMatrix
    future: asyncio.Future[Probabilities]
    enqueued: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[BatchRecord], None]


class AdaptiveBatcher:
    def __init__(
        self,
        predict: Callable[[FeatureMatrix], Probabilities],
        *,
        max_batch_rows: int,
        max_queue_rows: int,
        max_queue_delay_s: float,
        offload_to_thread: bool = False,
        observer: BatchObserver | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_queue_rows = max_queue_rows
        self.max_queue_delay_s = max_queue_delay_s
        self._observer = observer
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
            if offload_to_thread
            else None
        )
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def predict(self, rows: FeatureMatrix) -> Probabilities:
        """P(default) for exactly these rows, possibly computed in a merged batch."""
        if self._queued_rows + len(rows) > self.max_queue_rows:
            raise OverloadedError(
                f"batch queue full ({self._queued_rows} rows queued, limit {self.max_queue_rows})"
            )
        loop = asyncio.get_running_loop()
        self._ensure_dispatcher()
        pending = _Pending(rows, loop.create_future())
        self._queue.append(pending)
        self._queued_rows += len(rows)
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._wakeup = asyncio.Event()
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_forever())

    def _take_batch(self) -> list[_Pending]:
        """Whole requests, oldest first, up to max_batch_rows (a bigger request goes alone)."""
        batch: list[_Pending] = []
        rows = 0
        now = time.perf_counter()
        while self._queue:
            head = self._queue[0]
            if batch and rows + len(head.rows) > self.max_batch_rows:
                break
            self._queue.popleft()
            self._queued_rows -= len(head.rows)
            if head.future.done():  # caller gone: cancelled before dispatch
                continue
            if now - head.enqueued > self.max_queue_delay_s:
                head.future.set_exception(
                    OverloadedError(
                        f"request waited {now - head.enqueued:.3f}s in the batch queue "
                        f"(limit {self.max_queue_delay_s}s)"
                    )
                )
                continue
            batch.append(head)
            rows += len(head.rows)
        return batch

    async def _dispatch_forever(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take_batch()
            if batch:
                features = (
                    batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
                )
                started = time.perf_counter()
                try:
                    if self._executor is None:
                        probabilities = self._predict(features)
                    else:
                        probabilities = await loop.run_in_executor(
                            self._executor, self._predict, features
                        )
                except Exception as error:
                    _fail(batch, error)
                else:
                    self._deliver(batch, probabilities, started, time.perf_counter())
            # Let the loop read and parse what arrived meanwhile before the next merge.
            await asyncio.sleep(0)

    def _deliver(
        self, batch: list[_Pending], probabilities: Probabilities, started: float, finished: float
    ) -> None:
        offset = 0
        for pending in batch:
            n = len(pending.rows)
            if not pending.future.done():
                pending.future.set_result(probabilities[offset : offset + n])
            offset += n
        if self._observer is not None:
            self._observer(
                BatchRecord(
                    requests=len(batch),
                    rows=offset,
                    max_queue_wait_s=started - batch[0].enqueued,
                    model_s=finished - started,
                )
            )

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _fail(batch: list[_Pending], error: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
