"""Output folders: refused when in use, committed once per partition, cleaned after failure."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.outputs import Destination, OutputError, PartWriter, abandon, commit, footer_rows, prepare
from jobs.score import ReconciliationError, reconcile


def test_existing_outputs_are_refused_unless_overwritten(tmp_path: Path) -> None:
    out, rej = Destination.of(str(tmp_path / "out")), Destination.of(str(tmp_path / "rej"))
    assert prepare((out, rej), overwrite=False) == {out, rej}  # absent: reported, not created
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"x")
    with pytest.raises(OutputError, match="exists and is not empty"):
        prepare((out, rej), overwrite=False)
    assert prepare((out, rej), overwrite=True) == {rej}
    assert (tmp_path / "out" / "old.parquet").exists()  # kept until a run commits
    with pytest.raises(OutputError, match="overlap"):
        prepare((out, Destination.of(str(tmp_path / "out" / "rejects"))), overwrite=True)


def test_a_commit_with_replace_removes_the_earlier_output(tmp_path: Path) -> None:
    out = Destination.of(str(tmp_path / "out"))
    (tmp_path / "out" / "old-part").mkdir(parents=True)
    (tmp_path / "out" / "_SUCCESS").write_bytes(b"")
    writer = PartWriter(*out.staging_file("run4", 0, 1))
    writer.write(pa.record_batch({"id": pa.array([1, 2])}))
    files = commit(out, "run4", {0: str(writer.close())}, pa.schema([("id", pa.int64())]),
                   replace=True)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000-run4.parquet"]
    assert footer_rows(out, files) == 2


def test_only_the_reported_attempt_of_each_partition_is_committed(tmp_path: Path) -> None:
    """A retried partition leaves two staged files; the driver commits the one its summary
    names and the staging folder, with the other, goes."""
    out = Destination.of(str(tmp_path / "out"))
    prepare((out,), overwrite=False)
    batch = pa.record_batch({"id": pa.array([1, 2, 3])})
    staged: dict[tuple[int, int], str] = {}
    for partition, attempt in ((0, 7), (0, 9), (1, 8)):
        writer = PartWriter(*out.staging_file("run1", partition, attempt))
        writer.write(batch)
        staged[(partition, attempt)] = str(writer.close())
    files = commit(out, "run1", {0: staged[(0, 9)], 1: staged[(1, 8)]}, batch.schema)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "part-00000-run1.parquet", "part-00001-run1.parquet",
    ]  # fmt: skip
    assert footer_rows(out, files) == 6


def test_an_output_with_no_rows_still_has_its_columns(tmp_path: Path) -> None:
    out = Destination.of(str(tmp_path / "rej"))
    prepare((out,), overwrite=False)
    schema = pa.schema([("id", pa.string()), ("error", pa.string())])
    files = commit(out, "run2", {}, schema)
    assert pq.read_table(files[0]).schema == schema and footer_rows(out, files) == 0


def test_abandon_removes_only_the_staged_files(tmp_path: Path) -> None:
    """A folder that existed stays (empty); one the failed run created goes."""
    existing, created = Destination.of(str(tmp_path / "out")), Destination.of(str(tmp_path / "new"))
    (tmp_path / "out").mkdir()
    for destination in (existing, created):
        writer = PartWriter(*destination.staging_file("run3", 0, 1))
        writer.write(pa.record_batch({"id": pa.array([1])}))
        writer.close()
    abandon(existing, "run3", created=False)
    abandon(created, "run3", created=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list((tmp_path / "out").iterdir()) == []
    abandon(Destination.of(str(tmp_path / "never")), "run3", created=True)  # nothing staged


def test_reconciliation_refuses_lost_rows() -> None:
    assert reconcile(rows_in=10, scored=7, rejected=3, reported=(7, 3))["rows_in"] == 10
    with pytest.raises(ReconciliationError, match="rows in 10 != scored 6 \\+ rejected 3"):
        reconcile(rows_in=10, scored=6, rejected=3, reported=(6, 3))
    with pytest.raises(ReconciliationError, match="tasks reported 7 \\+ 3"):
        reconcile(rows_in=10, scored=6, rejected=4, reported=(7, 3))
