"""Adaptive micro-batching in the API worker's event loop.

At light load a request runs at once: the first request of an event-loop tick, with nothing
queued, is a direct model call with no added delay. Any further request in the same tick (load:
the loop had several requests ready at once) queues as a row block with a future, and one flush,
scheduled for the next tick, sends everything queued in merged calls of up to `max_batch_rows`.
Once a flush merged two or more requests, the load is high and every request queues, the first
of a tick included, until a flush finds a lone request again: under load a direct call is one
more model call a tick for one request; skipping it raised /classify throughput 1.14x at 64
connections from two wrk threads, and left it as it was from one (bench/REPORT_NOTES.md).
With `offload_to_thread` the model runs in a worker thread and everything that queues while it
is busy is merged into the next call, started as soon as the last one returns. The queue is
bounded (rows), `refusal_reason()` lets the HTTP layer refuse before parsing a request, and
a request that waited longer than `max_queue_delay_s` before dispatch is failed rather than served
late. Requests whose caller went away (cancelled future) are dropped before they cost a model call.
No task or event per request: a flush is a plain loop callback, which keeps the per-request
overhead to a future and a deque append.
Under uvloop a freshly accepted connection is read in a loop iteration of its own, so a burst of
requests on new connections runs as direct calls, one per tick; requests on kept-alive
connections are what merge (benchmark clients and HTTP client pools keep connections alive).
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from runners.base import FeatureMatrix, JoinedCall, Probabilities


class OverloadedError(RuntimeError):
    """The queue is full or a request waited too long: the caller should retry later."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What one model call looked like; the service turns these into metrics."""

    requests: int
    rows: int
    max_queue_wait_s: float
    model_s: float
    direct: bool = False  # the light-load path: one request, never queued


Model = Callable[[FeatureMatrix], Probabilities]


@dataclass(frozen=True, slots=True)
class JoinedModel:
    """Another model that can score in one call with the batcher's own (runners/pair.py): a
    flush holding rows for both makes one `with_own` call instead of one call per model."""

    predict: Model  # alone (a flush of its rows only, the light-load path)
    with_own: JoinedCall  # (rows, positions of this model's) -> (own for all, this one's)

    def __call__(self, features: FeatureMatrix) -> Probabilities:
        return self.predict(features)


@dataclass(slots=True)
class _Pending:
    rows: FeatureMatrix
    future: asyncio.Future[Probabilities]
    model: Model | None = None  # None: the batcher's own
    enqueued: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[BatchRecord], None]
# A model call's requests, with their probabilities or the error the model raised, when the
# call started and how long it took (perf_counter seconds).
_Outcome = tuple[list[_Pending], Probabilities | Exception, float, float]


