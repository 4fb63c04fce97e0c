"""The Parquet sink: one dataset, private files, rotation by size and age, retention, and
journals left by a crash."""

import os
import stat
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from features.encoder import CategoryCodes
from features.schema import NUMERIC_FIELDS, categories
from service.records import parquet_sink
from service.records.assemble import assemble
from service.records.parquet_sink import ParquetSink
from service.records.recorder import DecisionRecorder
from service.records.spool import Spool
from tests.records.helpers import ManualClock, column, make_batch


def recorder_on(directory: Path, clock: ManualClock, **sink: float) -> DecisionRecorder:
    options = {"rotate_bytes": 1 << 30, "rotate_s": 3600.0, **sink}
    return DecisionRecorder(
        ParquetSink(directory, clock=clock, **options),  # type: ignore[arg-type]
        Spool(directory / "_spool", 1 << 20),
        reasons=None,
        flush_interval_s=0.1,
        max_pending_rows=100_000,
        spool_full="refuse",
        clock=clock,
    )


def parquet_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.parquet"))


def test_one_dataset_private_files(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "log"
    clock = ManualClock()
    recorder = recorder_on(directory, clock, rotate_s=10)
    expected = {}
    for flush in range(3):
        for i in range(5):
            batch = make_batch(f"req-{flush}-{i}", n=i + 1, seed=i, decided_at=clock())
            expected[batch.request_id] = batch
            recorder.record(batch)
        recorder.flush_now()
        clock.advance(11)  # each flush's journal is old enough to rotate at the next
    recorder.close()

    assert len(parquet_files(directory)) == 3
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    table = ds.dataset(directory, format="parquet").to_table()
    assert table.num_rows == sum(len(b) for b in expected.values())
    # every row as recorded, by (request_id, row_index)
    rows = {(r["request_id"], r["row_index"]): r for r in table.to_pylist()}
    for request_id, batch in expected.items():
        for i in range(len(batch)):
            row = rows[request_id, i]
            assert row["probability"] == pytest.approx(float(batch.probability[i]), abs=0)
            assert row["status"] == batch.status[i]
            assert row["income"] == column(batch, "income")[i]
            assert row["home"] == column(batch, "home")[i]
            assert row["decided_at"].timestamp() == pytest.approx(batch.decided_at, abs=1e-6)
            assert row["challenger_model"] is None
    # the same dataset through DuckDB's glob
    query = f"SELECT count(*) FROM read_parquet('{directory}/*.parquet')"
    count = duckdb.connect().execute(query).fetchall()[0]
    assert count == (table.num_rows,)


def test_rotation_by_size(tmp_path: Path) -> None:
    clock = ManualClock()
    recorder = recorder_on(tmp_path, clock, rotate_bytes=64 * 1024)
    for i in range(40):
        recorder.record(make_batch(f"r{i}", n=200, seed=i))
        recorder.flush_now()
    recorder.close()
    files = parquet_files(tmp_path)
    assert len(files) > 3  # ~40 x 200 rows of ~150 bytes in 64 KiB journals
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 40 * 200


def test_rotation_by_age_when_idle(tmp_path: Path) -> None:
    clock = ManualClock()
    recorder = recorder_on(tmp_path, clock, rotate_s=60)
    recorder.record(make_batch("only"))
    recorder.flush_now()
    assert parquet_files(tmp_path) == []  # in the journal, not yet a Parquet file
    clock.advance(59)
    recorder.flush_now()
    assert parquet_files(tmp_path) == []
    clock.advance(1)
    recorder.flush_now()  # nothing new to write: upkeep alone rotates
    assert len(parquet_files(tmp_path)) == 1
    assert not list(tmp_path.glob("_journal-*"))
    recorder.close()


def test_retention_deletes_files_older_than_the_days(tmp_path: Path) -> None:
    clock = ManualClock()
    day = 86_400.0
    sink = ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=1, clock=clock)
    for age_days in (40, 31, 29, 1):
        sink.write(
            assemble([make_batch(f"aged-{age_days}", decided_at=clock() - age_days * day)], None)
        )
        sink.rotate()
    assert len(parquet_files(tmp_path)) == 4
    recorder = DecisionRecorder(
        sink,
        Spool(tmp_path / "_spool", 1 << 20),
        reasons=None,
        flush_interval_s=0.1,
        max_pending_rows=10,
        spool_full="drop",
        retention_days=30,
        clock=clock,
    )
    recorder.flush_now()
    left = ds.dataset(tmp_path, format="parquet").to_table().column("request_id").to_pylist()
    assert sorted(left) == ["aged-1", "aged-29"]
    recorder.close()


