"""Records as a directory of Parquet files: one dataset (`pyarrow.dataset`, or DuckDB's
`read_parquet('DIR/*.parquet')`).

A Parquet file is readable only once closed (its footer comes last), so records first go to
a journal: `_journal-<time>-<pid>-<token>.arrows`, an Arrow IPC stream appended and fsynced at
every flush, so a crash (kill -9) keeps every flushed record. When the journal reaches
`rotate_bytes` or `rotate_s` it becomes `decisions-<time>-<pid>-<token>.parquet` (written
whole, then renamed) and is deleted. A journal left by a dead worker is converted by the next
worker that starts (it is flock-ed by its writer while alive); one whose Parquet file already
exists was converted before the crash and is only deleted, so no record is written twice.
Names starting with `_` or `.` are outside the dataset (pyarrow's and DuckDB's globs skip
them). The directory is 0700 and every file 0600.
"""

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.records.files import create_private, private_dir, unique_stem, write_atomically
from service.records.schema import SCHEMA
from service.records.sink import SinkError

logger = logging.getLogger("credit_risk")
JOURNAL_PREFIX = "_journal"
JOURNAL_SUFFIX = ".arrows"
DATA_PREFIX = "decisions"
DATA_SUFFIX = ".parquet"
ROW_GROUP_ROWS = 131_072  # a Parquet row group: enough rows for its encodings to pay


class _Journal:
    def __init__(self, path: Path, opened_at: float) -> None:
        self.path = path
        self.opened_at = opened_at
        self.handle: BinaryIO = create_private(path)
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)  # alive: not to be recovered
        self.writer = pa.ipc.new_stream(self.handle, SCHEMA)
        self.rows = 0

    def append(self, table: pa.Table) -> None:
        self.writer.write_table(table)
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.rows += table.num_rows

    def size(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.writer.close()
        self.handle.close()


def data_path_of(journal: Path) -> Path:
    stem = journal.name[len(JOURNAL_PREFIX) : -len(JOURNAL_SUFFIX)]
    return journal.with_name(f"{DATA_PREFIX}{stem}{DATA_SUFFIX}")


def journal_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Every complete batch of a journal, in order; a batch cut short by a crash is left out
    (it was never fsynced whole, so it was never acknowledged as written)."""
    try:
        with pa.OSFile(str(path), "rb") as source:
            yield from pa.ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError):
        return  # the torn tail of a crashed write, or a journal with no complete schema yet


def read_journal(path: Path) -> pa.Table:
    return pa.Table.from_batches(list(journal_batches(path)), schema=SCHEMA)


def row_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Consecutive batches joined into tables of at least ROW_GROUP_ROWS rows (the last may
    be shorter): a journal is converted a row group at a time, never held whole."""
    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        group.append(batch)
        rows += batch.num_rows
        if rows >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(group, schema=SCHEMA)
            group, rows = [], 0
    if rows:
        yield pa.Table.from_batches(group, schema=SCHEMA)


class ParquetSink:
    def __init__(
        self,
        directory: Path,
        *,
        rotate_bytes: int,
        rotate_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = private_dir(directory)
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.clock = clock
        self._journal: _Journal | None = None
        self._abandoned = False  # a journal left after a failed write: recovered at upkeep
        self.recover()

    def write(self, table: pa.Table) -> None:
        try:
            if self._journal is None:
                now = self.clock()
                path = self.directory / f"{unique_stem(JOURNAL_PREFIX, now)}{JOURNAL_SUFFIX}"
                self._journal = _Journal(path, now)
            self._journal.append(table)
        except OSError as error:
            self._abandon_journal()
            raise SinkError(f"cannot write to {self.directory}: {type(error).__name__}") from error
        if self._journal.size() >= self.rotate_bytes:
            self.rotate()

    def maintain(self) -> None:
        """Rotates a journal older than `rotate_s` (called at every flush, also when idle)."""
        if self._abandoned:
            self._abandoned = False
            self.recover()
        if self._journal is not None and self.clock() - self._journal.opened_at >= self.rotate_s:
            self.rotate()

    def rotate(self) -> None:
        """The current journal -> a Parquet file in the dataset."""
        journal, self._journal = self._journal, None
        if journal is None:
            return
        journal.close()
        try:
            _convert(journal.path)
        except OSError as error:
            # The journal stays on disk, complete: the next start converts it.
            logger.error("decision records: cannot convert a journal (%s)", type(error).__name__)

    def recover(self) -> None:
        """Converts journals no live writer holds (left by a crash)."""
        for path in sorted(self.directory.glob(f"{JOURNAL_PREFIX}-*{JOURNAL_SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live worker's
            try:
                if path.exists():
                    _convert(path)
            except OSError as error:
                self._abandoned = True  # tried again at the next upkeep
                logger.error(
                    "decision records: cannot convert a journal (%s)", type(error).__name__
                )
            finally:
                os.close(fd)

    def delete_before(self, cutoff: float) -> int:
        """Deletes the files whose newest record was decided before `cutoff` (epoch seconds);
        returns how many."""
        deleted = 0
        for path in sorted(self.directory.glob(f"{DATA_PREFIX}-*{DATA_SUFFIX}")):
            newest = _newest_decision(path)
            if newest is not None and newest < cutoff:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted

    def close(self) -> None:
        self.rotate()

    def _abandon_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            self._abandoned = True
            with contextlib.suppress(OSError):
                journal.close()


def _convert(journal: Path) -> None:
    """Journal -> Parquet file, streamed a row group at a time. Reading the journal whole
    (`read_journal`) and writing one table cost twice the CPU, most of it system time
    (bench/REPORT_NOTES.md, rotation)."""
    target = data_path_of(journal)
    if not target.exists():
        groups = row_groups(journal_batches(journal))
        first = next(groups, None)
        if first is not None:

            def write(handle: BinaryIO) -> None:
                with pq.ParquetWriter(handle, SCHEMA) as writer:
                    writer.write_table(first)
                    for group in groups:
                        writer.write_table(group)

            write_atomically(target, write)
    journal.unlink(missing_ok=True)


def _newest_decision(path: Path) -> float | None:
    """The latest decided_at in a Parquet file, from its footer's statistics (or its data)."""
    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowInvalid):
        return None
    column = SCHEMA.get_field_index("decided_at")
    newest = None
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            values = pq.read_table(path, columns=["decided_at"]).column(0)
            top = pc.max(values).as_py()
            return None if top is None else top.timestamp()
        value = stats.max.timestamp()
        newest = value if newest is None else max(newest, value)
    return newest
