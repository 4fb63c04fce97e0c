"""The hook the request path calls, and the writer thread behind it.

`record(batch)` and `record_one(...)` (one applicant: the /classify hot path, enqueued as
plain values, see assemble.py) only append to in-memory queues (no I/O, no lock held while
waiting): a request never pays for the sink. The writer thread wakes every
`flush_interval_s`, turns what was queued into one table (reason codes included) and writes
it to the sink; a table the sink refuses goes to the spool, and the spool is replayed once
the sink takes writes again. So a record reaches the sink or the spool within one flush
interval plus the write.

Bounds, never silent: rows waiting in memory are bounded by `max_pending_rows`, the spool by
its bytes. When either is full, the `spool_full` policy applies: "drop" drops new records and
counts them (`stats.dropped`); "refuse" keeps them and makes `refusal()` return a reason,
which the request path answers with 503 before scoring anything.

`close()` writes every queued record (to the sink, else the spool, over its bound if need be)
before it returns: the worker's drain calls it after the last request was answered.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from service.records.assemble import (
    DECIDED_AT,
    ReasonsByModel,
    append_single,
    assemble,
    assemble_rows,
    field_values,
    single_batches,
)
from service.records.schema import DecisionBatch
from service.records.sink import Sink, SinkError
from service.records.spool import Spool

logger = logging.getLogger("credit_risk")
SpoolFullPolicy = Literal["drop", "refuse"]
REPLAY_FILES_PER_FLUSH = 16  # bounds one flush's replay, so new records keep their pace
RETENTION_EVERY_S = 3600.0


@dataclass
class RecorderStats:
    """Counts since start (rows), read by the metrics at each of their flushes."""

    written: int = 0  # reached the sink (replayed rows included)
    spooled: int = 0  # went to the spool
    replayed: int = 0  # went from the spool to the sink
    dropped: int = 0  # lost, by the drop policy (or a batch that could not be assembled)
    pending: int = 0  # waiting in memory
    spool_bytes: int = 0
    sink_up: bool = True


class DecisionRecorder:
    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        *,
        reasons: ReasonsByModel | None,
        flush_interval_s: float,
        max_pending_rows: int,
        spool_full: SpoolFullPolicy,
        retention_days: float = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.reasons = reasons
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        self.spool_full = spool_full
        self.retention_days = retention_days
        self.clock = clock
        self.stats = RecorderStats(spool_bytes=spool.size())
        self._queue: deque[DecisionBatch] = deque()
        # Single applicants (record_one): assemble.ROW_WIDTH values each, one after another;
        # replaced by an empty list under _lock when the writer takes them.
        self._rows: list[Any] = []
        self._held: list[pa.Table] = []  # assembled, neither written nor spooled (refuse policy)
        self._lock = threading.Lock()  # guards stats.pending and stats.dropped
        self._oldest: float | None = None  # decided_at of the oldest queued or held record
        self._full = False  # the spool refused a table and nothing has drained since
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._next_retention = 0.0
        self._thread = threading.Thread(target=self._run, name="decision-records", daemon=True)

    # -- the request path -----------------------------------------------------------------
    def record(self, batch: DecisionBatch) -> None:
        """Enqueues one request's decisions; returns at once."""
        n = len(batch)
        if n == 0:
            return
        with self._lock:
            if self._admit(n, batch.decided_at):
                self._queue.append(batch)

    def _admit(self, n: int, decided_at: float) -> bool:
        """Under `_lock`: whether `n` records decided at `decided_at` join the queue (counted
        pending), or are dropped (counted) after close or past the pending bound with the
        `drop` policy."""
        if self._closed:
            self.stats.dropped += n
            logger.error("decision records: %d records after close, dropped", n)
            return False
        if self.stats.pending + n > self.max_pending_rows and self.spool_full == "drop":
            self.stats.dropped += n
            return False
        self.stats.pending += n
        if self._oldest is None:
            self._oldest = decided_at
        return True

    def record_one(
        self,
        request_id: str,
        route: str,
        client: str,
        model: str,
        decided_at: float,
        probability: float,
        status: str,
        fields: Mapping[str, Any],
        features: npt.NDArray[np.float32],
    ) -> None:
        """Enqueues one applicant's decision (`fields`: its 13 form fields); returns at once.
        Nothing the request made is kept but plain values (see assemble.py for why)."""
        try:
            values = field_values(fields)
        except KeyError:  # not a whole form: the writer counts it as unreadable
            self.record(
                DecisionBatch(
                    request_id,
                    route,
                    client,
                    model,
                    decided_at,
                    np.array([probability], dtype=np.float32),
                    [status],
                    [fields],
                    features,
                )
            )
            return
        with self._lock:
            if not self._admit(1, decided_at):
                return
            append_single(
                self._rows,
                request_id,
                route,
                client,
                model,
                decided_at,
                probability,
                status,
                values,
                features,
            )

    def lag_s(self) -> float:
        """Age of the oldest record not yet in the sink or the spool (0 when none waits)."""
        oldest = self._oldest
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def refusal(self) -> str | None:
        """Why a new request must not be scored now (the refuse policy with the spool or the
        memory queue full), else None."""
        if self.spool_full != "refuse":
            return None
        if self._full:
            return "the decision log is unavailable and its spool is full"
        if self.stats.pending >= self.max_pending_rows:
            return "the decision log is behind: too many records waiting to be written"
        return None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "DecisionRecorder":
        # The first table Arrow builds from NumPy object arrays imports pandas (~0.7 s): paid
        # here, at start-up, not by the first flush (which would then be late).
        assemble([], None)
        self._thread.start()
        return self

    def close(self) -> None:
        """Writes every record queued so far (sink, else spool), then stops the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: write in the caller's thread
            self._flush(final=True)
        self.sink.close()

    def flush_now(self) -> None:
        """One flush in the caller's thread (tests with a writer that was not started)."""
        self._flush(final=False)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            final = self._closing
            try:
                self._flush(final=final)
            except Exception as error:  # the writer must outlive any one bad flush
                logger.error("decision records: flush failed (%s)", type(error).__name__)
            if final:
                return

    # -- the writer thread ------------------------------------------------------------------
    def _flush(self, final: bool) -> None:
        rows, batches = self._drain()
        tables = [self._assemble_rows(rows)] if rows else []
        tables += [self._assemble(batches)] if batches else []
        if tables:  # one table: one journal append (one fsync) a flush
            self._held.append(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
        self.sink.maintain()  # first: a file spans at most the rotation age
        self._replay()
        held, self._held = self._held, []
        for table in held:
            self._deliver(table, final)
        self._update_oldest()
        self._retention()
        self.stats.spool_bytes = self.spool.size()
        if self._full and self.stats.spool_bytes < self.spool.max_bytes and not self._held:
            self._full = False

    def _drain(self) -> tuple[list[Any], list[DecisionBatch]]:
        with self._lock:
            rows, self._rows = self._rows, []
        batches = []
        queue = self._queue
        while queue:
            batches.append(queue.popleft())
        return rows, batches

    def _assemble_rows(self, rows: list[Any]) -> pa.Table:
        try:
            return assemble_rows(rows, self.reasons)
        except Exception as error:
            logger.error(
                "decision records: a flush could not be assembled (%s)", type(error).__name__
            )
        return self._single_out(single_batches(rows))

    def _assemble(self, batches: list[DecisionBatch]) -> pa.Table:
        try:
            return assemble(batches, self.reasons)
        except Exception as error:
            logger.error(
                "decision records: a flush could not be assembled (%s)", type(error).__name__
            )
        return self._single_out(batches)

    def _single_out(self, batches: list[DecisionBatch]) -> pa.Table:
        """Assembles the batches one by one: the unreadable ones are counted and dropped."""
        tables = []
        bad: dict[tuple[str, str], int] = {}
        for batch in batches:
            try:
                tables.append(assemble([batch], self.reasons))
            except Exception as error:
                key = (batch.route, type(error).__name__)
                bad[key] = bad.get(key, 0) + len(batch)
        for (route, kind), rows in bad.items():  # one line per route and error, not per batch
            with self._lock:
                self.stats.dropped += rows
                self.stats.pending -= rows
            logger.error(
                "decision records: %d records of route %s dropped, unreadable (%s)",
                rows,
                route,
                kind,
            )
        return pa.concat_tables(tables) if tables else assemble([], None)

    def _deliver(self, table: pa.Table, final: bool) -> None:
        rows = table.num_rows
        if rows == 0:
            return
        if self.stats.sink_up or not self.spool.files():
            try:
                self.sink.write(table)
                self._settled(rows, written=rows)
                self.stats.sink_up = True
                return
            except SinkError as error:
                self._sink_down(error)
        if self.spool.put(table, self.clock(), force=final):
            self._settled(rows, spooled=rows)
            return
        self._full = True
        if self.spool_full == "drop":
            self._settled(rows, dropped=rows)
            logger.error("decision records: spool full, %d records dropped", rows)
        else:
            self._held.append(table)

    def _replay(self) -> None:
        if not self.spool.files():
            return
        try:
            rows = self.spool.replay(self._replay_one, REPLAY_FILES_PER_FLUSH)
        except SinkError as error:
            self._sink_down(error)
            return
        if rows:
            self.stats.sink_up = True

    def _replay_one(self, table: pa.Table) -> None:
        self.sink.write(table)
        self.stats.written += table.num_rows
        self.stats.replayed += table.num_rows

    def _sink_down(self, error: SinkError) -> None:
        if self.stats.sink_up:
            logger.error("decision records: sink unavailable, spooling (%s)", error)
        self.stats.sink_up = False

    def _settled(self, rows: int, *, written: int = 0, spooled: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self.stats.pending -= rows
            self.stats.written += written
            self.stats.spooled += spooled
            self.stats.dropped += dropped

    def _update_oldest(self) -> None:
        with self._lock:
            waiting = [t for t in self._held if t.num_rows]
            if waiting:
                first = pc.min(waiting[0].column("decided_at")).as_py()
                self._oldest = first.timestamp()
            elif self._rows or self._queue:
                queued = [self._rows[DECIDED_AT]] if self._rows else []
                queued += [self._queue[0].decided_at] if self._queue else []
                self._oldest = min(queued)
            else:
                self._oldest = None

    def _retention(self) -> None:
        if self.retention_days <= 0:
            return
        now = self.clock()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_S
        try:
            deleted = self.sink.delete_before(now - self.retention_days * 86_400)
        except SinkError as error:
            self._next_retention = now  # try again at the next flush
            logger.error("decision records: retention failed (%s)", error)
            return
        if deleted:
            logger.info("decision records: retention deleted %d", deleted)