def test_a_crashed_writers_journal_is_converted_once(tmp_path: Path) -> None:
    """A journal no live process holds (its writer died) becomes a Parquet file at the next
    start; if its Parquet file was already written, the journal is only deleted."""
    clock = ManualClock()
    pid = os.fork()
    if pid == 0:  # the crashing writer: two flushes in its journal, then killed
        sink = ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
        sink.write(assemble([make_batch("a", n=3)], None))
        sink.write(assemble([make_batch("b", n=2)], None))
        os.kill(os.getpid(), 9)
    os.waitpid(pid, 0)
    journals = list(tmp_path.glob("_journal-*.arrows"))
    assert len(journals) == 1 and parquet_files(tmp_path) == []
    ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
    assert not journals[0].exists()
    (converted,) = parquet_files(tmp_path)
    ids = ds.dataset(converted).to_table().column("request_id").to_pylist()
    assert ids == ["a", "a", "a", "b", "b"]
    # A journal whose Parquet file exists (crash between the rename and the unlink).
    journals[0].write_bytes(b"")
    ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
    assert not journals[0].exists()
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 5


def test_a_journal_converts_a_row_group_at_a_time_up_to_a_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conversion streams: row groups of at least ROW_GROUP_ROWS rows, every complete batch in
    order, and a batch cut short by a crash left out."""
    monkeypatch.setattr(parquet_sink, "ROW_GROUP_ROWS", 5)
    clock = ManualClock()
    sink = ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
    for i in range(7):
        sink.write(assemble([make_batch(f"b{i}", n=2, seed=i)], None))
    assert sink._journal is not None
    journal = sink._journal.path
    sink._journal.close()
    sink._journal = None
    with open(journal, "r+b") as handle:  # the last batch, torn
        handle.truncate(os.path.getsize(journal) - 100)
    ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
    (converted,) = parquet_files(tmp_path)
    metadata = pq.ParquetFile(converted).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [6, 6]
    ids = ds.dataset(converted).to_table().column("request_id").to_pylist()
    assert ids == [f"b{i}" for i in range(6) for _ in range(2)]


def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    clock = ManualClock()
    live = ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)
    live.write(assemble([make_batch("live", n=2)], None))
    ParquetSink(tmp_path, rotate_bytes=1 << 30, rotate_s=3600, clock=clock)  # a second worker
    assert parquet_files(tmp_path) == []
    live.write(assemble([make_batch("live2")], None))
    live.close()
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 3


def test_bulk_columns_with_category_codes_are_recorded_as_names(tmp_path: Path) -> None:
    """A bulk body's categorical columns arrive as positions in the categories (the encoder's
    input): the record holds the category names."""
    batch = make_batch("bulk", n=3)
    codes = {
        "home": CategoryCodes(np.array([1, 0, 6]), categories("home")),
        "marital": CategoryCodes(np.array([0, 0, 5]), categories("marital")),
        "records": CategoryCodes(np.array([2, 1, 0]), categories("records")),
        "job": CategoryCodes(np.array([4, 3, 2]), categories("job")),
    }
    numbers = {f: np.asarray(column(batch, f), dtype=np.float64) for f in NUMERIC_FIELDS}
    batch.fields = {**numbers, **codes}
    table = assemble([batch], None)
    assert table.column("home").to_pylist() == [categories("home")[i] for i in (1, 0, 6)]
    assert table.column("job").to_pylist() == [categories("job")[i] for i in (4, 3, 2)]
    assert table.column("age").to_pylist() == numbers["age"].tolist()
