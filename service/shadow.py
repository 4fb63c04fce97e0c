"""Shadow mode's work queue: the challenger scores the applicants the champion answered, off the
response path and in merged passes.

A shadowed request leaves its rows here (a list append: no task, no future, no thread hop per
request). `delay_s` (`PASS_DELAY_S`) after the first of them (its answer long written), one
pass takes everything queued and scores it in one challenger call per `pass_rows` rows
(through the challenger's own batcher); what the pass learns is handed to `settle` once for
the whole pass (decision matrix, delta histogram, records). A pass costs ~40 us however few its
rows (a task, a model call, the metrics' array work), so under load the delay is what keeps the
shadow's cost per request small: the more requests per second, the more rows share a pass. A
request of more than `pass_rows` rows (bulk) is scored alone on the shadow thread, off the
event loop.

Invariants: each request's rows are scored by the challenger it was queued with (a models switch
never mixes two challengers in one call); every queued row is settled exactly once, scored or
dropped (`settle` gets None for a failed call: a full queue, an error); `rows_in_flight` counts
rows queued or being scored, the bound the scorer drops new shadow work against; `finish` waits
for every one of them.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from runners.base import FeatureMatrix, Probabilities
from runners.bulk import ChunkedPredictor


class Challenger(Protocol):
    """What a shadow pass needs of the challenger (service.scoring.ServedModel has it)."""

    @property
    def predict_rows(self) -> Callable[[FeatureMatrix], Awaitable[Probabilities]]: ...

    @property
    def bulk(self) -> ChunkedPredictor: ...


M = TypeVar("M", bound=Challenger)
# How long the first queued request waits for others to share its pass: at 10,000 shadowed
# requests per second a pass has ~50 rows; records of shadowed requests are written that late.
PASS_DELAY_S = 0.02


@dataclass(slots=True)
class ShadowRows(Generic[M]):
    """One request's shadowed rows and what its records need once the challenger has scored."""

    champion: M
    challenger: M
    features: FeatureMatrix
    fields: Any  # the scored applicants' form fields (records)
    probabilities: Probabilities  # the champion's
    context: contextvars.Context | None  # the request's context (request id, route) for records
    # the rows' places in their request, when not 0, 1, 2, ... (records' row_index)
    positions: npt.NDArray[np.intp] | None = None


# Called once per pass: its requests in queue order, and the challenger's probabilities of all
# their rows concatenated in that order (None: the challenger did not score them).
Settle = Callable[[Sequence[ShadowRows[M]], Probabilities | None], None]


class ShadowQueue(Generic[M]):
    def __init__(self, settle: Settle[M], pass_rows: int, delay_s: float = PASS_DELAY_S) -> None:
        self._settle = settle
        self.pass_rows = pass_rows
        self.delay_s = delay_s
        self.rows_in_flight = 0
        self._queue: list[ShadowRows[M]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")

    def submit(self, rows: ShadowRows[M]) -> None:
        """Queue one request's rows (on the event loop)."""
        self.rows_in_flight += len(rows.features)
        if len(rows.features) > self.pass_rows:
            self._start(self._score_alone(rows))
            return
        self._queue.append(rows)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._start_pass)

    def _start_pass(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # (a no-op when it is the timer that called)
            self._timer = None
        queued, self._queue = self._queue, []
        if not queued:
            return
        # Normally one challenger; after a models switch, requests queued before it keep theirs.
        by_challenger: dict[int, list[ShadowRows[M]]] = {}
        for rows in queued:
            by_challenger.setdefault(id(rows.challenger), []).append(rows)
        for group in by_challenger.values():
            self._start(self._score_merged(group))

    def _start(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score_merged(self, group: list[ShadowRows[M]]) -> None:
        """One challenger call per `pass_rows` rows of whole requests, each part settled."""
        start = 0
        while start < len(group):
            part, count = [], 0
            while start < len(group) and count + len(group[start].features) <= self.pass_rows:
                count += len(group[start].features)
                part.append(group[start])
                start += 1
            features = part[0].features if len(part) == 1 else _concat(p.features for p in part)
            scored: Probabilities | None = None
            try:
                scored = await part[0].challenger.predict_rows(features)
            except Exception:  # a full queue or any failure of the challenger: dropped, counted
                pass
            finally:
                self.rows_in_flight -= count
            self._settle(part, scored)

    async def _score_alone(self, rows: ShadowRows[M]) -> None:
        scored: Probabilities | None = None
        try:
            loop = asyncio.get_running_loop()
            scored = await loop.run_in_executor(
                self._executor, rows.challenger.bulk.predict, rows.features
            )
        except Exception:  # as in `_score_merged`
            pass
        finally:
            self.rows_in_flight -= len(rows.features)
        self._settle([rows], scored)

    async def finish(self) -> None:
        """Score what is queued now and wait for every pass in flight (before records close)."""
        self._start_pass()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        """After `finish`: the shadow thread."""
        self._executor.shutdown(wait=True)


def _concat(parts: Any) -> FeatureMatrix:
    return np.concatenate(list(parts))