class AdaptiveBatcher:
    def __init__(
        self,
        predict: Model,
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
        self._flush_scheduled = False
        self._model_busy = False  # an offloaded call is running
        self._tick_taken = False  # a request of the current loop tick already ran directly
        self._merging = False  # the last flush merged requests: queue every request

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def refusal_reason(self) -> str | None:
        """Why a request arriving now would be refused (queue full, or its head already waited
        past the limit), else None. Lets the HTTP layer refuse before it spends CPU parsing the
        body, which under overload the admitted requests need (RELIABILITY.md)."""
        if self._queued_rows >= self.max_queue_rows:
            return self._full_message()
        if self._queue:
            waited = time.perf_counter() - self._queue[0].enqueued
            if waited > self.max_queue_delay_s:
                return f"the batch queue is {waited:.3f}s behind (limit {self.max_queue_delay_s}s)"
        return None

    def _full_message(self) -> str:
        return f"batch queue full ({self._queued_rows} rows queued, limit {self.max_queue_rows})"

    async def predict(self, rows: FeatureMatrix, model: Model | None = None) -> Probabilities:
        """P(default) for exactly these rows, possibly computed in a merged batch; by `model`
        when given (a canary's challenger: its rows share the queue, the flush and the limits
        with the batcher's own, and a flush makes one call per model, or one call for both when
        `model` is a JoinedModel), else by the batcher's."""
        if self._queued_rows + len(rows) > self.max_queue_rows:
            raise OverloadedError(self._full_message())
        loop = asyncio.get_running_loop()
        if self._executor is None and not (self._tick_taken or self._merging or self._queue):
            return self._predict_now(loop, rows, model or self._predict)
        pending = _Pending(rows, loop.create_future(), model)
        self._queue.append(pending)
        self._queued_rows += len(rows)
        self._schedule_flush(loop)
        return await pending.future

    def _predict_now(
        self, loop: asyncio.AbstractEventLoop, rows: FeatureMatrix, model: Model
    ) -> Probabilities:
        """The light-load path: no future, no queue; later requests of this tick will merge."""
        self._tick_taken = True
        loop.call_soon(self._end_tick)
        started = time.perf_counter()
        probabilities = model(rows)
        self._observe(BatchRecord(1, len(rows), 0.0, time.perf_counter() - started, direct=True))
        return probabilities

    def _observe(self, record: BatchRecord) -> None:
        """The observer must be cheap (it runs before the answers are sent)."""
        if self._observer is not None:
            self._observer(record)

    def _end_tick(self) -> None:
        self._tick_taken = False

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_scheduled and not self._model_busy:
            self._flush_scheduled = True
            loop.call_soon(self._flush, loop)

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

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_scheduled = False
        if self._executor is not None:
            batch = self._take_batch()
            if batch:
                self._start_offloaded(loop, self._executor, batch)
            return
        # In-loop model: everything queued now goes, in calls of up to max_batch_rows (one call
        # per tick lets queued requests age past the delay limit while the loop parses more).
        flushed = 0
        while self._queue:
            batch = self._take_batch()
            if not batch:
                break
            flushed += len(batch)
            self._settle(self._call(batch))
        self._merging = flushed > 1

    def _call(self, batch: list[_Pending]) -> list[_Outcome]:
        """One model call per model the batch's requests named (the batcher's own, and a
        canary's challenger): each group with its probabilities, or the error its model raised
        (the other groups are answered all the same), when its call started and how long it
        took."""
        if all(pending.model is None for pending in batch):
            groups: dict[Model | None, list[_Pending]] = {None: batch}
        else:
            groups = {}
            for pending in batch:
                groups.setdefault(pending.model, []).append(pending)
            joined = self._joined_call(batch, groups)
            if joined is not None:
                return [joined]
        outcomes: list[_Outcome] = []
        for model, group in groups.items():
            started = time.perf_counter()
            try:
                result: Probabilities | Exception = (model or self._predict)(_features(group))
            except Exception as error:
                result = error
            outcomes.append((group, result, started, time.perf_counter() - started))
        return outcomes

    def _joined_call(
        self, batch: list[_Pending], groups: dict[Model | None, list[_Pending]]
    ) -> _Outcome | None:
        """One call for a flush of the batcher's own rows and one JoinedModel's, in the batch's
        order; None when the flush holds other models or the joined call fails (then each model
        scores its own rows, and each group gets its own answer or error)."""
        if len(groups) != 2 or None not in groups:
            return None
        other = next(model for model in groups if model is not None)
        if not isinstance(other, JoinedModel):
            return None
        positions: list[int] = []
        offset = 0
        for pending in batch:
            n = len(pending.rows)
            if pending.model is other:
                positions.extend(range(offset, offset + n))
            offset += n
        at = np.array(positions, dtype=np.int64)
        started = time.perf_counter()
        try:
            own, theirs = other.with_own(_features(batch), at)
        except Exception:  # each model alone, next: its own error reaches its own requests
            return None
        if not own.flags.writeable:
            own = own.copy()
        own[at] = theirs  # every row now its own model's answer
        return batch, own, started, time.perf_counter() - started

    def _settle(self, outcomes: list[_Outcome]) -> None:
        for group, result, started, model_s in outcomes:
            if isinstance(result, Exception):
                _fail(group, result)
            else:
                self._deliver(group, result, started, model_s)

    def _start_offloaded(
        self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor, batch: list[_Pending]
    ) -> None:
        self._model_busy = True
        running = executor.submit(self._call, batch)
        running.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._finish, loop, batch, done)
        )

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Pending],
        done: ThreadFuture[list[_Outcome]],
    ) -> None:
        """Back on the loop after an offloaded call: answer, then start on what queued meanwhile
        at once (a flush on the next tick would wait out a whole loop pass under load)."""
        self._model_busy = False
        error = done.exception()
        if error is not None:
            _fail(batch, error)
        else:
            self._settle(done.result())
        if self._queue:
            self._flush(loop)

    def _deliver(
        self,
        batch: list[_Pending],
        probabilities: Probabilities,
        started: float,
        model_s: float,
    ) -> None:
        offset = 0
        for pending in batch:
            n = len(pending.rows)
            if not pending.future.done():
                pending.future.set_result(probabilities[offset : offset + n])
            offset += n
        self._observe(
            BatchRecord(
                requests=len(batch),
                rows=offset,
                max_queue_wait_s=started - batch[0].enqueued,
                model_s=model_s,
            ),
        )

    async def close(self) -> None:
        """Free the engine thread once its model call ends (waited for off the event loop)."""
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)


def _features(batch: list[_Pending]) -> FeatureMatrix:
    return batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(error)
